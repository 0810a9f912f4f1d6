"""Dataset loading, bad input: exact row numbers and reasons, and files Studio cannot use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from studio.core.data import load_examples
from studio.core.errors import DataError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "data"


def bad_reasons(report) -> dict[int, str]:
    return {b.row: b.reason for b in report.bad_rows}

# --- bad rows ------------------------------------------------------------------------------

def test_bad_chat_rows_have_exact_numbers_and_reasons():
    report = load_examples(FIXTURES / "bad_chat.jsonl")
    assert [e.row for e in report.examples] == [1, 14]
    assert report.total_rows == 16  # line 13 is blank
    assert bad_reasons(report) == {
        2: "invalid JSON: Expecting ',' delimiter (column 49)",
        3: "messages[0]: the conversation must start with a user turn (after an optional system turn), "
           "not assistant",
        4: "messages[1]: two user turns in a row (messages[0] and messages[1]); merge them or put the "
           "assistant turn between them",
        5: "messages[1]: a system turn may only come first",
        6: "messages[1].role is 'bot': expected system, user, assistant or tool (ShareGPT: system, human, gpt, "
           "function_call or observation)",
        7: "messages[1].content is empty",
        8: "messages[0].content must be a string, got a list",
        9: "'messages' must be a list of turns, got a string",
        10: "missing field 'messages'",
        11: "messages[2]: the conversation ends with a user turn; it needs an assistant reply after it to "
            "learn from",
        12: "expected a JSON object with named fields, got a list",
        15: "messages[0].content is missing",
        16: "messages[0] has no 'role' (or ShareGPT 'from')",
        17: "'messages' is an empty list",
    }
    assert report.bad_rows[0].raw.startswith('{"messages": [{"role": "user"')


def test_bad_sharegpt_rows():
    assert bad_reasons(load_examples(FIXTURES / "bad_sharegpt.json")) == {
        2: "conversations[1]: a tool result must follow an assistant turn that calls a tool (tool_calls or "
           "function_call)",
        3: "conversations[1].value is missing",
        4: "conversations[1] must be an object with role and content, got a string",
        5: "'system' must be a string, got a number",
    }


def test_bad_alpaca_rows():
    assert bad_reasons(load_examples(FIXTURES / "bad_alpaca.json")) == {
        2: "'output' is empty",
        3: "'instruction' must be a string, got a number",
        4: "'instruction' and 'input' empty or missing: there is no question to answer",
        5: "history[0] must be a [question, answer] pair of non-empty strings",
        6: "missing field 'output'",
    }


def test_bad_preference_rows():
    reasons = bad_reasons(load_examples(FIXTURES / "bad_prefs.jsonl"))
    assert reasons[2] == "missing field 'rejected'"
    assert reasons[3].startswith("'chosen' and 'rejected' are identical")
    assert reasons[4].startswith("'chosen' and 'rejected' do not open with the same user turn")
    assert reasons[5].startswith("no prompt: 'chosen' and 'rejected' are single answers")
    assert reasons[6] == "'rejected' must be a list of turns, got a number"
    assert reasons[7].startswith("chosen[0]: two user turns in a row (prompt and chosen[0])")
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7]


def test_a_stray_row_of_another_format_is_a_bad_row_not_the_detected_format():
    report = load_examples(FIXTURES / "mostly_chat.jsonl")
    assert report.format == "messages" and report.usable_rows == 3
    assert bad_reasons(report) == {2: "missing field 'messages'"}


def test_csv_rows_with_the_wrong_number_of_cells():
    report = load_examples(FIXTURES / "bad_cells.csv")
    assert bad_reasons(report) == {2: "has 1 more cell(s) than the header's 2 columns",
                                   3: "has fewer cells than the header's 2 columns"}


def test_summary_lists_bad_rows_and_caps_the_list():
    report = load_examples(FIXTURES / "bad_chat.jsonl")
    text = report.summary(max_bad=3)
    assert "OpenAI messages format (messages)" in text
    assert "16 rows, 2 usable, 14 bad" in text
    assert "row 2: invalid JSON" in text and "row 4: messages[1]: two user turns" in text
    assert "row 5:" not in text and "... and 11 more" in text


# --- unusable files ------------------------------------------------------------------------

@pytest.mark.parametrize("name, message, hint", [
    ("missing.jsonl", "dataset not found", "check the path"),
    ("binary.jsonl", "is a binary file, not text", ".jsonl"),
    ("latin1.jsonl", "is not UTF-8 text (undecodable byte at offset 46)", "save the file as UTF-8"),
    ("notes.pdf", "cannot read '.pdf' files as a dataset", "convert it to"),
    ("empty.jsonl", "holds no rows", "add rows"),
    ("broken.json", "is not valid JSON: Expecting value at line 1, column 16", "JSON Lines"),
    ("single_object.json", "no single list of rows under a key (keys: messages)", "JSON array"),
    ("all_bad.jsonl", "has no usable rows: all 2 rows are bad", "column mapping"),
])
def test_unusable_files_raise_data_errors_naming_the_file(name, message, hint):
    with pytest.raises(DataError) as info:
        load_examples(FIXTURES / name)
    assert name in info.value.message and message in info.value.message
    assert hint in info.value.hint


def test_an_empty_path_is_no_file_not_the_current_folder():
    with pytest.raises(DataError, match="no dataset file given"):
        load_examples("")


def test_all_bad_error_lists_the_rows():
    with pytest.raises(DataError) as info:
        load_examples(FIXTURES / "all_bad.jsonl")
    assert "row 2: 'messages' must be a list of turns, got a string" in info.value.message


def test_undetectable_columns_are_listed_with_accepted_shapes():
    with pytest.raises(DataError) as info:
        load_examples(FIXTURES / "unknown_columns.jsonl")
    assert "cannot tell the format" in info.value.message
    assert "columns: question, answer" in info.value.message
    assert "conversations = [{from, value}, ...]" in info.value.hint
    assert "{instruction: question, output: answer}" in info.value.hint


def test_unreadable_parquet_and_plain_folder(tmp_path):
    fake = tmp_path / "rows.parquet"
    fake.write_text('{"messages": []}\n')
    with pytest.raises(DataError, match="cannot read .*rows.parquet as Parquet"):
        load_examples(fake)
    with pytest.raises(DataError, match="not a dataset saved with datasets' save_to_disk"):
        load_examples(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files regardless of mode")
def test_unreadable_file_permission(tmp_path):
    path = tmp_path / "locked.jsonl"
    path.write_text((FIXTURES / "chat.jsonl").read_text())
    path.chmod(0)
    with pytest.raises(DataError, match="no permission to read .*locked.jsonl"):
        load_examples(path)


def test_misnamed_json_kinds_are_still_read(tmp_path):
    lines = (FIXTURES / "chat.jsonl").read_text()
    (tmp_path / "lines.json").write_text(lines)
    assert [e.row for e in load_examples(tmp_path / "lines.json").examples] == [1, 2, 4]
    (tmp_path / "array.jsonl").write_text((FIXTURES / "sharegpt.json").read_text())
    assert load_examples(tmp_path / "array.jsonl").format == "sharegpt"


def test_a_wrong_json_type_reads_as_english(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"messages": {"role": "user"}}\n{"messages": [{"role": "user", "content": 5}]}\n'
                    '{"messages": [[1]]}\n')
    with pytest.raises(DataError) as info:
        load_examples(path, format="messages")
    reasons = dict(line.strip().removeprefix("row ").split(": ", 1) for line in info.value.message.splitlines()
                   if line.strip().startswith("row "))
    reasons = {int(k): v for k, v in reasons.items()}
    assert reasons[1] == "'messages' must be a list of turns, got an object"
    assert reasons[2].endswith("got a number")
    assert reasons[3].endswith("got a list")
