"""Runs on the new dataset shapes: unpaired KTO trains on labelled rows, SFT on a labelled file keeps
the desirable rows, raw text trains in blocks, a tool-calling file trains on every row, and a run
that would skip too many rows refuses to start."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from studio.core import config as config_mod
from studio.core.conversation import Example
from studio.core.errors import DataError

ROOT = Path(__file__).resolve().parents[3]
DATASETS = ROOT / "resources" / "datasets"
FIXTURES = ROOT / "tests" / "fixtures" / "data"
pytestmark = pytest.mark.slow  # each run loads a model and trains a few steps (10-40 s on 2 busy cores)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a busy two-core machine a second thread spin-waits."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def labelled_file(folder: Path, pairs: int = 16) -> Path:
    """Unpaired KTO rows (a conversation and a boolean label), from the demo preference pairs."""
    rows = []
    for line in (DATASETS / "travel_prefs.jsonl").read_text(encoding="utf-8").splitlines()[:pairs]:
        pair = json.loads(line)
        prompt = pair["prompt"] if isinstance(pair["prompt"], list) else [{"role": "user", "content": pair["prompt"]}]
        for side, label in (("chosen", True), ("rejected", False)):
            answer = pair[side] if isinstance(pair[side], str) else pair[side][-1]["content"]
            rows.append({"messages": prompt + [{"role": "assistant", "content": answer}], "label": label})
    path = folder / "kto.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def run(model: Path, folder: Path, objective: str, train: Path, steps: int = 3, **settings):
    """Train ``objective`` in this process through the worker's own RunContext: (status, events, ctx)."""
    from studio.worker.context import RunContext
    from studio.worker.events import Events

    data = {"model": {"path": str(model)},
            "data": {"train": str(train), "max_length": 128, "eval_fraction": 0.0, "padding": "longest"},
            "method": {"name": "lora", "rank": 4, "alpha": 8},
            "train": {"objective": objective, "max_steps": steps, "batch_size": 4, "precision": "fp32",
                      "device": "cpu", "learning_rate": 5e-3},
            "eval": {"every_steps": 0, "sample_prompts": []},
            "output": {"save_every_steps": 100, "keep_checkpoints": 1, "report_to": ["none"]}}
    for key, value in settings.items():
        section, name = key.split("__")
        data[section][name] = value
    cfg = config_mod.from_dict(data)
    run_dir = folder / objective
    run_dir.mkdir(parents=True)
    config_mod.save(cfg, run_dir / "config.yaml")
    ctx = RunContext(cfg, run_dir, Events(run_dir / "events.jsonl", stdout=None))
    status = importlib.import_module(f"studio.worker.recipes.{objective}").run(ctx)
    ctx.events.close()
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return status, events, ctx


def losses(events):
    return [e["loss"] for e in events if e["type"] == "step"]


def test_unpaired_kto_trains_on_the_labelled_rows_and_its_loss_moves(tiny_model, tmp_path):
    from studio.worker.recipes import kto

    train = labelled_file(tmp_path)
    status, events, ctx = run(tiny_model, tmp_path, "kto", train, steps=4)
    assert status == "completed"
    started = next(e for e in events if e["type"] == "started")
    assert started["train_rows"] == 32
    steps = losses(events)
    assert len(steps) == 4 and len(set(steps)) > 1  # the loss moves
    rows = kto.kto_rows(ctx, ctx.train_examples)
    assert [r["label"] for r in rows] == [ex.label for ex in ctx.train_examples] == [True, False] * 16
    one = ctx.train_examples[0]
    first = ctx.encoder().encode_pair(Example(1, one.messages[:-1], chosen=one.messages[-1:], rejected=[]))
    assert rows[0]["prompt_ids"] + rows[0]["completion_ids"] == first.chosen.input_ids


def test_kto_on_rows_without_labels_names_the_rows(tiny_model, tmp_path):
    from studio.worker.recipes import kto
    from studio.worker.context import RunContext

    cfg = config_mod.from_dict({"model": {"path": str(tiny_model)},
                                "data": {"train": str(FIXTURES / "kto.jsonl"), "max_skipped": 0.5},
                                "train": {"objective": "kto"}})
    ctx = RunContext(cfg, tmp_path)
    examples = list(ctx.train_examples) + [Example(99, ctx.train_examples[0].messages)]
    with pytest.raises(DataError, match=r"1 row\(s\) have no desirability label \(rows \[99\]\)"):
        kto.kto_rows(ctx, examples)


def test_sft_on_a_labelled_file_trains_only_the_desirable_rows(tiny_model, tmp_path):
    status, events, _ = run(tiny_model, tmp_path, "sft", labelled_file(tmp_path), steps=1, data__max_skipped=0.5)
    assert status == "completed"
    assert next(e for e in events if e["type"] == "started")["train_rows"] == 16
    warning = next(e for e in events if e["type"] == "warning" and e["code"] == "sft_labels")
    assert "16 training row(s) are labelled undesirable" in warning["message"]


def test_sft_on_a_labelled_file_refuses_past_the_skip_threshold(tiny_model, tmp_path):
    with pytest.raises(DataError) as info:
        run(tiny_model, tmp_path, "sft", labelled_file(tmp_path), steps=1)
    assert "16 of 32 rows (50%) would be skipped, more than data.max_skipped=0.1" in info.value.message


def test_continued_pretraining_on_a_txt_file_trains_in_blocks(tiny_model, tmp_path):
    docs = [json.loads(line)["text"] for line in (DATASETS / "general_text.jsonl").read_text().splitlines()[:30]]
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(docs) + "\n", encoding="utf-8")
    status, events, ctx = run(tiny_model, tmp_path, "sft", text, steps=3, data__max_length=64,
                              data__eval_fraction=0.2)
    assert status == "completed"
    started = next(e for e in events if e["type"] == "started")
    blocks = ctx.encoder().encode_blocks(ctx.train_examples)  # the file loaded whole, split as before
    held = ctx.encoder().encode_blocks(ctx.eval_examples)
    assert started["train_rows"] == len(blocks.blocks) and started["train_tokens"] == 64 * len(blocks.blocks)
    assert started["eval_rows"] == len(held.blocks) > 0
    assert blocks.documents == 24 and blocks.remainder < 64
    logs = [e["text"] for e in events if e["type"] == "log"]
    log = next(text for text in logs if "continued pre-training (training)" in text)
    assert "24 documents" in log and "<|end_of_text|>" in log
    assert any("read as a stream" in text for text in logs) and not (ctx.run_dir / "blocks").exists()
    assert any(e["type"] == "eval" for e in events)
    assert len(set(losses(events))) > 1
    assert all(e["loss_tokens"] == 4 * 63 for e in events if e["type"] == "step")  # every token but each first


def test_a_tool_calling_file_trains_on_every_row(tiny_model, tmp_path):
    status, events, _ = run(tiny_model, tmp_path, "sft", FIXTURES / "tool_calls.jsonl", steps=1,
                            model__template="llama3.1", data__max_length=1024)
    assert status == "completed"
    assert next(e for e in events if e["type"] == "started")["train_rows"] == 3
    assert not [e for e in events if e["type"] == "warning" and e["code"] in ("bad_rows", "no_loss_tokens")]


def test_a_file_with_too_many_bad_rows_refuses_even_when_skipping_them(tiny_model, tmp_path):
    with pytest.raises(DataError) as info:
        run(tiny_model, tmp_path, "sft", FIXTURES / "parts.jsonl", steps=1)  # 2 of 4 rows have image/audio parts
    assert "2 of 4 rows (50%) would be skipped" in info.value.message and "data.max_skipped" in info.value.hint


def test_rows_the_template_cannot_render_are_skipped_by_row_within_the_threshold(tiny_model, tmp_path):
    status, events, _ = run(tiny_model, tmp_path, "sft", FIXTURES / "parallel_calls.jsonl", steps=1,
                            model__template="llama3.1", data__max_length=1024, data__max_skipped=0.5)
    assert status == "completed"
    assert next(e for e in events if e["type"] == "started")["train_rows"] == 3
    warning = next(e for e in events if e["type"] == "warning" and e["code"] == "template_rows")
    assert "row 4: the chat template cannot render" in warning["message"]
    with pytest.raises(DataError, match=r"1 of 4 rows \(25%\) would be skipped"):
        run(tiny_model, tmp_path / "strict", "sft", FIXTURES / "parallel_calls.jsonl", steps=1,
            model__template="llama3.1", data__max_length=1024)


#: The rows of parallel_calls.jsonl as preference pairs and as labelled rows: row 4 calls two tools in one
#: turn, which Llama 3.1's template cannot render.
UNRENDERABLE = {"pairs": FIXTURES / "prefs_parallel_calls.jsonl", "labelled": FIXTURES / "kto_parallel_calls.jsonl"}


@pytest.mark.parametrize("objective, shape, encode", [("dpo", "pairs", "preference_ids"),
                                                      ("kto", "labelled", "labelled_ids"),
                                                      ("reward", "pairs", "scored_pairs")])
def test_preference_rows_the_template_cannot_render_are_skipped_by_row(tiny_model, tmp_path, objective, shape,
                                                                       encode):
    from studio.worker.context import RunContext
    from studio.worker.events import Events
    from studio.worker.recipes import trl_common

    def context(**data):
        cfg = config_mod.from_dict({"model": {"path": str(tiny_model), "template": "llama3.1"},
                                    "data": {"train": str(UNRENDERABLE[shape]), "max_length": 1024,
                                             "eval_fraction": 0.0, **data},
                                    "train": {"objective": objective}})
        run_dir = tmp_path / f"run-{len(data)}"
        return RunContext(cfg, run_dir, Events(None, stdout=None))

    ctx = context(max_skipped=0.5)
    warnings = []
    ctx.events.subscribe(lambda e: warnings.append(e) if e["type"] == "warning" else None)
    rows = getattr(trl_common, encode)(ctx, ctx.train_examples)
    assert len(rows) == 3
    warning = next(e for e in warnings if e["code"] == "template_rows")
    assert "1 data.train row(s)" in warning["message"] and "row 4: the chat template cannot render" in warning["message"]
    strict = context()
    with pytest.raises(DataError, match=r"1 of 4 rows \(25%\) would be skipped"):
        getattr(trl_common, encode)(strict, strict.train_examples)


def test_a_dpo_run_skips_a_pair_the_template_cannot_render(tiny_model, tmp_path):
    status, events, _ = run(tiny_model, tmp_path, "dpo", UNRENDERABLE["pairs"], steps=1,
                            model__template="llama3.1", data__max_length=1024, data__max_skipped=0.5)
    assert status == "completed"
    assert any(e["type"] == "warning" and e["code"] == "template_rows" for e in events)


@pytest.mark.parametrize("attention", ["block", "document"])
def test_document_attention_keeps_each_document_to_itself(tiny_model, attention):
    import torch
    from transformers import AutoModelForCausalLM

    from studio.core.encoding import PadOptions
    from studio.core.pretrain import collate_blocks, pack_blocks
    from studio.core.tokenizer import load_tokenizer
    from studio.worker.recipes.sft import to_tensors

    tok = load_tokenizer(str(tiny_model))
    docs = [Example(1, [], text="Lisbon sits on seven hills."), Example(2, [], text="Porto lies on the Douro.")]
    size = sum(len(tok.encode(ex.text)) + 2 for ex in docs)  # BOS + text + end of text, each
    (block,) = pack_blocks(tok, docs, size).blocks[:]
    second = block.documents[1][0]
    batch = to_tensors(collate_blocks([block], PadOptions(), attention), "cpu")
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32).eval()
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=batch["position_ids"], use_cache=False).logits[0, second:]
        alone = model(input_ids=torch.tensor([block.input_ids[second:]])).logits[0]
    assert torch.allclose(packed, alone, atol=1e-5) == (attention == "document")


def test_a_run_with_document_attention_trains_no_token_on_another_document(tiny_model, tmp_path):
    docs = [json.loads(line)["text"] for line in (DATASETS / "general_text.jsonl").read_text().splitlines()[:30]]
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(docs) + "\n", encoding="utf-8")
    held = tmp_path / "held.txt"
    held.write_text("\n".join(docs[:12]) + "\n", encoding="utf-8")
    status, events, _ = run(tiny_model, tmp_path, "sft", text, steps=2, data__max_length=64,
                            data__text_attention="document", data__eval=str(held))
    assert status == "completed"
    assert any("continued pre-training (evaluation): 12 documents" in e.get("text", "") for e in events)
    assert any(e["type"] == "eval" for e in events)
    # each document's first token is predicted from nothing of its own: fewer loss tokens than 63 a block
    assert all(e["loss_tokens"] < 4 * 63 for e in events if e["type"] == "step")


def test_bad_rows_of_streamed_text_are_reported_or_refused_as_those_of_a_file_loaded_whole(tiny_model, tmp_path):
    from studio.core.text_stream import split_blocks
    from studio.worker.context import RunContext
    from studio.worker.events import Events

    lines = [json.dumps({"text": f"Document number {n} of the corpus."}) for n in range(300)]
    lines[4] = '{"text": "broken'
    for n in range(11, 300, 12):
        lines[n] = json.dumps({"text": n})  # 25 rows, more than the 20 a streamed file keeps with their reasons
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def checked(**data):
        cfg = config_mod.from_dict({"model": {"path": str(tiny_model)}, "data": {"train": str(path), **data}})
        ctx = RunContext(cfg, tmp_path / "run", Events(None, stdout=None))
        warnings = []
        ctx.events.subscribe(lambda e: warnings.append(e) if e["type"] == "warning" else None)
        source = ctx.text_source("data.train")
        split_blocks(source, ctx.tokenizer, 16)
        ctx.check_text_rows(source, "data.train")
        return warnings

    (warning,) = checked(max_skipped=0.1)
    assert warning["code"] == "bad_rows" and warning["rows"][:2] == [5, 12] and len(warning["rows"]) == 20
    assert "skipped 26 bad row(s)" in warning["message"] and "(and 6 more)" in warning["message"]
    with pytest.raises(DataError, match=r"26 of 300 rows \(9%\) would be skipped"):
        checked(max_skipped=0.05)
    with pytest.raises(DataError, match="26 bad row"):
        checked(skip_bad_rows=False)
