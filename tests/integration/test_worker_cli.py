"""Ctrl-C on ``studio train`` stops the run gracefully (checkpoint, status stopped) and --resume finishes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import yaml

from studio.core.runs import Registry

from worker_runs import ROOT, build_tiny_model, make_run_dir, one_thread_env, read_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_ctrl_c_stops_gracefully_and_resume_completes(tmp_path):
    model = build_tiny_model(tmp_path / "model")
    template = make_run_dir(tmp_path, model, {"train.max_steps": 400, "train.batch_size": 2, "eval.every_steps": 0,
                                              "eval.sample_prompts": [], "output.save_every_steps": 1000,
                                              "data.max_length": 64})
    config = tmp_path / "config.yaml"
    config.write_text((template / "config.yaml").read_text())
    run_dir = tmp_path / "cli-run"
    # A new session stands in for the terminal: Ctrl-C signals the whole foreground group. A
    # command typed at a terminal starts with SIGINT at its default; a test run started in the
    # background by a shell inherits it ignored, so it is put back.
    proc = subprocess.Popen([sys.executable, "-m", "studio", "train", str(config), "--run-dir", str(run_dir),
                             "train.max_steps=400"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(ROOT), env=one_thread_env(), start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stdout:
        if line.startswith("step 2/400"):
            break
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "finished: stopped" in out and "stopping:" in err
    events = read_events(run_dir)
    assert events[-1]["status"] == "stopped" and events[-2]["type"] == "checkpoint"
    stopped_at = events[-2]["step"]
    assert stopped_at < 400 and Registry().find(run_dir).status == "stopped"
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["max_steps"] == 400

    (run_dir / "config.yaml").write_text((run_dir / "config.yaml").read_text().replace("max_steps: 400",
                                                                                      f"max_steps: {stopped_at + 2}"))
    done = subprocess.run([sys.executable, "-m", "studio", "train", "--resume", str(run_dir)], capture_output=True,
                          text=True, cwd=str(ROOT), env=one_thread_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"step {stopped_at + 2}/{stopped_at + 2}" in done.stdout and "finished: completed" in done.stdout
    assert Registry().find(run_dir).status == "completed"


@pytest.mark.parametrize("how", ["terminal closed", "SIGTERM to studio train"])
def test_closing_the_terminal_or_terminating_studio_train_stops_the_run_gracefully(tmp_path, how):
    """SIGHUP to the terminal's process group (with its output gone) and SIGTERM to the command
    alone both end as Ctrl-C does: the step finishes, a checkpoint is saved, status stopped."""
    model = build_tiny_model(tmp_path / "model")
    template = make_run_dir(tmp_path, model, {"train.max_steps": 400, "train.batch_size": 2, "eval.every_steps": 0,
                                              "eval.sample_prompts": [], "output.save_every_steps": 1000,
                                              "data.max_length": 64})
    run_dir = tmp_path / "cli-run"
    proc = subprocess.Popen([sys.executable, "-m", "studio", "train", str(template / "config.yaml"), "--run-dir",
                             str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(ROOT), env=one_thread_env(), start_new_session=True)
    for line in proc.stdout:
        if line.startswith("step 2/400"):
            break
    if how == "terminal closed":
        proc.stdout.close()  # nobody reads the output any more
        os.killpg(proc.pid, signal.SIGHUP)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    events = read_events(run_dir)
    assert events[-1]["status"] == "stopped" and events[-2]["type"] == "checkpoint", events[-3:]
    assert Registry().find(run_dir).status == "stopped"
    assert (run_dir / "checkpoints" / f"step-{events[-2]['step']:06d}" / "state.json").exists()


def test_studio_train_of_a_trl_objective_prints_only_studios_lines(tmp_path):
    """TRL's trainers print each log dict when their progress bar is off; the terminal shows Studio's lines only."""
    run_dir = tmp_path / "dpo"
    done = subprocess.run([sys.executable, "-m", "studio", "train", str(ROOT / "resources" / "presets" / "dpo.yaml"),
                           "train.max_steps=2", "eval.every_steps=1", "data.max_length=64", "train.batch_size=2",
                           "output.save_every_steps=2", "data.eval_fraction=0.05", "--run-dir", str(run_dir)],
                          capture_output=True, text=True, cwd=str(tmp_path), env=one_thread_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line for line in lines if line.startswith("{") or "train_runtime" in line or "grad_norm" in line] == []
    assert any(line.startswith("step 2/2 ") for line in lines) and any(line.startswith("eval at step 2") for line in lines)
    assert lines[-1].startswith("finished: completed")
    # The count the Method page shows (the frozen reference adapter of DPO is not part of it).
    from studio.core import config as configmod
    from studio.core.memory import estimate_memory, trainable_text
    from studio.core.models import resolve_config_paths
    from studio.core.preflight import shape_for

    cfg = resolve_config_paths(configmod.load(ROOT / "resources" / "presets" / "dpo.yaml"))
    estimate = estimate_memory(shape_for(cfg), cfg)
    started = next(line for line in lines if line.startswith("started: "))
    assert trainable_text(estimate.params_trainable, estimate.params_total) in started, started
