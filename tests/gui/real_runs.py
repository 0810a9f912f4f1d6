"""Helpers for GUI tests that train for real: a model to train and a config small enough for a test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from studio.core import config as configmod

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL = ROOT / "resources" / "demo-model"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The demo model; until its weights are built, a tiny random Llama with the demo tokenizer."""
    if (DEMO_MODEL / "model.safetensors").exists():
        return DEMO_MODEL
    out = tmp_path_factory.mktemp("tiny-model")
    subprocess.run([sys.executable, str(ROOT / "tests" / "fixtures" / "make_chat_run.py"), str(out), "--base-only"],
                   check=True, capture_output=True, timeout=300)
    return out / "base"


def quick_config(model: Path, max_steps: int, data: Path | None = None) -> configmod.RunConfig:
    """The demo preset, made small enough for a test: short rows, tiny batches, few steps."""
    cfg = configmod.load(ROOT / "resources" / "presets" / "demo.yaml")
    cfg.model.path = str(model)
    cfg.data.train = str(data or ROOT / "resources" / "datasets" / "travel_chat.jsonl")
    cfg.data.max_length = 128
    cfg.train.batch_size = 2
    cfg.train.max_steps = max_steps
    cfg.train.learning_rate = 2e-4
    cfg.eval.every_steps = 10
    cfg.eval.sample_max_new_tokens = 8
    cfg.output.save_every_steps = 10
    cfg.output.report_to = []
    return cfg




FAKE_WORKER = str(ROOT / "tests" / "fixtures" / "fake_worker.py")
COMPLETED_STREAM = str(ROOT / "tests" / "fixtures" / "streams" / "completed.jsonl")


@pytest.fixture
def replaying_worker(monkeypatch):
    """Runs start a child that replays a recorded stream instead of training, then waits for
    SIGTERM to stop (for tests of the window's wiring, not of training)."""
    from studio.gui.runner import RunProcess

    launch = RunProcess.launch
    monkeypatch.setattr(RunProcess, "launch",
                        lambda self, args: launch(self, [FAKE_WORKER, self.run_dir, COMPLETED_STREAM, "--hang"]))
