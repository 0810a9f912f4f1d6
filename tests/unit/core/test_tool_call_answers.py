"""Tool calls in generated answers: parsed in each template's format, scored, shown readably."""

from __future__ import annotations

from studio.core.tool_calls import calls_match, describe, parse_calls

LLAMA = '{"name": "get_weather", "parameters": {"city": "Lisbon"}}'
CHATML = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lisbon"}}\n</tool_call>'


def test_calls_in_llama31_chatml_and_python_tag_formats():
    expected = [{"name": "get_weather", "arguments": {"city": "Lisbon"}}]
    assert parse_calls(LLAMA) == parse_calls(CHATML) == parse_calls("<|python_tag|>" + LLAMA) == expected
    assert parse_calls('{"name": "f", "arguments": "{\\"x\\": 1}"}') == [{"name": "f", "arguments": {"x": 1}}]
    assert parse_calls("It is sunny in Lisbon.") == [] and parse_calls('{"city": "Lisbon"}') == []
    assert describe(expected[0]) == 'get_weather(city="Lisbon")'


def test_calls_match_on_names_and_json_arguments_not_on_text():
    assert calls_match(CHATML, LLAMA) == (True, True)  # same call, other format and spacing
    assert calls_match('{"name": "get_weather", "parameters": {"city": "Porto"}}', LLAMA) == (True, False)
    assert calls_match('{"name": "convert", "parameters": {"city": "Lisbon"}}', LLAMA) == (False, False)
    assert calls_match("Lisbon", LLAMA) == (False, False)

