"""Encoding with Meta's real Llama 3.2 tokenizer: exact ids, loss masks, truncation, padding, packing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.core.conversation import Example, Message
from studio.core.encoding import (IGNORE, EncodeOptions, Encoder, PadOptions, choose_pad_token, collate,
                                  pack_groups, rows_without_loss)
from studio.core.errors import ConfigError
from studio.core.tokenizer import load_tokenizer

DATASETS = Path(__file__).resolve().parents[3] / "resources" / "datasets"
BOS, START, END, EOT, NN = 128000, 128006, 128007, 128009, 271  # Llama 3 special ids; 271 is "\n\n"
USER, ASSISTANT, SYSTEM = 882, 78191, 9125  # the role names as tokens
HI, HELLO, BYE, SEE_YOU = [13347], [9906], [1383, 68], [10031, 499]


def chat(*turns, row=1, **kw) -> Example:
    return Example(row, [Message(r, c) for r, c in turns], **kw)


TWO_TURNS = chat(("user", "Hi"), ("assistant", "Hello"), ("user", "Bye"), ("assistant", "See you"))


def encode(llama, example, **options):
    return Encoder(llama, EncodeOptions(template="llama3", **options)).encode(example)


def header(role_id):
    return [START, role_id, END, NN]


def test_exact_ids_with_one_bos(llama):
    assert llama.encode("Bye") == BYE and llama.encode("See you") == SEE_YOU
    enc = encode(llama, TWO_TURNS)
    expected = ([BOS] + header(USER) + HI + [EOT] + header(ASSISTANT) + HELLO + [EOT]
                + header(USER) + BYE + [EOT] + header(ASSISTANT) + SEE_YOU + [EOT])
    assert enc.input_ids == expected
    assert enc.input_ids.count(BOS) == 1
    assert enc.attention_mask == [1] * len(expected)
    assert enc.warnings == []


def test_roles_colour_every_token(llama):
    enc = encode(llama, chat(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello")))
    assert enc.roles == (["bos"] + ["header"] * 4 + ["system"] * 3 + ["eot"] + ["header"] * 4 + ["user", "eot"]
                         + ["header"] * 4 + ["assistant", "eot"])


def loss_positions(enc):
    return [i for i, label in enumerate(enc.labels) if label != IGNORE]


def test_assistant_loss_trains_content_and_eot_of_every_assistant_turn(llama):
    enc = encode(llama, TWO_TURNS, loss="assistant")
    # 0 BOS, 1-4 header, 5 Hi, 6 eot, 7-10 header, 11 Hello, 12 eot, 13-16, 17-18 Bye, 19, 20-23, 24-25 See you, 26 eot
    assert loss_positions(enc) == [11, 12, 24, 25, 26]
    assert all(enc.labels[i] == enc.input_ids[i] for i in loss_positions(enc))
    assert [enc.input_ids[i] for i in (12, 26)] == [EOT, EOT]


def test_last_assistant_and_all(llama):
    assert loss_positions(encode(llama, TWO_TURNS, loss="last_assistant")) == [24, 25, 26]
    everything = encode(llama, TWO_TURNS, loss="all")
    assert everything.labels == everything.input_ids  # as TRL's language-modelling loss


def test_completion_loss_starts_after_the_generation_prompt(llama):
    row = chat(("user", "Hi"), ("assistant", "Hello"), ("user", "Bye"), ("assistant", "See you"), completion_start=3)
    assert loss_positions(encode(llama, row, loss="completion")) == [24, 25, 26]
    # a chat row under completion loss: its trailing assistant turn is the completion
    assert loss_positions(encode(llama, TWO_TURNS, loss="completion")) == [24, 25, 26]


def test_row_without_assistant_warns_and_is_listed(llama):
    enc = encode(llama, chat(("user", "Hi"), row=7))
    assert enc.labels == [IGNORE] * len(enc.input_ids)
    assert any("row 7" in w and "no assistant turn" in w for w in enc.warnings)
    assert rows_without_loss([enc, encode(llama, TWO_TURNS)]) == [7]


def test_right_truncation_counts_lost_loss_tokens(llama):
    enc = encode(llama, TWO_TURNS, max_length=25)
    assert enc.truncated and enc.original_length == 27 and len(enc.input_ids) == 25
    assert enc.lost_loss_tokens == 2  # "you" and the final <|eot_id|>
    assert loss_positions(enc) == [11, 12, 24]


def test_left_truncation_drops_the_start(llama):
    enc = encode(llama, TWO_TURNS, max_length=10, truncation_side="left")
    assert enc.input_ids == encode(llama, TWO_TURNS).input_ids[-10:]
    assert enc.lost_loss_tokens == 2 and len(loss_positions(enc)) == 3
    assert enc.roles[-1] == "eot"


def test_truncation_that_removes_every_loss_token_warns(llama):
    enc = encode(llama, chat(("user", "Hi"), ("assistant", "Hello"), row=3), max_length=8)
    assert enc.lost_loss_tokens == 2 and rows_without_loss([enc]) == [3]
    assert any("no token carries loss" in w and "max_length" in w for w in enc.warnings)


def rows_of(llama, *lengths):
    """Encoded rows whose lengths are ``lengths`` (cut from one long conversation)."""
    return [encode(llama, TWO_TURNS, max_length=n) for n in lengths]


def test_longest_padding_right_and_left(llama):
    a, b = rows_of(llama, 6, 4)
    batch = collate([a, b], PadOptions("longest", pad_id=128004))
    assert batch["input_ids"][1] == b.input_ids + [128004] * 2
    assert batch["labels"][1] == b.labels + [IGNORE] * 2
    assert batch["attention_mask"] == [[1] * 6, [1] * 4 + [0, 0]]
    assert batch["position_ids"][1] == [0, 1, 2, 3, 0, 0]
    left = collate([a, b], PadOptions("longest", pad_id=128004, side="left"))
    assert left["input_ids"][1] == [128004] * 2 + b.input_ids
    assert left["attention_mask"][1] == [0, 0, 1, 1, 1, 1]


def test_multiple_and_max_length_padding(llama):
    a, b = rows_of(llama, 13, 4)
    multiple = collate([a, b], PadOptions("multiple", pad_id=0, multiple_of=8))
    assert [len(r) for r in multiple["input_ids"]] == [16, 16]
    assert multiple["labels"][0][13:] == [IGNORE] * 3
    fixed = collate([a, b], PadOptions("max_length", pad_id=0, max_length=20))
    assert [len(r) for r in fixed["input_ids"]] == [20, 20] and sum(fixed["attention_mask"][1]) == 4


def test_labels_are_padded_by_position_even_when_pad_is_eot(llama):
    row = encode(llama, chat(("user", "Hi"), ("assistant", "Hello")))
    batch = collate([row, encode(llama, TWO_TURNS)], PadOptions("longest", pad_id=EOT))
    assert batch["labels"][0][len(row.input_ids) - 1] == EOT  # the real <|eot_id|> stays trained
    assert batch["labels"][0][len(row.input_ids):] == [IGNORE] * (27 - len(row.input_ids))


def test_packing_is_padding_free_with_restarting_positions(llama):
    a = encode(llama, chat(("user", "Hi"), ("assistant", "Hello")), loss="all")
    b = encode(llama, chat(("user", "Bye"), ("assistant", "See you")), loss="all")
    batch = collate([a, b], PadOptions("packing", pad_id=0))
    n, m = len(a.input_ids), len(b.input_ids)
    assert batch["input_ids"] == [a.input_ids + b.input_ids]
    assert batch["attention_mask"] is None
    assert batch["position_ids"] == [list(range(n)) + list(range(m))]
    assert batch["seq_lengths"] == [[n, m]]
    labels = batch["labels"][0]
    assert labels[0] == IGNORE and labels[n] == IGNORE  # no loss across the boundary
    assert labels[1:n] == a.input_ids[1:] and labels[n + 1:] == b.input_ids[1:]


class Row:  # TRL's collator tests work on raw ids; Encoded needs only these fields
    def __init__(self, ids, row=0):
        self.input_ids, self.labels, self.row = ids, list(ids), row


def test_collate_matches_trl_collator_cases():
    rows = [Row([1, 2, 3]), Row([4, 5])]
    basic = collate(rows, PadOptions("longest", pad_id=0))
    assert basic["input_ids"] == [[1, 2, 3], [4, 5, 0]] and basic["labels"] == [[1, 2, 3], [4, 5, IGNORE]]
    assert basic["attention_mask"] == [[1, 1, 1], [1, 1, 0]]
    four = collate(rows, PadOptions("multiple", pad_id=0, multiple_of=4))
    assert four["input_ids"] == [[1, 2, 3, 0], [4, 5, 0, 0]]
    assert four["labels"] == [[1, 2, 3, IGNORE], [4, 5, IGNORE, IGNORE]]
    assert collate(rows, PadOptions("longest", pad_id=999))["input_ids"] == [[1, 2, 3], [4, 5, 999]]
    free = collate(rows, PadOptions("packing"))
    assert free["input_ids"] == [[1, 2, 3, 4, 5]] and free["position_ids"] == [[0, 1, 2, 0, 1]]
    assert free["labels"] == [[IGNORE, 2, 3, IGNORE, 5]]


def test_pack_groups_matches_trl_bfd_cases():
    assert pack_groups([3, 4, 1], 4) == [[1], [0, 2]]  # -> [[4,5,6,7],[1,2,3,8]]
    assert pack_groups([5, 2, 4, 1], 4) == [[0], [2], [1, 3]]  # -> [[1,2,3,4],[8,9,10,11],[6,7,12]]
    assert pack_groups([5, 2, 3, 1], 4) == [[0], [2, 3], [1]]  # TRL docstring example
    assert pack_groups([2, 0, 3, 0, 1], 4) == [[2, 4], [0]]  # empty rows left out
    groups = pack_groups([7, 3, 9, 1, 4, 4, 2, 8, 5, 6], 10)
    assert sorted(i for g in groups for i in g) == list(range(10))
    assert all(sum([7, 3, 9, 1, 4, 4, 2, 8, 5, 6][i] for i in g) <= 10 for g in groups)


def test_pad_choice_is_finetune_right_pad_with_a_message(llama):
    choice = choose_pad_token(llama)
    assert (choice.token, choice.id, choice.source, choice.warning) == ("<|finetune_right_pad_id|>", 128004, "model", False)
    assert "128004" in choice.message


def tokenizer_copy(llama, tmp_path, **config_changes):
    """The Llama tokenizer with tokenizer_config.json fields changed (None removes a field)."""
    config = json.loads((Path(llama.path) / "tokenizer_config.json").read_text())
    for key, value in config_changes.items():
        config.pop(key, None) if value is None else config.__setitem__(key, value)
    (tmp_path / "tokenizer.json").symlink_to(Path(llama.path) / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    return load_tokenizer(tmp_path)


def test_pad_choice_without_model_pad_uses_the_reserved_pad(llama, tmp_path):
    for sub, pad in (("none", None), ("eos", "<|end_of_text|>")):
        (tmp_path / sub).mkdir()
        choice = choose_pad_token(tokenizer_copy(llama, tmp_path / sub, pad_token=pad))
        assert (choice.token, choice.id, choice.source) == ("<|finetune_right_pad_id|>", 128004, "reserved")
        assert "reserved" in choice.message and not choice.warning


def test_pad_choice_requested_and_eos_fallback(llama, tmp_path):
    assert choose_pad_token(llama, "<|reserved_special_token_0|>").id == 128002
    eos = choose_pad_token(llama, "<|end_of_text|>")
    assert eos.warning and "EOS" in eos.message
    with pytest.raises(ConfigError) as err:
        choose_pad_token(llama, "<pad>")
    assert err.value.errors[0][0] == "data.pad_token"
    tiny = tiny_tokenizer(tmp_path)
    fallback = choose_pad_token(tiny)
    assert (fallback.token, fallback.source, fallback.warning) == ("</s>", "eos", True)
    assert "warning" in fallback.message and "data.pad_token" in fallback.message


def tiny_tokenizer(folder: Path):
    """A word-level tokenizer with an EOS and nothing pad-like."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tk = Tokenizer(models.WordLevel({"hello": 0, "world": 1, "</s>": 2, "[UNK]": 3}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    return load_tokenizer(folder)


def test_preference_pair_shares_the_prompt(llama):
    row = Example(5, [Message("user", "Hi")], chosen=[Message("assistant", "Hello")],
                  rejected=[Message("assistant", "See you")])
    pair = Encoder(llama, EncodeOptions(template="llama3")).encode_pair(row)
    prompt = [BOS] + header(USER) + HI + [EOT] + header(ASSISTANT)
    assert pair.prompt_len == len(prompt) == 11
    assert pair.chosen.input_ids == prompt + HELLO + [EOT]
    assert pair.rejected.input_ids == prompt + SEE_YOU + [EOT]
    assert pair.chosen.labels == [IGNORE] * 11 + HELLO + [EOT]
    assert pair.rejected.labels == [IGNORE] * 11 + SEE_YOU + [EOT]


@pytest.mark.parametrize("side", ["right", "left"])
def test_truncated_pair_keeps_identical_prompts(llama, side):
    row = Example(5, [Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Bye")],
                  chosen=[Message("assistant", "See you")], rejected=[Message("assistant", "Hello")])
    limit = 22 if side == "left" else 25
    pair = Encoder(llama, EncodeOptions(template="llama3", max_length=limit, truncation_side=side)).encode_pair(row)
    full = Encoder(llama, EncodeOptions(template="llama3")).encode_pair(row)
    assert full.prompt_len == 24 and len(full.chosen.input_ids) == 27 and len(full.rejected.input_ids) == 26
    chosen, rejected = pair.chosen.input_ids, pair.rejected.input_ids
    assert chosen[:pair.prompt_len] == rejected[:pair.prompt_len]
    assert len(chosen) <= limit and len(rejected) <= limit and pair.chosen.truncated
    if side == "left":  # 5 prompt tokens go from both sides; the completions stay whole
        assert pair.prompt_len == 19 and chosen == full.chosen.input_ids[5:]
        assert rejected == full.rejected.input_ids[5:] and pair.chosen.lost_loss_tokens == 0
    else:  # the prompt stays whole; the completions are cut
        assert pair.prompt_len == 24 and (pair.chosen.lost_loss_tokens, pair.rejected.lost_loss_tokens) == (2, 1)


def test_bad_options_are_config_errors(llama):
    with pytest.raises(ConfigError) as err:
        Encoder(llama, EncodeOptions(template="llama3", loss="everything", truncation_side="middle"))
    assert [path for path, _ in err.value.errors] == ["data.loss", "data.truncation_side"]


def test_double_bos_is_detected(llama, tmp_path):
    template = "{{ bos_token + bos_token }}{% for m in messages %}{{ m['role'] + ': ' + m['content'] + eos_token }}{% endfor %}"
    tok = tokenizer_copy(llama, tmp_path, chat_template=template)
    encoder = Encoder(tok, EncodeOptions(loss="all"))
    assert any("BOS" in w and "2 times" in w for w in encoder.warnings)
    enc = encoder.encode(chat(("user", "Hi"), ("assistant", "Hello")))
    assert enc.input_ids[:2] == [BOS, BOS] and any("two BOS" in w for w in enc.warnings)


def test_template_without_an_end_of_turn_token_warns(llama, tmp_path):
    template = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
    encoder = Encoder(tokenizer_copy(llama, tmp_path, chat_template=template), EncodeOptions())
    assert any("never taught a token to stop" in w for w in encoder.warnings)
    assert not any("stop" in w for w in Encoder(llama, EncodeOptions(template="llama3")).warnings)


def test_a_token_across_a_span_edge_warns_and_counts_as_loss(llama):
    # ChatML keeps content untouched: "assistant\n" + "\nHello" makes one "\n\n" token across the edge
    enc = Encoder(llama, EncodeOptions(template="chatml")).encode(chat(("user", "Hi"), ("assistant", "\nHello")))
    k = enc.input_ids.index(NN)
    assert enc.labels[k] == NN
    assert any("crosses the edge" in w for w in enc.warnings)


def dataset_rows(name="travel_chat.jsonl", limit=None):
    path = DATASETS / name
    if not path.exists():
        pytest.skip(f"{path} is not there yet")
    lines = path.read_text(encoding="utf-8").splitlines()[:limit]
    return [chat(*[(m["role"], m["content"]) for m in json.loads(line)["messages"]], row=i + 1)
            for i, line in enumerate(lines)]


@pytest.mark.parametrize("loss", ["assistant", "completion"])
def test_encode_many_equals_encode_for_every_row(llama, loss):
    rows = dataset_rows()
    encoder = Encoder(llama, EncodeOptions(template="llama3", loss=loss, max_length=256))
    many = encoder.encode_many(rows)
    assert len(many) == len(rows) and any(e.truncated for e in many)
    for example, batched in zip(rows, many):
        assert encoder.encode(example) == batched


def test_chunked_encode_many_equals_encode(llama, monkeypatch):
    from studio.core import encoding

    monkeypatch.setattr(encoding, "CHUNK", 64)  # 300 rows: tokenizing one chunk while rendering the next
    rows = dataset_rows()
    encoder = Encoder(llama, EncodeOptions(template="llama3.1", loss="last_assistant"))
    assert encoder.encode_many(rows) == [encoder.encode(example) for example in rows]


@pytest.mark.parametrize("name", ["llama3", "llama3.1", "chatml", "phi3.jinja", "gemma.jinja"])
def test_fast_layout_equals_prefix_rendering(llama, tmp_path, trl_template, name):
    """Pieces read from probes and spans from prefix renders agree (Phi-3 adds EOS after the last turn)."""
    from studio.core.layout import Layout

    if name.endswith(".jinja"):
        encoder = Encoder(tokenizer_copy(llama, tmp_path, chat_template=trl_template(name)), EncodeOptions())
    else:
        encoder = Encoder(llama, EncodeOptions(template=name))
    layouter = encoder.layouter
    for example in dataset_rows(limit=60):
        if name == "gemma.jinja" and example.messages[0].role == "system":
            continue  # Gemma refuses system turns
        text = layouter.render(example.row, example.messages)
        fast, slow = Layout(example.row, text), Layout(example.row, text)
        turns = layouter._fast_turns(fast, example.messages)
        assert turns is not None and turns == layouter._slow_turns(slow, example.messages)
        assert fast.roles == slow.roles


@pytest.mark.parametrize("name", ["llama3", "llama3.1"])
def test_turn_pieces_tokenize_on_their_own_as_together(llama, name):
    encoder = Encoder(llama, EncodeOptions(template=name))
    for example in dataset_rows(limit=60):
        enc = encoder.encode(example)
        text = encoder.layouter.render(example.row, example.messages)
        edges = [0] + [start for start, _ in encoder.layouter.layout(example).roles[1:]] + [len(text)]
        pieces = [llama.encode(text[a:b]) for a, b in zip(edges, edges[1:])]
        assert [t for p in pieces for t in p] == enc.input_ids
        assert enc.warnings == []
