"""Stop then resume equals an uninterrupted run, step for step; kill -9 then resume works too."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

from studio.core.protocol import validate_event
from studio.core.runs import Registry
from studio.worker.checkpoint import latest_checkpoint

from worker_runs import (build_tiny_model, make_run_dir, read_events, start_worker, step_losses, train_in_process,
                         wait_for_event)

pytestmark = pytest.mark.integration

# Dropout on, accumulation, several evaluations and checkpoints: all that could make a resume drift.
SETTINGS = {"train.max_steps": 8, "train.batch_size": 2, "train.grad_accum": 2, "method.dropout": 0.1,
            "eval.every_steps": 3, "output.save_every_steps": 2, "output.keep_checkpoints": 2,
            "eval.sample_prompts": [], "data.max_length": 128, "train.learning_rate": 5e-3}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, model):
    """Step losses of an uninterrupted run."""
    run_dir = make_run_dir(tmp_path_factory.mktemp("baseline"), model, SETTINGS)
    assert train_in_process(run_dir) == "completed"
    events = read_events(run_dir)
    losses = step_losses(events)
    assert sorted(losses) == list(range(1, 9))
    return losses, _evals(events)


def _evals(events):
    return {e["step"]: (e["eval_loss"], e["train_loss"]) for e in events if e["type"] == "eval"}


def test_stop_then_resume_gives_the_same_losses(tmp_path, model, baseline):
    run_dir = make_run_dir(tmp_path, model, SETTINGS)
    assert train_in_process(run_dir, stop_after_step=3) == "stopped"
    first = read_events(run_dir)
    assert max(step_losses(first)) == 3
    assert [e["type"] for e in first[-2:]] == ["checkpoint", "finished"] and first[-2]["step"] == 3
    assert train_in_process(run_dir, resume=latest_checkpoint(run_dir / "checkpoints")) == "completed"
    events = read_events(run_dir)
    assert step_losses(events) == baseline[0], "a resumed run must repeat the uninterrupted run exactly"
    assert _evals(events) == baseline[1] and sorted(baseline[1]) == [3, 6, 8]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("step-")) == \
        ["step-000006", "step-000008"], "retention keeps the newest two"


@pytest.mark.slow
def test_worker_process_kill_9_then_sigterm_then_resume(tmp_path, model, baseline):
    """The real process path: registry status, a crash mid-save, SIGTERM, and two resumes."""
    run_dir = make_run_dir(tmp_path, model, SETTINGS)
    proc = start_worker(run_dir)
    wait_for_event(proc, lambda e: e["type"] == "checkpoint" and e["step"] == 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    registry = Registry()
    assert registry.find(run_dir).status == "running", "nobody has looked yet"
    registry.refresh_status()
    rec = registry.find(run_dir)
    assert rec.status == "failed" and "ended without" in rec.error
    # A checkpoint half-written when the process died must not be picked up.
    ckpts = run_dir / "checkpoints"
    shutil.copytree(ckpts / "step-000002", ckpts / ".tmp-step-000004-1")
    (ckpts / ".tmp-step-000004-1" / "state.json").unlink()

    resumed = start_worker(run_dir, "--resume")
    started = wait_for_event(resumed, lambda e: e["type"] == "started")
    assert started["resumed_from"].endswith("step-000002") and started["start_step"] == 2
    wait_for_event(resumed, lambda e: e["type"] == "step" and e["step"] == 4)
    resumed.send_signal(signal.SIGTERM)
    resumed.communicate(timeout=120)
    assert resumed.returncode == 0 and registry.find(run_dir).status == "stopped"
    assert read_events(run_dir)[-1]["status"] == "stopped"

    final = start_worker(run_dir, "--resume")
    final.communicate(timeout=300)
    assert final.returncode == 0 and registry.find(run_dir).status == "completed"
    events = read_events(run_dir)
    problems = [(e["type"], validate_event(e)) for e in events if validate_event(e)]
    assert not problems, problems
    assert step_losses(events) == baseline[0] and _evals(events) == baseline[1]
    assert not any(p.name.startswith(".tmp-") for p in ckpts.iterdir()), "stale partial checkpoints are cleaned"


def test_studio_train_resume_refuses_a_crafted_rng_file_without_running_it(tmp_path, model):
    """A checkpoint's rng.pt carrying a shell command: ``studio train --resume RUN --from CKPT``
    fails naming the file, and the command never ran."""
    import subprocess
    import sys

    from worker_runs import ROOT, one_thread_env

    run_dir = make_run_dir(tmp_path, model, {**SETTINGS, "eval.every_steps": 0})
    assert train_in_process(run_dir, stop_after_step=1) == "stopped"
    marker = tmp_path / "payload-ran"
    planted = run_dir / "checkpoints" / "step-000001" / "rng.pt"
    planted.write_bytes(_pickle_running(f"touch {marker}"))
    done = subprocess.run([sys.executable, "-m", "studio", "train", "--resume", str(run_dir), "--from", "step-000001"],
                          capture_output=True, text=True, cwd=str(ROOT), env=one_thread_env(), timeout=300)
    assert not marker.exists(), "the checkpoint's payload ran"
    assert done.returncode == 1 and "finished: failed" in done.stdout
    assert f"{planted} holds a Python object (posix.system)" in done.stdout
    assert Registry().find(run_dir).status == "failed"


def _pickle_running(command: str) -> bytes:
    """The bytes of a torch file whose unpickling would run ``command`` in a shell."""
    import io

    import torch

    class ShellCommand:
        def __reduce__(self):
            return os.system, (command,)

    buffer = io.BytesIO()
    torch.save({"python": ShellCommand()}, buffer)
    return buffer.getvalue()


def test_two_resumes_half_a_second_apart_train_once(tmp_path, model):
    """The second worker is refused with the first one's pid and writes nothing."""
    import subprocess
    import sys
    import time

    from worker_runs import ROOT, one_thread_env

    run_dir = make_run_dir(tmp_path, model, {**SETTINGS, "train.max_steps": 2, "eval.every_steps": 0})
    assert train_in_process(run_dir, stop_after_step=1) == "stopped"
    workers = []
    for _ in range(2):
        workers.append(subprocess.Popen([sys.executable, "-m", "studio.worker", str(run_dir), "--resume"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
                                        env=one_thread_env()))
        time.sleep(0.5)
    outcomes = sorted((w.wait(timeout=300), w.pid, w.stderr.read()) for w in workers)
    (trained, pid, _), (refused, _, message) = outcomes
    assert (trained, refused) == (0, 2), outcomes
    assert f"already being trained by worker pid {pid}" in message
    events = read_events(run_dir)
    assert [e["type"] for e in events].count("started") == 2, "the stopped run, then one resume"
    assert events[-1]["status"] == "completed" and Registry().find(run_dir).status == "completed"


def test_a_longer_resumed_run_continues_the_schedule_and_a_new_rank_is_refused(tmp_path, model, capsys):
    """max_steps 4 -> 8 after a stop at step 2: the learning rate goes on falling, no jump back up;
    LoRA rank 4 -> 8 is refused by studio train --resume with the difference listed, before any worker starts."""
    from studio.cli import main

    run_dir = make_run_dir(tmp_path, model, {**SETTINGS, "train.max_steps": 4, "eval.every_steps": 0,
                                             "train.lr_scheduler": "cosine"})
    assert train_in_process(run_dir, stop_after_step=2) == "stopped"
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("max_steps: 4", "max_steps: 8"))
    assert train_in_process(run_dir, resume=latest_checkpoint(run_dir / "checkpoints")) == "completed"
    events = read_events(run_dir)
    rates = [rate for _, (_, _, rate) in sorted(step_losses(events).items())]
    assert len(rates) == 8 and all(b <= a for a, b in zip(rates, rates[1:])), rates
    final_state = json.loads((latest_checkpoint(run_dir / "checkpoints") / "state.json").read_text())
    assert final_state["schedule"]["total"] == 8, "a later resume continues the same schedule"

    config.write_text(config.read_text().replace("rank: 4", "rank: 8"))
    assert main(["train", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "method.rank: 4 in the checkpoint, 8 now" in err and "set them back" in err
