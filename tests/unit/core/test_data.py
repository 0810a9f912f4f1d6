"""Dataset loading: every file kind and format, column mapping, splits, speed (bad input: test_data_errors)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from studio.core.conversation import Message
from studio.core.data import FORMATS, load_examples, load_split, split
from studio.core.errors import DataError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "data"
DATASETS = Path(__file__).resolve().parents[3] / "resources" / "datasets"

KYOTO = [Message("system", "You are a travel assistant."), Message("user", "Best month for Kyoto?"),
         Message("assistant", "Late March to early April, for the cherry blossoms.")]
HUNGARY = [Message("user", "Currency in Hungary?"), Message("assistant", "The forint.")]


def bad_reasons(report) -> dict[int, str]:
    return {b.row: b.reason for b in report.bad_rows}


# --- formats -------------------------------------------------------------------------------

def test_openai_messages_jsonl_rows_are_line_numbers_and_keep_scalar_extras():
    report = load_examples(FIXTURES / "chat.jsonl")
    assert report.format == "messages"
    assert (report.total_rows, report.usable_rows, report.bad_rows) == (3, 3, [])
    # Line 3 is blank, so the third record is row 4.
    assert [e.row for e in report.examples] == [1, 2, 4]
    assert report.examples[0].messages == KYOTO
    assert report.examples[0].kind == "chat"
    assert report.examples[1].extra == {"task": "qa", "reference": "Yes for US, no for EU.", "id": 7}
    assert report.examples[2].extra == {"score": 0.5}  # the list-valued "tags" is not a scalar


def test_sharegpt_maps_human_gpt_and_a_system_column():
    report = load_examples(FIXTURES / "sharegpt.json")
    assert report.format == "sharegpt"
    assert report.examples[0].messages == KYOTO
    assert report.examples[1].messages[0] == Message("system", "Answer briefly.")
    assert [m.role for m in report.examples[1].messages] == ["system", "user", "assistant"]


def test_alpaca_joins_input_and_unrolls_history():
    report = load_examples(FIXTURES / "alpaca.json")
    assert report.format == "alpaca"
    first, second, third = report.examples
    assert first.messages == KYOTO  # empty input adds nothing; system column comes first
    assert second.messages[0] == Message("user", "Translate to French.\n\nWhere is the station?")
    assert [m.role for m in third.messages] == ["user", "assistant", "user", "assistant"]
    assert third.messages[0].content == "Do I need a visa for Peru?"
    assert third.messages[-1].content == "US travellers do; EU travellers do not."


def test_alpaca_tsv_treats_an_empty_cell_as_no_input():
    report = load_examples(FIXTURES / "alpaca.tsv")
    assert report.format == "alpaca"
    assert report.examples[1].messages[0] == Message("user", "Best month for Kyoto?")


def test_prompt_completion_text_and_conversational_forms():
    report = load_examples(FIXTURES / "prompt_completion.jsonl")
    assert report.format == "prompt_completion"
    text, conv, mixed = report.examples
    assert text.kind == "completion" and text.completion_start == 1
    assert text.messages == [Message("user", "The capital of Portugal is"), Message("assistant", " Lisbon.")]
    assert conv.completion_start == 2 and conv.messages[-1] == Message("assistant", "Madrid.")
    assert mixed.messages[-1] == Message("assistant", "Rome.") and mixed.label is True and mixed.extra == {}


def test_preference_with_explicit_prompt_text_and_turns_and_repeated_prompt():
    report = load_examples(FIXTURES / "prefs.jsonl")
    assert report.format == "preference"
    text, conv, repeated = report.examples
    assert text.kind == "preference"
    assert text.messages == [Message("user", "Best month for Kyoto?")]
    assert text.rejected == [Message("assistant", "Any month.")]
    assert conv.messages == [Message("system", "Be brief."), Message("user", "Currency in Hungary?")]
    assert conv.chosen == [Message("assistant", "The forint.")]
    # chosen/rejected that repeat the prompt turns first are cut after them
    assert repeated.messages == HUNGARY[:1] and repeated.chosen == HUNGARY[1:]
    assert repeated.rejected == [Message("assistant", "The euro.")]


def test_preference_implicit_prompt_is_the_shared_opening():
    single, multi = load_examples(FIXTURES / "prefs_implicit.jsonl").examples
    assert single.messages == [Message("user", "Currency in Hungary?")]
    assert single.chosen == [Message("assistant", "The forint.")]
    assert single.rejected == [Message("assistant", "The euro.")]
    assert [m.content for m in multi.messages] == ["Visa for Peru?", "Not for short stays.", "Bolivia?"]
    assert multi.chosen == [Message("assistant", "Yes for US travellers.")]
    assert multi.rejected == [Message("assistant", "No idea.")]


def test_eval_prompts_with_a_reference_become_completions_and_keep_task_and_reference():
    report = load_examples(FIXTURES / "eval_prompts.jsonl")
    assert report.format == "messages"
    first, with_system, answered = report.examples
    assert first.kind == "completion" and first.completion_start == 1
    assert first.messages == HUNGARY and first.extra == {"task": "qa", "reference": "The forint."}
    assert with_system.completion_start == 2 and with_system.messages[-1] == Message("assistant", "Yes.")
    # A conversation that already ends with an answer stays a chat row; its reference is only kept.
    assert answered.kind == "chat" and answered.extra["reference"] == "Madrid"
    assert bad_reasons(report) == {4: "messages[0]: the conversation ends with a user turn; it needs an "
                                      "assistant reply after it to learn from"}


def test_mapped_eval_columns_are_kept_under_studio_names():
    report = load_examples(FIXTURES / "answers.csv", columns={"instruction": "question", "output": "gold",
                                                              "task": "kind", "reference": "gold"})
    assert report.examples[0].extra == {"task": "qa", "reference": "The forint."}


def test_plain_text_rows_for_general_text():
    report = load_examples(FIXTURES / "general.jsonl")
    assert report.format == "text"
    assert report.examples[0].kind == "text" and report.examples[0].messages == []
    assert report.examples[0].text == "Bread is made by mixing flour, water, salt and yeast."
    assert report.examples[0].extra == {"source": "kitchen"}
    assert bad_reasons(report) == {2: "'text' is empty"}


def test_json_object_wrapping_its_rows_under_a_key():
    report = load_examples(FIXTURES / "wrapped.json")
    assert report.format == "messages" and report.usable_rows == 2
    assert "'data'" in report.notes[0]


def test_csv_cell_holding_a_json_conversation():
    report = load_examples(FIXTURES / "chat.csv")
    assert report.format == "messages"
    assert report.examples[0].messages == HUNGARY
    assert report.examples[0].extra == {"task": "qa"}


def test_parquet_with_nested_conversations(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (FIXTURES / "chat.jsonl").read_text().splitlines() if line.strip()]
    path = tmp_path / "chat.parquet"
    pq.write_table(pa.Table.from_pylist([{"messages": r["messages"], "task": r.get("task")} for r in rows]), path)
    report = load_examples(path)
    assert report.format == "messages"
    assert [e.row for e in report.examples] == [1, 2, 3]  # record index + 1
    assert report.examples[0].messages == KYOTO
    assert report.examples[1].extra == {"task": "qa"} and report.examples[0].extra == {}


def test_saved_dataset_and_dataset_dict_folders(tmp_path):
    import datasets

    rows = [{"instruction": "Capital of Spain?", "input": None, "output": "Madrid."},
            {"instruction": "Capital of Italy?", "input": "One word.", "output": "Rome."}]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "single"))
    report = load_examples(tmp_path / "single")
    assert report.format == "alpaca" and report.usable_rows == 2
    assert report.examples[1].messages[0].content == "Capital of Italy?\n\nOne word."

    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows),
                                   "test": datasets.Dataset.from_list(rows[:1])})
    splits.save_to_disk(str(tmp_path / "dict"))
    report = load_examples(tmp_path / "dict")
    assert report.usable_rows == 2
    assert "used split 'train'" in report.notes[0] and "'test' (1 rows" in report.notes[0]
    assert load_examples(tmp_path / "dict" / "test").usable_rows == 1


def test_loading_never_imports_torch_so_the_gui_process_can_load_data(tmp_path):
    import subprocess
    import sys

    import datasets

    datasets.Dataset.from_list([{"prompt": "a", "completion": "b"}]).save_to_disk(str(tmp_path / "saved"))
    code = ("import sys; from studio.core.data import load_examples as load; "
            f"[load(p) for p in ({str(tmp_path / 'saved')!r}, {str(FIXTURES / 'chat.jsonl')!r})]; "
            "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- column mapping and forced formats -------------------------------------------------------

def test_column_mapping_overrides_detection_and_the_default_column():
    # The file also has a "messages" column holding text; the mapping picks "dialog" instead.
    report = load_examples(FIXTURES / "dialog.jsonl", columns={"messages": "dialog"})
    assert report.format == "messages" and report.bad_rows == []
    assert report.examples[0].messages == HUNGARY
    assert report.examples[0].extra == {"messages": "not the conversation"}
    assert "messages <- dialog" in report.summary()


def test_column_mapping_for_alpaca_fields_in_csv_with_a_multiline_cell():
    report = load_examples(FIXTURES / "qa.csv", columns={"instruction": "question", "output": "answer"})
    assert report.format == "alpaca"
    assert report.examples[1].messages[0] == Message("user", "Pack list for Iceland\nin May?")
    assert report.examples[1].extra == {"task": "qa"}


def test_forced_format_is_used_and_checked():
    report = load_examples(FIXTURES / "prompt_completion.jsonl", format="prompt_completion")
    assert report.usable_rows == 3
    with pytest.raises(DataError) as info:
        load_examples(FIXTURES / "chat.jsonl", format="alpaca")
    assert "format 'alpaca' needs the field(s) instruction, output" in info.value.message
    assert "columns found: messages, task, reference, id, tags, score" in info.value.message
    with pytest.raises(DataError, match="unknown dataset format 'openai'"):
        load_examples(FIXTURES / "chat.jsonl", format="openai")


def test_bad_column_mappings_name_the_problem():
    with pytest.raises(DataError) as info:
        load_examples(FIXTURES / "dialog.jsonl", columns={"messages": "dialogue"})
    assert "no column dialogue (for messages)" in info.value.message and "dialog" in info.value.message
    with pytest.raises(DataError, match="unknown field.*conversation"):
        load_examples(FIXTURES / "dialog.jsonl", columns={"conversation": "dialog"})


def test_every_format_the_config_offers_exists():
    from studio.core.config import DataConfig

    import dataclasses
    choices = {f.name: f.metadata.get("choices") for f in dataclasses.fields(DataConfig)}["format"]
    assert set(choices) - {"auto"} <= set(FORMATS)


# --- splits --------------------------------------------------------------------------------

def _many(count: int, tmp_path: Path) -> list:
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) + "\n" for i in range(count)))
    return load_examples(path).examples


def test_split_is_seeded_disjoint_and_complete(tmp_path):
    examples = _many(200, tmp_path)
    train, held = split(examples, 0.1, seed=7)
    again_train, again_held = split(examples, 0.1, seed=7)
    assert [e.row for e in held] == [e.row for e in again_held] and len(held) == 20
    assert [e.row for e in train] == [e.row for e in again_train]
    assert {e.row for e in train}.isdisjoint({e.row for e in held})
    assert sorted(e.row for e in train + held) == list(range(1, 201))
    assert [e.row for e in held] == sorted(e.row for e in held)  # file order kept
    assert [e.row for e in split(examples, 0.1, seed=8)[1]] != [e.row for e in held]


def test_split_edges(tmp_path):
    examples = _many(3, tmp_path)
    assert split(examples, 0.0, 1) == (examples, [])
    assert len(split(examples, 0.01, 1)[1]) == 1  # a non-zero share holds out at least one row
    assert len(split(examples, 0.9, 1)[0]) == 1  # and leaves at least one to train on
    assert split(examples[:1], 0.5, 1) == (examples[:1], [])
    with pytest.raises(DataError, match="eval fraction 1.5"):
        split(examples, 1.5, 1)


def test_load_split_holds_out_or_reads_the_eval_file():
    held = load_split(FIXTURES / "chat.jsonl", None, 0.34, 3)
    assert (len(held.train), len(held.eval), held.eval_report) == (2, 1, None)
    from_file = load_split(FIXTURES / "chat.jsonl", FIXTURES / "sharegpt.json", 0.5, 3)
    assert len(from_file.train) == 3 and from_file.eval_report.format == "sharegpt"
    assert from_file.eval[0].messages == KYOTO
    assert "split: 3 train, 2 eval" in from_file.summary()
    mapped = load_split(FIXTURES / "dialog.jsonl", FIXTURES / "chat.jsonl", 0.1, 3,
                        columns={"messages": "dialog"}, eval_columns={})
    assert mapped.eval_report.usable_rows == 3


# --- speed ---------------------------------------------------------------------------------

def test_100k_jsonl_rows_load_in_a_few_seconds(tmp_path):
    row = {"messages": [{"role": "system", "content": "You are a travel assistant."},
                        {"role": "user", "content": "Best month for Kyoto? " * 3},
                        {"role": "assistant", "content": "Late March to early April, for the blossoms. " * 4}],
           "task": "qa"}
    path = tmp_path / "big.jsonl"
    line = json.dumps(row) + "\n"
    path.write_text(line * 99_999 + '{"messages": "broken"}\n')
    start = time.perf_counter()
    report = load_examples(path)
    seconds = time.perf_counter() - start
    print(f"\n100k JSONL rows ({path.stat().st_size / 1e6:.1f} MB) loaded and validated in {seconds:.2f} s")
    assert report.usable_rows == 99_999 and [b.row for b in report.bad_rows] == [100_000]
    assert seconds < 30  # generous: shared 2-core machines; the figure printed above is what matters


# --- the shipped sample datasets -----------------------------------------------------------

@pytest.mark.skipif(not (DATASETS / "travel_chat.jsonl").exists(), reason="resources/datasets not made yet")
def test_shipped_travel_formats_normalise_to_the_same_conversations():
    chat = load_examples(DATASETS / "travel_chat.jsonl")
    sharegpt = load_examples(DATASETS / "travel_sharegpt.json")
    alpaca = load_examples(DATASETS / "travel_alpaca.json")
    assert (chat.format, sharegpt.format, alpaca.format) == ("messages", "sharegpt", "alpaca")
    assert chat.bad_rows == [] and sharegpt.bad_rows == [] and alpaca.bad_rows == []
    assert [e.messages for e in chat.examples] == [e.messages for e in sharegpt.examples]
    assert [e.messages for e in chat.examples] == [e.messages for e in alpaca.examples]


@pytest.mark.skipif(not (DATASETS / "travel_eval.jsonl").exists(), reason="resources/datasets not made yet")
def test_shipped_eval_and_general_text_files_load_whole():
    evaluation = load_examples(DATASETS / "travel_eval.jsonl")
    assert evaluation.bad_rows == [] and all(e.extra.get("task") and e.extra.get("reference")
                                             for e in evaluation.examples)
    assert load_examples(DATASETS / "general_text.jsonl").format == "text"
    for name in ("travel_prefs.jsonl", "travel_completion.jsonl"):
        assert load_examples(DATASETS / name).bad_rows == []
