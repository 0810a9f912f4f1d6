"""Two CPU processes under ``accelerate launch`` train one run: disjoint data, one event stream."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core import config as config_mod
from studio.core.protocol import validate_event
from studio.core.launch import launch_commands

from worker_runs import ROOT, build_tiny_model, make_run_dir, read_events, step_losses

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _accelerate_command(run_dir: Path, shards: Path) -> list[str]:
    """Studio's own launch command for 2 CPU processes, pointed at the shard-recording probe."""
    cfg = config_mod.load(run_dir / "config.yaml")
    (cmd,) = launch_commands(cfg, run_dir, nodes=1, gpus_per_node=2, cpu=True)
    assert cmd.endswith(f"-m studio.worker {run_dir}")
    args = cmd.split()[:-3]  # keep the launcher flags, run the probe instead of the module
    accelerate = shutil.which("accelerate") or "accelerate"
    return [accelerate, *args[1:], str(Path(__file__).with_name("shard_probe.py")), str(run_dir), str(shards)]


def test_two_processes_train_disjoint_rows(tmp_path):
    if shutil.which("accelerate") is None:
        pytest.skip("the accelerate command is not installed")
    model = build_tiny_model(tmp_path / "model")
    run_dir = make_run_dir(tmp_path, model, {"train.max_steps": 3, "train.batch_size": 2, "data.padding": "longest",
                                             "data.max_length": 128, "eval.every_steps": 0,
                                             "output.save_every_steps": 2, "eval.sample_prompts": [],
                                             "distributed.main_process_port": 29631}, rows=30)
    shards = tmp_path / "shards"
    shards.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(_accelerate_command(run_dir, shards), cwd=str(ROOT), env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    rank0 = (shards / "rank-0.txt").read_text().split()
    rank1 = (shards / "rank-1.txt").read_text().split()
    assert len(rank0) == len(rank1) == 3 * 2  # 3 steps of 2 rows each, on each process
    assert set(rank0).isdisjoint(rank1)

    events = read_events(run_dir)
    assert all(not validate_event(e) for e in events)
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2, 3]  # written once, by the main process
    started = [e for e in events if e["type"] == "started"]
    assert len(started) == 1 and started[0]["world_size"] == 2
    assert [e["status"] for e in events if e["type"] == "finished"] == ["completed"]
    assert (run_dir / "accelerate_config.yaml").exists() and (run_dir / "final" / "adapter_config.json").exists()
    assert (run_dir / "worker.rank1.log").exists()


def _launch(run_dir: Path, *worker_args: str) -> None:
    cfg = config_mod.load(run_dir / "config.yaml")
    (cmd,) = launch_commands(cfg, run_dir, nodes=1, gpus_per_node=2, cpu=True)
    accelerate = shutil.which("accelerate") or "accelerate"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([accelerate, *cmd.split()[1:], *worker_args], cwd=str(ROOT), env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_resume_exactly_with_dropout(tmp_path):
    """Each process resumes with its own random state, so dropout masks continue as if never stopped."""
    if shutil.which("accelerate") is None:
        pytest.skip("the accelerate command is not installed")
    model = build_tiny_model(tmp_path / "model")
    settings = {"train.max_steps": 4, "train.batch_size": 2, "data.padding": "longest", "data.max_length": 128,
                "method.dropout": 0.3, "eval.every_steps": 0, "output.save_every_steps": 2,
                "eval.sample_prompts": [], "train.learning_rate": 5e-3, "distributed.main_process_port": 29632}
    (tmp_path / "whole").mkdir()
    (tmp_path / "resumed").mkdir()
    whole = make_run_dir(tmp_path / "whole", model, settings, rows=30)
    _launch(whole)
    resumed = make_run_dir(tmp_path / "resumed", model, settings, rows=30)
    cfg = config_mod.load(resumed / "config.yaml")  # the very data file of the run it continues
    cfg.data.train = config_mod.load(whole / "config.yaml").data.train
    config_mod.save(cfg, resumed / "config.yaml")
    _launch(resumed, "--resume", str(whole / "checkpoints" / "step-000002"))
    expected, got = step_losses(read_events(whole)), step_losses(read_events(resumed))
    assert sorted(got) == [3, 4]
    assert got == {step: expected[step] for step in (3, 4)}
