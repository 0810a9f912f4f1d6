"""Tool calling: rows with tool definitions, calls and results load, encode to exactly the ids of
transformers' ``apply_chat_template(..., tools=...)``, and only the assistant's turns (calls
included) carry loss; definitions and results never do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from studio.core.data import load_examples
from studio.core.encoding import IGNORE, EncodeOptions, Encoder
from studio.core.errors import TemplateError
from studio.core.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures"
DEMO = ROOT / "resources" / "demo-model"
CHATML_TOOLS = (FIXTURES / "templates" / "chatml_tools.jinja").read_text(encoding="utf-8")
FILES = ("tool_calls.jsonl", "tool_calls_sharegpt.json")


@pytest.fixture(scope="module", params=["demo", "llama"])
def folder(request, tmp_path_factory):
    """A tokenizer folder (the demo model's, or Meta's Llama 3.2 one) with the ChatML tool template
    as its own chat template, so ``auto`` picks it and transformers reads the same one."""
    if request.param == "demo":
        source = DEMO
    else:
        source = Path(request.getfixturevalue("llama_dir"))
    out = tmp_path_factory.mktemp(request.param)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).exists():
            shutil.copy(source / name, out / name)
    (out / "chat_template.jinja").write_text(CHATML_TOOLS, encoding="utf-8")
    return out


def transformers_ids(folder: Path, template: str, example) -> list[int]:
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(folder))
    hf.chat_template = template
    messages = [m.template_dict() for m in example.messages]
    return list(hf.apply_chat_template(messages, tools=example.tools, tokenize=True, return_dict=True)["input_ids"])


def test_openai_tool_rows_are_read_with_calls_arguments_and_results():
    report = load_examples(FIXTURES / "data" / "tool_calls.jsonl")
    assert (report.format, report.usable_rows, report.bad_rows) == ("messages", 3, [])
    first, second, _ = report.examples
    call = first.messages[2]
    assert call.role == "assistant" and call.content == ""
    assert call.tool_calls == ({"type": "function", "id": "c1",
                                "function": {"name": "get_weather", "arguments": {"city": "Lisbon"}}},)
    assert first.messages[3].role == "tool" and first.messages[3].content == '{"temp_c": 21}'
    assert second.messages[2].role == "tool"  # Meta's ipython role
    assert [t["function"]["name"] for t in first.tools] == ["get_weather", "convert"]


def test_sharegpt_function_call_and_observation_turns():
    report = load_examples(FIXTURES / "data" / "tool_calls_sharegpt.json")
    assert (report.format, report.usable_rows) == ("sharegpt", 2)
    turns = report.examples[0].messages
    assert [m.role for m in turns] == ["user", "assistant", "tool", "assistant"]
    assert turns[1].tool_calls[0]["function"] == {"name": "get_weather", "arguments": {"city": "Porto"}}
    assert report.examples[0].tools[0]["name"] == "get_weather"  # tools given as JSON text


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("template", ["llama3.1", "auto"])
def test_ids_equal_transformers_and_only_the_assistant_trains(folder, template, name, trained_text):
    tok = load_tokenizer(folder)
    encoder = Encoder(tok, EncodeOptions(template=template))
    source = encoder.template.source
    for example in load_examples(FIXTURES / "data" / name).examples:
        enc = encoder.encode(example)
        assert enc.input_ids == transformers_ids(folder, source, example), (template, name, example.row)
        trained = "".join(trained_text(tok, enc))
        for msg in example.messages:
            if msg.role == "assistant" and msg.tool_calls:
                assert msg.tool_calls[0]["function"]["name"] in trained
            elif msg.role == "assistant":
                assert msg.content.strip() in trained
            else:  # system, user and tool results never carry loss
                assert msg.content.strip() not in trained
        for role, label in zip(enc.roles, enc.labels):
            if role in ("tools", "tool", "user", "system"):
                assert label == IGNORE, (role, example.row)
        assert "tools" in enc.roles and "get_weather" not in trained.split("{")[0]


def test_llama31_call_trains_json_and_end_of_turn_and_definitions_are_marked(llama, trained_text):
    example = load_examples(FIXTURES / "data" / "tool_calls.jsonl").examples[0]
    enc = Encoder(llama, EncodeOptions(template="llama3.1")).encode(example)
    assert trained_text(llama, enc) == ['{"name": "get_weather", "parameters": {"city": "Lisbon"}}<|eot_id|>',
                                        "It is 21 degrees in Lisbon.<|eot_id|>"]
    marked = llama.decode([t for t, r in zip(enc.input_ids, enc.roles) if r == "tools"])
    assert marked.startswith("{\n") and '"name": "convert"' in marked and marked.rstrip().endswith("}")
    assert "tool_call" in enc.roles and "tool" in enc.roles


def test_a_template_that_cannot_write_tools_is_refused_naming_the_row():
    example = load_examples(FIXTURES / "data" / "tool_calls.jsonl").examples[0]
    encoder = Encoder(load_tokenizer(DEMO), EncodeOptions(template="llama3"))
    with pytest.raises(TemplateError) as info:
        encoder.encode(example)
    assert "row 1 has tool definitions and tool calls" in info.value.message
    assert "llama3.1" in info.value.hint


def test_parallel_calls_encode_where_the_template_allows_and_are_refused_by_row_where_not(folder, trained_text):
    examples = load_examples(FIXTURES / "data" / "parallel_calls.jsonl").examples
    tok = load_tokenizer(folder)
    chatml = Encoder(tok, EncodeOptions(template="auto"))
    parallel = chatml.encode(examples[3])
    assert parallel.input_ids == transformers_ids(folder, CHATML_TOOLS, examples[3])
    trained = "".join(trained_text(tok, parallel))
    assert trained.count("<tool_call>") == 2 and '"city": "Lima"' in trained and '"city": "Cusco"' in trained
    refused: list = []
    encoded = Encoder(tok, EncodeOptions(template="llama3.1")).encode_many(examples, refused)
    assert [e.row for e in encoded] == [1, 2, 3]
    assert [e.message for e in refused] == ["row 4: the chat template cannot render this conversation: This model "
                                            "only supports single tool-calls at once!"]
