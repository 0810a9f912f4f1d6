"""The dataset shapes people already have: preference sides as single messages, content parts,
unpaired KTO labels, per-message loss switches and raw text; each detected, and each encoded to the
ids and labels expected on the demo tokenizer and on Meta's Llama 3.2 tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.core.conversation import Message
from studio.core.data import load_examples
from studio.core.encoding import EncodeOptions, Encoder
from studio.core.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "data"
DEMO = ROOT / "resources" / "demo-model"


@pytest.fixture(scope="module", params=["demo", "llama"])
def tok(request):
    return load_tokenizer(DEMO) if request.param == "demo" else request.getfixturevalue("llama")


def reasons(report) -> dict[int, str]:
    return {b.row: b.reason for b in report.bad_rows}


# --- preference ----------------------------------------------------------------------------

def test_preference_sides_as_single_messages_text_or_turns_after_any_prompt():
    report = load_examples(FIXTURES / "prefs_shapes.jsonl")
    assert report.format == "preference" and report.usable_rows == 4
    one, two, three, four = report.examples
    assert one.messages == [Message("user", "Best month for Kyoto?")]
    assert (one.chosen, one.rejected) == ([Message("assistant", "Late March.")], [Message("assistant", "August.")])
    assert two.messages == [Message("system", "Be brief."), Message("user", "Currency in Hungary?")]
    assert two.chosen == [Message("assistant", "The forint.")]
    assert three.messages == [Message("user", "Capital of Peru?")] and three.rejected == [Message("assistant", "Cusco.")]
    assert four.chosen == [Message("assistant", "No tipping.")]
    assert reasons(report)[5].startswith("no prompt: 'chosen' and 'rejected' are single answers")
    assert "data.columns" in reasons(report)[5]


def test_sharegpt_preference_file_takes_its_prompt_from_the_conversations():
    report = load_examples(FIXTURES / "prefs_sharegpt.json")
    assert report.format == "preference" and report.bad_rows == []
    assert report.examples[1].messages == [Message("system", "Be brief."), Message("user", "Currency in Hungary?")]
    assert report.examples[1].chosen == [Message("assistant", "The forint.")]


def test_single_message_preference_pair_encodes_with_shared_prompt_ids(tok):
    example = load_examples(FIXTURES / "prefs_shapes.jsonl").examples[0]
    pair = Encoder(tok, EncodeOptions(template="llama3")).encode_pair(example)
    n = pair.prompt_len
    assert pair.chosen.input_ids[:n] == pair.rejected.input_ids[:n]
    assert tok.decode(pair.chosen.input_ids[:n]).endswith("Best month for Kyoto?<|eot_id|><|start_header_id|>"
                                                          "assistant<|end_header_id|>\n\n")
    assert tok.decode(pair.chosen.input_ids[n:]) == "Late March.<|eot_id|>"
    assert tok.decode(pair.rejected.input_ids[n:]) == "August.<|eot_id|>"


# --- content parts -------------------------------------------------------------------------

def test_text_parts_with_text_or_value_are_joined_and_other_parts_refused():
    report = load_examples(FIXTURES / "parts.jsonl")
    assert report.examples[1].messages[0] == Message("user", "Capital of Peru?")
    assert reasons(report) == {
        2: "messages[0].content[0] is a part of type 'image'; Studio trains on text only, so drop the row or "
           "replace the part with text",
        4: "messages[0].content[0] is a part of type 'audio'; Studio trains on text only, so drop the row or "
           "replace the part with text"}


# --- unpaired KTO --------------------------------------------------------------------------

def test_kto_labels_in_every_spelling_and_a_bad_label_named():
    report = load_examples(FIXTURES / "kto.jsonl")
    assert report.format == "messages" and report.mapping["label"] == "label"
    assert [e.label for e in report.examples] == [True, False, True, False, True]
    assert reasons(report) == {6: "'label' is 'maybe': a desirability label must be true/false, 1/0 or good/bad"}


def test_a_label_column_under_another_name_is_mapped():
    report = load_examples(FIXTURES / "kto.jsonl", columns={"label": "label"})
    assert report.examples[1].label is False
    plain = load_examples(FIXTURES / "chat.jsonl")
    assert all(e.label is None for e in plain.examples)


# --- per-message loss switches -------------------------------------------------------------

def test_loss_switches_turn_turns_off_and_on(tok, trained_text):
    report = load_examples(FIXTURES / "switches.jsonl")
    assert reasons(report) == {3: "messages[1].loss_weight is 0.5: a loss switch must be 0 or 1"}
    first, second = report.examples
    assert first.messages[1].train is False and second.messages[1].train is True
    encoder = Encoder(tok, EncodeOptions(template="llama3"))
    assert trained_text(tok, encoder.encode(first)) == ["Late March, for the blossoms.<|eot_id|>"]
    assert trained_text(tok, encoder.encode(second)) == ["Currency in Hungary?<|eot_id|>", "The forint.<|eot_id|>"]


# --- raw text ------------------------------------------------------------------------------

@pytest.mark.parametrize("split, docs", [("line", 4), ("paragraph", 3), ("file", 1)])
def test_txt_files_split_into_documents(split, docs):
    report = load_examples(FIXTURES / "long.txt", text_split=split)
    assert report.format == "text" and report.usable_rows == docs
    assert all(e.kind == "text" and e.messages == [] for e in report.examples)
    if split == "paragraph":
        assert report.examples[1].text.startswith("Porto lies") and report.examples[1].text.endswith("site.")
        assert report.examples[2].extra["line"] == 8


def test_text_blocks_end_every_document_and_drop_only_the_remainder(tok):
    docs = load_examples(FIXTURES / "long.txt", text_split="paragraph").examples
    encoder = Encoder(tok, EncodeOptions(template="llama3", max_length=16))
    whole = Encoder(tok, EncodeOptions(template="llama3")).encode_many(docs)
    end = "<|end_of_text|>"
    assert [tok.decode(e.input_ids) for e in whole] == [f"<|begin_of_text|>{d.text}{end}" for d in docs]
    blocks = encoder.encode_blocks(docs)
    stream = [t for e in whole for t in e.input_ids]
    assert blocks.tokens == len(stream) and blocks.documents == 3 and blocks.end_token == end
    assert blocks.remainder == len(stream) % 16 and len(blocks.blocks) == len(stream) // 16
    assert [t for b in blocks.blocks for t in b.input_ids] == stream[:len(stream) - blocks.remainder]
    assert all(b.labels == b.input_ids and len(b.input_ids) == 16 for b in blocks.blocks)
    starts = [(b, pos, row) for b in blocks.blocks for pos, row in b.documents]
    assert [row for *_, row in starts] == [1, 2, 3] and starts[0][:2] == (blocks.blocks[0], 0)
    assert all(b.input_ids[pos] == tok.bos_id and b.roles[pos] == "bos" for b, pos, _ in starts)


def test_text_rows_are_not_wrapped_in_a_chat_template(tok):
    doc = load_examples(FIXTURES / "general.jsonl").examples[0]
    enc = Encoder(tok, EncodeOptions(template="llama3")).encode(doc)
    assert "<|start_header_id|>" not in tok.decode(enc.input_ids)
    assert enc.labels == enc.input_ids and enc.roles[0] == "bos" and enc.roles[-1] == "eos"


# --- near misses: hints naming the setting that fixes them ---------------------------------

def test_label_and_tools_columns_under_other_names_get_a_hint_naming_the_mapping():
    report = load_examples(FIXTURES / "kto_tag.jsonl")
    assert all(e.label is None and e.tools is None for e in report.examples)
    assert any("data.columns={label: kto_tag}" in n and "Data page" in n for n in report.notes)
    assert any("data.columns={tools: functions}" in n for n in report.notes)
    mapped = load_examples(FIXTURES / "kto_tag.jsonl", columns={"label": "kto_tag", "tools": "functions"})
    assert [e.label for e in mapped.examples] == [True, False] and mapped.notes == []
    assert mapped.examples[0].tools == [{"name": "get_weather", "parameters": {}}]


def test_a_lone_text_column_is_suggested_as_raw_text():
    from studio.core.errors import DataError

    with pytest.raises(DataError) as info:
        load_examples(FIXTURES / "documents.jsonl")
    assert "data.columns={text: content}" in info.value.hint
    report = load_examples(FIXTURES / "documents.jsonl", columns={"text": "content"})
    assert report.format == "text" and report.examples[1].text == "Porto lies on the Douro."


# --- every shape: ids equal transformers' rendering, and exactly the expected tokens train ----

SHAPES = {  # name: (row, expected trained stretches) -- the examples of docs/data.md
    "messages": ({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of Peru?"},
                               {"role": "assistant", "content": "Lima."}]}, ["Lima.<|eot_id|>"]),
    "sharegpt": ({"conversations": [{"from": "human", "value": "Capital of Peru?"}, {"from": "gpt", "value": "Lima."}]},
                 ["Lima.<|eot_id|>"]),
    "alpaca": ({"instruction": "Translate to French.", "input": "Where is the station?", "output": "Où est la gare ?"},
               ["Où est la gare ?<|eot_id|>"]),
    "prompt_completion": ({"prompt": "Capital of Peru?", "completion": "Lima."}, ["Lima.<|eot_id|>"]),
    "kto": ({"messages": [{"role": "user", "content": "Capital of Peru?"}, {"role": "assistant", "content": "Cusco."}],
             "label": False}, ["Cusco.<|eot_id|>"]),
    "switches": ({"messages": [{"role": "user", "content": "Capital of Peru?"},
                               {"role": "assistant", "content": "Cusco.", "weight": 0},
                               {"role": "user", "content": "Sure?", "train": True},
                               {"role": "assistant", "content": "Lima."}]}, ["Sure?<|eot_id|>", "Lima.<|eot_id|>"]),
    "parts": ({"messages": [{"role": "user", "content": [{"type": "text", "text": "Capital of "},
                                                         {"type": "text", "value": "Peru?"}]},
                            {"role": "assistant", "content": [{"type": "text", "text": "Lima."}]}]}, ["Lima.<|eot_id|>"]),
    "preference": ({"prompt": [{"from": "human", "value": "Capital of Peru?"}],
                    "chosen": {"role": "assistant", "content": "Lima."}, "rejected": "Cusco."}, ["Lima.<|eot_id|>"]),
}


@pytest.mark.parametrize("name", SHAPES)
def test_each_shape_encodes_to_transformers_ids_and_the_expected_labels(tok, name, tmp_path, trained_text):
    import json

    from studio.core.templates import BUILTIN_TEMPLATES

    row, expected = SHAPES[name]
    path = tmp_path / f"{name}.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    report = load_examples(path)
    assert report.bad_rows == [] and report.format == ("messages" if name in ("kto", "switches", "parts") else name)
    example = report.examples[0]
    encoder = Encoder(tok, EncodeOptions(template="llama3"))
    enc = encoder.encode_pair(example).chosen if example.kind == "preference" else encoder.encode(example)
    turns = example.messages + (example.chosen or [])
    hf = _hf(tok.path, BUILTIN_TEMPLATES["llama3"])
    assert enc.input_ids == list(hf.apply_chat_template([m.template_dict() for m in turns], tokenize=True,
                                                        return_dict=True)["input_ids"])
    assert trained_text(tok, enc) == expected
    assert enc.labels == [t if label != -100 else -100 for t, label in zip(enc.input_ids, enc.labels)]


def _hf(folder, template):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(folder))
    hf.chat_template = template
    return hf
