"""Core encoding gives exactly what TRL 1.16's own SFT preparation gives, row for row.

TRL runs its real code path: ``SFTTrainer._prepare_dataset`` (tokenize through
``apply_chat_template``, build labels from assistant or completion masks, truncate, drop rows left
without loss) on a trainer object given only the attributes that method reads, which is what
``SFTTrainer.__init__`` sets before calling it. That skips loading a model, which preparation
never touches. The tokenizer is Meta's Llama 3.2 one with TRL's own llama3 template, for which TRL
swaps in its ``{% generation %}`` training template under ``assistant_only_loss``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from studio.core.conversation import Example, Message
from studio.core.data import load_examples
from studio.core.encoding import EncodeOptions, Encoder, PadOptions, collate, pack_groups, rows_without_loss
from studio.core.tokenizer import load_tokenizer

DATASETS = Path(__file__).resolve().parents[3] / "resources" / "datasets"
ROWS = 100


@pytest.fixture(scope="module")
def hf(llama_dir):
    pytest.importorskip("trl")
    from transformers import AutoTokenizer
    from trl.chat_template_utils import llama3_chat_template

    tok = AutoTokenizer.from_pretrained(llama_dir)
    tok.chat_template = llama3_chat_template
    return tok


def trl_prepare(hf, rows: list[dict], tmp_path, assistant_only=False, completion_only=False, **config):
    """TRL's own dataset preparation of ``rows``: a list of {input_ids, labels}."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer
    from trl.chat_template_utils import get_training_chat_template

    trainer = SFTTrainer.__new__(SFTTrainer)  # the attributes _prepare_dataset reads, set as __init__ sets them
    trainer.chat_template = get_training_chat_template(hf) if assistant_only else None
    trainer.completion_only_loss, trainer._tokenizer = completion_only, hf
    args = SFTConfig(output_dir=str(tmp_path), assistant_only_loss=assistant_only, completion_only_loss=completion_only,
                     report_to=[], use_cpu=True, bf16=False, **{"max_length": None, **config})
    prepared = trainer._prepare_dataset(Dataset.from_list(rows), hf, args, packing=False, formatting_func=None,
                                        dataset_name="train")
    return [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in prepared]


def chat_rows(limit=ROWS) -> list[dict]:
    path = DATASETS / "travel_chat.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is not there yet")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:limit]]


def as_example(i: int, messages: list[dict], completion_start=None) -> Example:
    return Example(i + 1, [Message(m["role"], m["content"]) for m in messages], completion_start=completion_start)


def ours_encoded(tokenizer, examples, **options):
    encoded = Encoder(tokenizer, EncodeOptions(template="llama3", **options)).encode_many(examples)
    dropped = set(rows_without_loss(encoded))  # TRL drops these after truncation
    return [{"input_ids": e.input_ids, "labels": e.labels} for e in encoded if e.row not in dropped]


def test_assistant_only_loss_matches_trl(hf, llama, tmp_path):
    rows = chat_rows()
    theirs = trl_prepare(hf, rows, tmp_path, assistant_only=True)
    mine = ours_encoded(llama, [as_example(i, r["messages"]) for i, r in enumerate(rows)], loss="assistant")
    assert len(mine) == len(theirs) == len(rows)
    for n, (a, b) in enumerate(zip(mine, theirs)):
        assert a == b, f"row {n + 1} differs"


@pytest.mark.parametrize("family", ["gemma", "phi3"])
def test_assistant_loss_matches_trl_training_templates_of_other_families(hf, llama_dir, tmp_path, family):
    """Core encoding equals the {% generation %} masks of TRL's training variant of each template
    (every family: test_template_families.py)."""
    import shutil
    from pathlib import Path as P

    from trl.chat_template_utils import _CHAT_TEMPLATES_DIR

    (tmp_path / "tokenizer.json").symlink_to(P(llama_dir) / "tokenizer.json")
    shutil.copy(P(llama_dir) / "tokenizer_config.json", tmp_path)
    (tmp_path / "chat_template.jinja").write_text((_CHAT_TEMPLATES_DIR / f"{family}.jinja").read_text())
    training = (_CHAT_TEMPLATES_DIR / f"{family}_training.jinja").read_text()
    encoder = Encoder(load_tokenizer(tmp_path), EncodeOptions(loss="assistant"))
    rows = [r for r in chat_rows(60) if r["messages"][0]["role"] != "system"]  # Gemma refuses system turns
    for i, row in enumerate(rows):
        theirs = hf.apply_chat_template(row["messages"], chat_template=training, return_dict=True,
                                        return_assistant_tokens_mask=True)
        mine = encoder.encode(as_example(i, row["messages"]))
        assert mine.input_ids == theirs["input_ids"]
        assert mine.labels == [t if m else -100 for t, m in zip(theirs["input_ids"], theirs["assistant_masks"])]


def prompt_completion_rows() -> list[tuple[list[dict], list[dict]]]:
    """Conversational prompt/completion pairs: chat rows cut before their last turn, plus the completion file."""
    pairs = [(r["messages"][:-1], r["messages"][-1:]) for r in chat_rows()]
    path = DATASETS / "travel_completion.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines()[:50] if path.exists() else []:
        row = json.loads(line)
        pairs.append(([{"role": "user", "content": row["prompt"]}], [{"role": "assistant", "content": row["completion"]}]))
    return pairs


def test_completion_only_loss_matches_trl(hf, llama, tmp_path):
    pairs = prompt_completion_rows()
    theirs = trl_prepare(hf, [{"prompt": p, "completion": c} for p, c in pairs], tmp_path, completion_only=True)
    mine = ours_encoded(llama, [as_example(i, p + c, len(p)) for i, (p, c) in enumerate(pairs)], loss="completion")
    assert len(mine) == len(theirs) == len(pairs)
    for n, (a, b) in enumerate(zip(mine, theirs)):
        assert a == b, f"pair {n + 1} differs"


def test_language_modelling_loss_matches_trl(hf, llama, tmp_path):
    rows = chat_rows(40)
    theirs = trl_prepare(hf, rows, tmp_path)
    assert ours_encoded(llama, [as_example(i, r["messages"]) for i, r in enumerate(rows)], loss="all") == theirs


@pytest.mark.parametrize(("mode", "side"), [("keep_start", "right"), ("keep_end", "left")])
def test_truncation_matches_trl(hf, llama, tmp_path, mode, side):
    rows = chat_rows(60)
    theirs = trl_prepare(hf, rows, tmp_path, assistant_only=True, max_length=48, truncation_mode=mode)
    mine = ours_encoded(llama, [as_example(i, r["messages"]) for i, r in enumerate(rows)], loss="assistant",
                        max_length=48, truncation_side=side)
    assert len(theirs) < len(rows) or mode == "keep_end"  # keep_start leaves some rows with prompt only
    assert mine == theirs


def test_pack_groups_match_trl_bfd(tmp_path):
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl.data_utils import pack_dataset

    rng = random.Random(7)
    lengths = [rng.choice([0, 1, 3, 5, 8, 13, 21, 40, 64, 70]) for _ in range(300)]
    # Row i is made of token i, so each packed row tells which rows it holds
    data = Dataset.from_dict({"input_ids": [[i] * n for i, n in enumerate(lengths)]})
    packed = pack_dataset(data, 64, "bfd")
    theirs = [sorted(set(ids), key=ids.index) for ids in packed["input_ids"]]
    assert pack_groups(lengths, 64) == theirs


def test_collate_matches_trl_collator(llama):
    pytest.importorskip("trl")
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    examples = [as_example(i, r["messages"]) for i, r in enumerate(chat_rows(6))]
    encoded = Encoder(llama, EncodeOptions(template="llama3", max_length=200)).encode_many(examples)
    features = [{"input_ids": e.input_ids, "labels": e.labels} for e in encoded]
    padded = DataCollatorForLanguageModeling(pad_token_id=128004)(features)
    mine = collate(encoded, PadOptions("longest", pad_id=128004))
    for key in ("input_ids", "labels", "attention_mask"):
        assert padded[key].tolist() == mine[key]
    free = DataCollatorForLanguageModeling(pad_token_id=128004, padding_free=True)(features)
    packed = collate(encoded, PadOptions("packing", pad_id=128004))
    for key in ("input_ids", "labels", "position_ids"):
        assert free[key].tolist() == packed[key]
    assert "attention_mask" not in free and packed["attention_mask"] is None


def test_rl_prompts_match_the_generation_prompt_trl_renders(hf, llama):
    """GRPO's input: the turns before the answer with the generation prompt, BOS once, no loss."""
    rows = load_examples(DATASETS / "travel_chat.jsonl").examples[:30]
    encoder = Encoder(llama, EncodeOptions(template="llama3"))
    for ex in rows:
        turns, answer = ex.prompt_and_answer()
        assert answer and answer[0].role == "assistant" and turns[-1].role == "user"
        mine = encoder.encode_prompt(ex)
        theirs = hf.apply_chat_template([{"role": m.role, "content": m.content} for m in turns],
                                        add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        assert mine.input_ids == theirs
        assert all(label == -100 for label in mine.labels) and mine.input_ids.count(128000) == 1
