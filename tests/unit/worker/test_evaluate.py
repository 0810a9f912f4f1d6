"""Evaluation: SQuAD-style scores, BLEU/ROUGE-L, overfitting and forgetting signals, and a real run's eval events."""

from __future__ import annotations

import json

import pytest
import torch

from studio.worker import evaluate as ev

from worker_runs import DATASETS, make_run_dir, read_events, train_in_process


def test_squad_normalisation_exact_match_and_f1():
    assert ev.normalize_answer("The  Czech!") == "czech"
    assert ev.exact_match("the Czech.", "Czech") == 1.0 and ev.exact_match("Slovak", "Czech") == 0.0
    assert ev.token_f1("Czech language", "Czech") == pytest.approx(2 / 3)
    assert ev.token_f1("", "") == 1.0 and ev.token_f1("x", "") == 0.0


def test_task_metrics_per_task():
    out = ev.task_metrics(["qa", "qa", "generation", "summarization"],
                          ["Czech", "euro", "Pack light layers for rain.", "Lisbon is best in spring."],
                          ["Czech", "koruna", "Pack light layers for rain.", "Lisbon shines in spring."])
    assert out["qa"] == {"exact_match": 0.5, "f1": 0.5, "count": 2}
    assert out["generation"]["bleu"] == pytest.approx(100.0) and out["generation"]["rougeL"] == pytest.approx(1.0)
    assert 0 < out["summarization"]["rougeL"] < 1


def test_overfitting_needs_rising_eval_and_falling_train():
    rising = [[10, 1.0, 2.0], [20, 1.1, 1.8], [30, 1.2, 1.5], [40, 1.3, 1.2]]
    assert ev.overfitting(rising, patience=3)
    assert not ev.overfitting(rising[:3], patience=3), "not enough evaluations yet"
    assert not ev.overfitting([[10, 1.0, 1.0], [20, 1.1, 1.1], [30, 1.2, 1.2], [40, 1.3, 1.3]], patience=3)
    assert not ev.overfitting([[10, 1.0, 2.0], [20, 1.1, 1.8], [30, 1.05, 1.5], [40, 1.3, 1.2]], patience=3)


def test_forgetting_is_a_relative_climb():
    assert ev.forgetting([[0, 2.0], [10, 2.2]]) and not ev.forgetting([[0, 2.0], [10, 2.05]])


def test_run_with_tasks_general_text_and_samples(tmp_path, tiny_model):
    rows = [json.loads(line) for line in (DATASETS / "travel_eval.jsonl").read_text().splitlines()]
    picked = [next(r for r in rows if r["task"] == t) for t in ("qa", "generation", "summarization")]
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text("\n".join(json.dumps(r) for r in picked) + "\n")
    general = tmp_path / "general.jsonl"
    general.write_text("\n".join((DATASETS / "general_text.jsonl").read_text().splitlines()[:3]) + "\n")
    run_dir = make_run_dir(tmp_path, tiny_model, {
        "train.max_steps": 2, "train.batch_size": 2, "data.eval": str(eval_file), "data.general_eval": str(general),
        "eval.every_steps": 1, "eval.sample_every_steps": 1, "eval.sample_prompts": ["Hi", "Oslo?"],
        "eval.sample_max_new_tokens": 3, "data.max_length": 96, "output.report_to": ["tensorboard"]}, rows=8)
    assert train_in_process(run_dir) == "completed"
    events = read_events(run_dir)
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [1, 2]
    assert all(e["general_loss"] > 0 and e["perplexity"] > 1 for e in evals)
    assert evals[0]["metrics"] == {}, "generation metrics are computed at the final evaluation"
    final = evals[-1]["metrics"]
    assert set(final) == {"qa", "generation", "summarization"}
    assert set(final["qa"]) == {"exact_match", "f1", "count"} and set(final["generation"]) >= {"bleu", "rougeL"}
    samples = [(e["step"], e["prompt"]) for e in events if e["type"] == "sample"]
    assert samples == [(1, "Hi"), (1, "Oslo?"), (2, "Hi"), (2, "Oslo?")]
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*")), "TensorBoard event file written"


def test_overfitting_names_the_best_evaluation_and_keeps_its_checkpoint(tmp_path, tiny_model, monkeypatch):
    """Eval loss rising from the first evaluation on: retention keeps one checkpoint, yet the
    best one (step 1), to which the warning sends the person, survives."""
    from studio.worker.recipes.sft import SFTRecipe

    rising = iter(1.0 + 0.1 * k for k in range(100))
    monkeypatch.setattr(SFTRecipe, "_loss_over", lambda self, rows: next(rising))
    monkeypatch.setattr(ev, "overfitting", lambda history, patience: len(history) >= 3)
    run_dir = make_run_dir(tmp_path, tiny_model, {
        "train.max_steps": 4, "train.batch_size": 2, "eval.every_steps": 1, "eval.sample_prompts": [],
        "output.save_every_steps": 1, "output.keep_checkpoints": 1, "data.max_length": 96}, rows=8)
    assert train_in_process(run_dir) == "completed"
    warning = next(e for e in read_events(run_dir) if e["type"] == "warning" and e["code"] == "overfitting")
    assert warning["best_step"] == 1 and "step-000001 is kept" in warning["hint"]
    kept = sorted(p.name for p in (run_dir / "checkpoints").glob("step-*"))
    assert kept == ["step-000001", "step-000004"]
    state = json.loads((run_dir / "checkpoints" / "step-000004" / "state.json").read_text())
    assert state["best_eval_step"] == 1


def test_early_stop_ends_the_run_and_writes_final_from_the_best_evaluation(tmp_path, tiny_model, monkeypatch):
    from safetensors.torch import load_file

    from studio.worker.recipes.sft import SFTRecipe

    rising = iter(1.0 + 0.1 * k for k in range(100))
    monkeypatch.setattr(SFTRecipe, "_loss_over", lambda self, rows: next(rising))
    monkeypatch.setattr(ev, "overfitting", lambda history, patience: len(history) >= 3)
    run_dir = make_run_dir(tmp_path, tiny_model, {
        "train.max_steps": 8, "train.batch_size": 2, "eval.every_steps": 1, "eval.sample_prompts": [],
        "eval.early_stop": True, "output.save_every_steps": 1, "output.keep_checkpoints": 1,
        "data.max_length": 96, "train.learning_rate": 5e-3}, rows=8)
    assert train_in_process(run_dir) == "completed"
    events = read_events(run_dir)
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2, 3]  # stopped at the third evaluation
    stop = next(e for e in events if e["type"] == "warning" and e["code"] == "early_stop")
    assert stop["best_step"] == 1 and "step 3 of 8" in stop["message"]
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "completed"
    best = load_file(str(run_dir / "checkpoints" / "step-000001" / "trainable.safetensors"))
    last = load_file(str(run_dir / "checkpoints" / "step-000003" / "trainable.safetensors"))
    final = load_file(str(run_dir / "final" / "adapter_model.safetensors"))
    assert any(not torch.equal(best[k], last[k]) for k in best), "training moved the weights after step 1"
    for name, tensor in best.items():  # PEFT names its saved adapter weights without the adapter name
        saved = name.replace(".default", "")
        assert torch.equal(final[saved], tensor), name


def test_early_stop_is_refused_where_it_cannot_work():
    from studio.core import config as configmod

    cfg = configmod.RunConfig()
    cfg.data.train = "x.jsonl"
    cfg.eval.early_stop = True
    cfg.train.objective = "dpo"
    cfg.eval.every_steps = 0
    fields = [field for field, _ in configmod.validate(cfg)]
    assert fields.count("eval.early_stop") == 2


def test_tool_call_task_metric():
    from studio.worker.evaluate import task_metrics

    llama = '{"name": "get_weather", "parameters": {"city": "Lisbon"}}'
    chatml = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lisbon"}}\n</tool_call>'
    scores = task_metrics(["tool_call"] * 4, [llama, chatml, '{"name": "get_weather", "parameters": {}}', "no"],
                          [llama] * 4)
    assert scores["tool_call"] == {"call_match": 0.5, "name_match": 0.75, "valid_call": 0.75, "count": 4}
