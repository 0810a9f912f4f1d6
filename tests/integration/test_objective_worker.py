"""A preference run in the real worker process: SIGTERM stops it with a checkpoint, --resume finishes it."""

from __future__ import annotations

import signal

import pytest

from studio.core.protocol import validate_event
from studio.core.runs import Registry

from worker_runs import DATASETS, build_tiny_model, make_run_dir, read_events, start_worker, wait_for_event

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_dpo_worker_stops_on_sigterm_and_resumes(tmp_path):
    model = build_tiny_model(tmp_path / "model")
    run_dir = make_run_dir(tmp_path, model, {
        "data.train": str(DATASETS / "travel_prefs.jsonl"), "data.padding": "longest", "data.max_length": 128,
        "train.objective": "dpo", "train.max_steps": 6, "train.batch_size": 2, "eval.every_steps": 0,
        "eval.sample_prompts": [], "output.save_every_steps": 100})
    proc = start_worker(run_dir)
    wait_for_event(proc, lambda e: e.get("type") == "step" and e["step"] >= 1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    events = read_events(run_dir)
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "stopped"
    stopped_at = [e["step"] for e in events if e["type"] == "checkpoint"][-1]
    assert 1 <= stopped_at < 6 and not (run_dir / "final").exists()
    (record,) = Registry().list()
    assert record.status == "stopped"

    proc = start_worker(run_dir, "--resume")
    assert proc.wait(timeout=600) == 0
    events = read_events(run_dir)
    assert all(not validate_event(e) for e in events)
    assert events[-1]["status"] == "completed" and (run_dir / "final" / "adapter_config.json").exists()
    resumed = [e for e in events if e["type"] == "started"][-1]
    assert resumed["start_step"] == stopped_at
    after = [e["step"] for e in events if e["type"] == "step" and e["time"] > resumed["time"]]
    assert after == list(range(stopped_at + 1, 7))
    assert Registry().list()[0].status == "completed"
