"""FSDP2 and multi-machine runs on CPU processes, started with the commands Studio prints.

Every launch runs under a watchdog: a run that hangs (a collective entered by one process
only) fails the test after a minute or two, with every worker's Python stacks printed
(``SIGUSR1`` makes the worker dump them), instead of blocking CI.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from studio.core import config as config_mod
from studio.core.launch import launch_commands

from worker_runs import ROOT, build_tiny_model, make_run_dir, read_events, step_losses

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HANG_AFTER_S = 150
SHARD_PROBE = Path(__file__).with_name("shard_probe.py")
STOP_PROBE = Path(__file__).with_name("stop_probe.py")


@pytest.fixture(autouse=True)
def _needs_accelerate():
    if shutil.which("accelerate") is None:
        pytest.skip("the accelerate command is not installed")


def _settings(port: int, **more) -> dict:
    # 50 rows: 40 train, 10 eval = 5 eval batches of 2, so the two processes get 3 and 2
    # (uneven shards are what hung the final evaluation).
    return {"train.max_steps": 4, "train.batch_size": 2, "data.padding": "longest", "data.max_length": 128,
            "eval.every_steps": 2, "output.save_every_steps": 2, "train.learning_rate": 5e-3,
            "eval.sample_prompts": ["Hi"], "eval.sample_max_new_tokens": 4, "distributed.strategy": "fsdp",
            "distributed.main_process_port": port, **more}


def _studio_commands(run_dir: Path, nodes: int, per_node: int, probe: list | None = None) -> list[str]:
    """The command lines ``studio train --print-launch-command`` prints for this run (CPU processes);
    ``probe`` (a script and its arguments) runs in place of ``-m studio.worker RUN_DIR``."""
    cfg = config_mod.load(run_dir / "config.yaml")
    lines = launch_commands(cfg, run_dir, nodes=nodes, gpus_per_node=per_node, cpu=True)
    tail = f" -m studio.worker {shlex.quote(str(run_dir))}"
    assert all(line.endswith(tail) for line in lines)
    if probe is None:
        return lines
    return [line[:-len(tail)] + " " + shlex.join(map(str, probe)) for line in lines]


def _start(lines: list[str], logs: Path, *worker_args: str) -> list[subprocess.Popen]:
    """Each command line run by a shell, as a person pastes it on each machine."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "STUDIO_MAIN_IP": "127.0.0.1"}
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for i, line in enumerate(lines):
        log_path = logs / f"launch-{i}-{time.monotonic_ns()}.log"
        with open(log_path, "w", encoding="utf-8") as out:
            procs.append(subprocess.Popen(["bash", "-c", " ".join([line, *map(shlex.quote, worker_args)])],
                                          cwd=str(ROOT), env=env, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        procs[-1].log_path = log_path
    return procs


def _workers(procs: list[subprocess.Popen]) -> list:
    import psutil

    found = []
    for proc in procs:
        try:
            found += [c for c in psutil.Process(proc.pid).children(recursive=True)
                      if "studio.worker" in " ".join(c.cmdline()) or "_probe.py" in " ".join(c.cmdline())]
        except psutil.NoSuchProcess:
            pass
    return found


def _wait(procs: list[subprocess.Popen], timeout: float = HANG_AFTER_S) -> None:
    """Wait for every launch to exit 0; a hang fails with every worker's stacks."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            workers = _workers(procs)
            for worker in workers:
                os.kill(worker.pid, signal.SIGUSR1)
            time.sleep(3)
            for worker in workers:  # the launcher starts each worker in a session of its own
                worker.kill()
            for p in procs:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            pytest.fail(f"the run hung (no exit after {timeout:.0f} s); stacks and output:\n" + _output(procs))
    failed = [p for p in procs if p.returncode != 0]
    assert not failed, _output(failed)


def _output(procs) -> str:
    return "\n".join(Path(p.log_path).read_text(encoding="utf-8", errors="replace")[-6000:] for p in procs)


def _eval_loss_on_one_process(run_dir: Path, model) -> float:
    """The eval loss of ``model`` over the run's evaluation rows, one row at a time, in this process."""
    import torch
    import torch.nn.functional as F

    from studio.worker.context import RunContext

    ctx = RunContext(config_mod.load(run_dir / "config.yaml"), run_dir)
    total, tokens = 0.0, 0
    with torch.no_grad():
        for row in ctx.encoder().encode_many(ctx.eval_examples):
            logits = model(input_ids=torch.tensor([row.input_ids])).logits[0, :-1].float()
            target = torch.tensor(row.labels[1:])
            total += float(F.cross_entropy(logits, target, ignore_index=-100, reduction="sum"))
            tokens += int((target != -100).sum())
    return total / tokens


def _load_final(run_dir: Path, base: Path, method: str):
    from transformers import AutoModelForCausalLM

    if method == "full":
        return AutoModelForCausalLM.from_pretrained(str(run_dir / "final")).eval()
    from peft import PeftModel

    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(run_dir / "final")).eval()


@pytest.mark.parametrize("method", ["lora", "full"])
def test_fsdp_run_finishes_shards_data_and_final_loads_on_one_process(tmp_path, method):
    model = build_tiny_model(tmp_path / "model")
    port = {"lora": 29641, "full": 29642}[method]
    run_dir = make_run_dir(tmp_path, model, _settings(port, **{"method.name": method}), rows=50)
    rows = tmp_path / "rows"
    rows.mkdir()
    _wait(_start(_studio_commands(run_dir, 1, 2, probe=[SHARD_PROBE, run_dir, rows]), tmp_path / "logs"))

    events = read_events(run_dir)
    assert [e["status"] for e in events if e["type"] == "finished"] == ["completed"]
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2, 3, 4]
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [2, 4]
    assert [e["step"] for e in events if e["type"] == "sample"] == [4]
    assert "FSDP2: 2 decoder layers" in (run_dir / "worker.log").read_text(encoding="utf-8")
    # every process trained on its own rows: 4 steps x 2 rows each, none shared
    rank0, rank1 = ((rows / f"rank-{r}.txt").read_text().split() for r in (0, 1))
    assert len(rank0) == len(rank1) == 8 and set(rank0).isdisjoint(rank1)
    # final/ loads on one process and computes what the sharded model computed at step 4
    sharded = [e["eval_loss"] for e in events if e["type"] == "eval" and e["step"] == 4]
    one = _eval_loss_on_one_process(run_dir, _load_final(run_dir, model, method))
    assert one == pytest.approx(sharded[0], rel=1e-5)


def test_fsdp_sigterm_saves_a_checkpoint_and_the_resume_is_exact(tmp_path):
    model = build_tiny_model(tmp_path / "model")
    settings = _settings(29643, **{"method.dropout": 0.3, "eval.every_steps": 0, "eval.sample_prompts": []})
    (tmp_path / "whole").mkdir()
    (tmp_path / "stopped").mkdir()
    whole = make_run_dir(tmp_path / "whole", model, settings, rows=50)
    _wait(_start(_studio_commands(whole, 1, 2), tmp_path / "logs"))

    stopped = make_run_dir(tmp_path / "stopped", model, settings, rows=50)
    _wait(_start(_studio_commands(stopped, 1, 2, probe=[STOP_PROBE, stopped, 1]), tmp_path / "logs"))
    events = read_events(stopped)
    assert [e["status"] for e in events if e["type"] == "finished"] == ["stopped"]
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [1]

    _wait(_start(_studio_commands(stopped, 1, 2), tmp_path / "logs", "--resume",
                 str(stopped / "checkpoints" / "step-000001")))
    expected, got = step_losses(read_events(whole)), step_losses(read_events(stopped))
    assert sorted(got) == [1, 2, 3, 4]
    assert got == expected  # dropout masks, optimizer moments and data position all continue


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_machine_commands_train_to_completion(tmp_path, strategy):
    """Machine ranks 0 and 1 on this one machine, one process each, joined over localhost."""
    model = build_tiny_model(tmp_path / "model")
    port = {"ddp": 29644, "fsdp": 29645}[strategy]
    run_dir = make_run_dir(tmp_path, model, _settings(port, **{"distributed.strategy": strategy}), rows=50)
    commands = _studio_commands(run_dir, 2, 1)
    assert [shlex.split(c)[shlex.split(c).index("--machine_rank") + 1] for c in commands] == ["0", "1"]
    _wait(_start(commands, tmp_path / "logs"))

    events = read_events(run_dir)
    assert [e["status"] for e in events if e["type"] == "finished"] == ["completed"]
    assert [e["world_size"] for e in events if e["type"] == "started"] == [2]
    assert (run_dir / "final" / "adapter_config.json").exists() and (run_dir / "worker.rank1.log").exists()
