"""DPO, KTO, ORPO, reward modelling and GRPO each train a few steps on the demo model on CPU.

Every run must finish with status ``completed``, write only events that validate against the
protocol, leave a checkpoint in Studio's layout and a loadable ``final/``.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from studio.core import config as config_mod
from studio.core.protocol import validate_event

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "resources" / "demo-model"
PREFS = ROOT / "resources" / "datasets" / "travel_prefs.jsonl"
CHAT = ROOT / "resources" / "datasets" / "travel_chat.jsonl"


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a busy two-core machine a second thread spin-waits and is ~50x slower."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """The demo model; a tiny random Llama with the demo tokenizer until the demo weights exist."""
    if (DEMO / "config.json").exists():
        return DEMO
    if not (DEMO / "tokenizer.json").exists():
        pytest.skip("resources/demo-model is not built yet")
    from worker_runs import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def _context(model_dir: Path, tmp_path: Path, objective: str, data: Path, resume: str = "", data_settings=None,
             **train):
    """The worker's own RunContext for a few steps of ``objective`` on ``data``."""
    from studio.worker.context import RunContext
    from studio.worker.events import Events

    cfg = config_mod.from_dict({
        "model": {"path": str(model_dir)},
        "data": {"train": str(data), "max_length": 128, "eval_fraction": 0.1, "padding": "longest",
                 **(data_settings or {})},
        "method": {"name": "lora", "rank": 4, "alpha": 8},
        "train": {"objective": objective, "max_steps": 2, "batch_size": 2, "precision": "fp32", "device": "cpu",
                  "learning_rate": 1e-3, **train},
        "eval": {"every_steps": 2},
        "output": {"save_every_steps": 1, "keep_checkpoints": 1, "report_to": ["none"]},
    })
    run_dir = tmp_path / objective
    run_dir.mkdir(exist_ok=True)
    config_mod.save(cfg, run_dir / "config.yaml")
    events = Events(run_dir / "events.jsonl", stdout=None)
    return RunContext(cfg, run_dir, events, resume_from=run_dir / "checkpoints" / resume if resume else None)


def _run(model_dir: Path, tmp_path: Path, objective: str, data: Path, stop_at: int = 0, resume: str = "",
         **train) -> tuple[str, list[dict], Path]:
    """Train one objective in this process through the worker's own RunContext; returns (status, events, run dir).

    ``stop_at``: request a stop (as SIGTERM does) once that step is reported; ``resume``: a
    checkpoint name under the same run folder to continue from.
    """
    ctx = _context(model_dir, tmp_path, objective, data, resume, **train)
    events = ctx.events
    if stop_at:
        events.subscribe(lambda e: setattr(ctx, "stop_requested", ctx.stop_requested or
                                           (e["type"] == "step" and e["step"] >= stop_at)))
    status = importlib.import_module(f"studio.worker.recipes.{objective}").run(ctx)
    events.close()
    lines = (ctx.run_dir / "events.jsonl").read_text().splitlines()
    return status, [json.loads(line) for line in lines], ctx.run_dir


def _check(status: str, events: list[dict], run_dir: Path) -> None:
    assert status == "completed"
    problems = [(e["type"], validate_event(e)) for e in events if validate_event(e)]
    assert problems == []
    kinds = [e["type"] for e in events]
    assert kinds.count("started") == 1 and "step" in kinds and "eval" in kinds and "checkpoint" in kinds
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps == [1, 2]
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    assert latest == "step-000002" and (run_dir / "checkpoints" / latest / "state.json").exists()
    assert (run_dir / "final" / "adapter_config.json").exists()


def test_dpo_trains_and_reports(model_dir, tmp_path):
    status, events, run_dir = _run(model_dir, tmp_path, "dpo", PREFS, dpo_loss="ipo")
    _check(status, events, run_dir)
    assert not (run_dir / "final" / "ref").exists()  # the frozen reference adapter is not shipped
    saved = json.loads((run_dir / "final" / "tokenizer_config.json").read_text())
    assert saved["pad_token"] == "<|finetune_right_pad_id|>"  # core encoding's pad, not the EOS
    assert [e["step"] for e in events if e["type"] == "eval"] == [2]  # evaluated once at the end, not twice
    step = next(e for e in events if e["type"] == "step")
    assert "rewards/margins" in step  # TRL's preference metrics travel with the step event
    # exp() of a DPO loss is no perplexity
    assert [e["perplexity"] for e in events if e["type"] == "eval"] == [None]


def test_dpo_trains_on_the_pairs_core_encoding_shows(model_dir, tmp_path):
    """Left truncation to a short max_length: TRL's own tokenizing would cut chosen and rejected
    each on its own from the start; the trainer must get exactly the Inspect page's pairs."""
    from studio.core.encoding import IGNORE
    from studio.worker.recipes import dpo

    ctx = _context(model_dir, tmp_path, "dpo", PREFS, data_settings={"max_length": 40, "truncation_side": "left"})
    trainer = dpo.build_trainer(ctx)
    pairs = [ctx.encoder().encode_pair(ex) for ex in ctx.train_examples]
    assert len(trainer.train_dataset) == len(pairs) > 0
    assert any(p.chosen.original_length > 40 for p in pairs)  # truncation did happen
    for row, pair in zip(trainer.train_dataset, pairs):
        assert row["prompt_ids"] + row["chosen_ids"] == pair.chosen.input_ids
        assert row["prompt_ids"] + row["rejected_ids"] == pair.rejected.input_ids
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    for k, side in enumerate((pairs[0].chosen, pairs[1].chosen, pairs[0].rejected, pairs[1].rejected)):
        n = len(side.input_ids)
        assert batch["input_ids"][k, :n].tolist() == side.input_ids
        assert batch["completion_mask"][k, :n].tolist() == [int(label != IGNORE) for label in side.labels]
        assert set(batch["input_ids"][k, n:].tolist()) <= {ctx.pad.id}


def test_kto_rows_come_from_core_encodings_pairs_and_train(model_dir, tmp_path):
    from studio.worker.recipes import kto

    ctx = _context(model_dir, tmp_path, "kto", PREFS, data_settings={"max_length": 40, "truncation_side": "left"})
    trainer = kto.build_trainer(ctx)
    pairs = [ctx.encoder().encode_pair(ex) for ex in ctx.train_examples]
    rows = list(trainer.train_dataset)
    assert len(rows) == 2 * len(pairs)
    for pair, good, bad in zip(pairs, rows[0::2], rows[1::2]):
        assert (good["label"], bad["label"]) == (True, False)
        assert good["prompt_ids"] + good["completion_ids"] == pair.chosen.input_ids
        assert bad["prompt_ids"] + bad["completion_ids"] == pair.rejected.input_ids
    assert trainer.calculate_KL  # TRL's default KTO loss: each row's KL completion is its batch neighbour's answer
    assert rows[1]["KL_completion_ids"] == rows[0]["completion_ids"]
    assert rows[0]["KL_completion_ids"] == rows[1]["completion_ids"]  # batch of 2: the two swap
    (tmp_path / "trained").mkdir()
    _check(*_run(model_dir, tmp_path / "trained", "kto", PREFS))


def test_orpo_trains_on_core_encodings_pairs_and_reports(model_dir, tmp_path):
    from studio.core.encoding import IGNORE
    from studio.worker.recipes import orpo

    ctx = _context(model_dir, tmp_path, "orpo", PREFS, data_settings={"max_length": 40, "truncation_side": "left"})
    trainer = orpo.build_trainer(ctx)
    pairs = [ctx.encoder().encode_pair(ex) for ex in ctx.train_examples]
    assert len(trainer.train_dataset) == len(pairs)
    for row, pair in zip(trainer.train_dataset, pairs):
        for side in ("chosen", "rejected"):
            seq = getattr(pair, side)
            assert row[f"{side}_input_ids"] == seq.input_ids
            assert row[f"{side}_labels"] == [t if label != IGNORE else IGNORE for t, label in zip(seq.input_ids,
                                                                                                 seq.labels)]
    (tmp_path / "trained").mkdir()
    _check(*_run(model_dir, tmp_path / "trained", "orpo", PREFS))


def test_reward_model_trains_a_score_head(model_dir, tmp_path):
    status, events, run_dir = _run(model_dir, tmp_path, "reward", PREFS)
    _check(status, events, run_dir)
    evals = [e for e in events if e["type"] == "eval"]
    assert "accuracy" in evals[-1]["metrics"]
    manifest = json.loads((run_dir / "final" / "studio.json").read_text())
    assert manifest["task"] == "reward"
    adapter = json.loads((run_dir / "final" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_CLS" and "score" in adapter["modules_to_save"]
    # the score is read at the last non-pad token: the pad id must be core encoding's pad
    from studio.core.encoding import choose_pad_token
    from studio.core.tokenizer import load_tokenizer

    pad = choose_pad_token(load_tokenizer(str(model_dir)), "")
    started = next(e for e in events if e["type"] == "started")
    assert pad.token != "<|eot_id|>" and started["config"]["data"]["pad_token"] == ""
    saved = json.loads((run_dir / "final" / "tokenizer_config.json").read_text())
    assert saved["pad_token"] == pad.token
    _merged_reward_model_scores_as_the_adapter(run_dir, model_dir, tmp_path, pad.id)


def _merged_reward_model_scores_as_the_adapter(run_dir: Path, model_dir: Path, tmp_path: Path, pad_id: int) -> None:
    """A merged export of a reward run is a sequence classifier giving the trained scores."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from studio.worker.export import export_merged

    out = export_merged(run_dir, tmp_path / "merged")
    merged = AutoModelForSequenceClassification.from_pretrained(str(out), dtype=torch.float32).eval()
    base = AutoModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=1, dtype=torch.float32)
    base.config.pad_token_id = pad_id
    adapted = PeftModel.from_pretrained(base, str(run_dir / "final")).eval()
    ids = torch.tensor([[1, 50, 60, 70, 80, pad_id, pad_id], [1, 90, 91, 92, 93, 94, 95]])
    with torch.no_grad():
        want, got = adapted(input_ids=ids).logits, merged(input_ids=ids).logits
    assert got.shape == (2, 1) and merged.config.pad_token_id == pad_id
    assert torch.allclose(got, want, atol=1e-4), (got, want)


def test_reward_model_scores_core_encodings_whole_pairs_and_skips_long_ones(model_dir, tmp_path):
    """Cutting a pair would score a cut answer (the score is read at the last token): too long is skipped."""
    from studio.worker.recipes import reward, trl_common

    ctx = _context(model_dir, tmp_path, "reward", PREFS, data_settings={"max_length": 60})
    warnings = []
    ctx.events.subscribe(lambda e: warnings.append(e) if e["type"] == "warning" else None)
    rows = trl_common.scored_pairs(ctx, ctx.train_examples)
    whole = [ctx.encoder(max_length=None).encode_pair(ex) for ex in ctx.train_examples]
    fits = [p for p in whole if max(len(p.chosen.input_ids), len(p.rejected.input_ids)) <= 60]
    assert 0 < len(rows) == len(fits) < len(whole)
    assert [(r["chosen_ids"], r["rejected_ids"]) for r in rows] == \
        [(p.chosen.input_ids, p.rejected.input_ids) for p in fits]
    warning = next(e for e in warnings if e["code"] == "too_long")
    assert sorted(warning["rows"]) == sorted(p.row for p in whole if p not in fits)
    trainer = reward.build_trainer(ctx)  # TRL takes chosen_ids/rejected_ids as they are
    assert [(r["chosen_ids"], r["rejected_ids"]) for r in trainer.train_dataset] == \
        [(r["chosen_ids"], r["rejected_ids"]) for r in rows]


@pytest.mark.parametrize("objective", ["dpo", "kto", "orpo", "reward"])
def test_preference_objectives_on_chat_rows_name_the_setting_and_an_example_file(model_dir, tmp_path, objective):
    from studio.core.errors import DataError

    ctx = _context(model_dir, tmp_path, objective, CHAT)
    recipe = importlib.import_module(f"studio.worker.recipes.{objective}")
    with pytest.raises(DataError) as err:
        recipe.build_trainer(ctx)
    assert "data.train" in str(err.value) and "preference pairs" in str(err.value)
    assert "travel_prefs.jsonl" in err.value.hint


def test_reward_functions_score_what_they_say():
    from studio.core.errors import ConfigError
    from studio.worker import rewards

    length, no_repeat, keyword, fmt = rewards.resolve(["length:4", "no_repeat", "contains_keyword:metro,museum",
                                                       "format"])
    answers = [[{"role": "assistant", "content": "Take the metro today."}], "go go go go go go",
               "<|eot_id|>assistant: museum"]
    assert length(None, answers) == [1.0, 0.5, 1.0]  # markup words count too
    assert no_repeat(None, answers)[0] == 1.0 and no_repeat(None, answers)[1] == 0.25
    assert keyword(None, answers) == [0.5, 0.0, 0.5]
    assert fmt(None, answers) == [1.0, 0.5, 0.25]
    (ref_keyword,) = rewards.resolve(["contains_keyword"])
    assert ref_keyword(None, ["Lisbon trams"], reference=["Ride the trams in Lisbon"]) == [1.0]
    with pytest.raises(ConfigError) as err:
        rewards.resolve(["lenght", "length:x"])
    assert len(err.value.errors) == 2


def test_grpo_prompts_and_batches():
    from studio.core.conversation import Example, Message
    from studio.worker.recipes.grpo import generation_batch, prompt_rows

    chat = Example(row=1, messages=[Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Tip?"),
                                    Message("assistant", "Walk.")])
    (row,) = prompt_rows([chat])
    assert [m["content"] for m in row["prompt"]] == ["Hi", "Hello", "Tip?"] and row["reference"] == "Walk."
    assert generation_batch(2, 1, 1, 4) == 4 and generation_batch(4, 2, 1, 4) == 8 and generation_batch(3, 1, 1, 2) == 6


def test_grpo_prompts_are_tokenized_by_core_encoding_as_trl_would(model_dir, tmp_path):
    from trl import GRPOTrainer

    from studio.worker.recipes import grpo

    ctx = _context(model_dir, tmp_path, "grpo", CHAT, num_generations=2, max_completion_length=8,
                   reward_functions=["length:6"])
    trainer = grpo.build_trainer(ctx)
    prompts = [row["prompt"] for row in grpo.prompt_rows(ctx.train_examples[:5])]
    ours, images, fields = trainer._tokenize_prompts(prompts)
    assert (images, fields) == (None, {})
    assert ours == [ctx.encoder().encode_prompt(ex).input_ids for ex in ctx.train_examples[:5]]
    theirs, _, _ = GRPOTrainer._tokenize_prompts(trainer, prompts)  # TRL's own apply_chat_template
    assert ours == [list(ids) for ids in theirs]


def test_grpo_samples_scores_and_trains(model_dir, tmp_path):
    status, events, run_dir = _run(model_dir, tmp_path, "grpo", CHAT, num_generations=2, max_completion_length=8,
                                   reward_functions=["length:6", "no_repeat", "format"])
    _check(status, events, run_dir)
    step = next(e for e in events if e["type"] == "step")
    assert "reward" in step and any(k.startswith("rewards/length_6") for k in step)


def test_stop_saves_and_resume_continues(model_dir, tmp_path):
    status, events, run_dir = _run(model_dir, tmp_path, "dpo", PREFS, stop_at=1, max_steps=3)
    assert status == "stopped"
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [1]
    assert not (run_dir / "final").exists()
    status, events, run_dir = _run(model_dir, tmp_path, "dpo", PREFS, resume="step-000001", max_steps=3)
    assert status == "completed"
    started = [e for e in events if e["type"] == "started"]
    assert started[-1]["start_step"] == 1 and started[-1]["resumed_from"].endswith("step-000001")
    # the resumed run continues at step 2; it does not redo step 1
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2, 3]
    assert (run_dir / "final" / "adapter_config.json").exists()
