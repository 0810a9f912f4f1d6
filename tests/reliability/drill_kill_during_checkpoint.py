"""Drill: kill -9 the worker while it writes a checkpoint, again and again, then resume.

Promises: after every kill the newest checkpoint is complete and loads (no partial folder is
ever picked up), every events.jsonl line is a whole event, and the run resumed after all the
kills ends with the same step losses as a run never interrupted.

    python tests/reliability/drill_kill_during_checkpoint.py [KILLS]   (default 8)
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time

import drill

from studio.core.checkpoints import latest_checkpoint
from studio.worker import checkpoint as ckpt


def loads(folder) -> bool:
    """Whether every file of a checkpoint reads back (weights, optimizer, schedule, random state)."""
    from safetensors.torch import load_file

    try:
        load_file(str(folder / "trainable.safetensors"))
        for name in ("optimizer.pt", "scheduler.pt", "rng.pt"):
            ckpt.load_tensors(folder / name, allow=ckpt._numpy_array_globals())
        return (folder / "state.json").read_text().strip().startswith("{")
    except Exception as exc:  # the promise is that nothing here fails
        print(f"    {folder.name}: {exc}")
        return False


def writing(ckpts, step: int | None = None) -> bool:
    """Whether a checkpoint (of ``step``, or any) is being written now."""
    prefix = ".tmp-step-" + (f"{step:06d}" if step is not None else "")
    return ckpts.is_dir() and any(p.name.startswith(prefix) for p in ckpts.iterdir())


def main() -> None:
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    folder = drill.scratch("kill9")
    settings = {"train.max_steps": 30, "output.save_every_steps": 1, "output.keep_checkpoints": 3}
    run = drill.tiny_run(folder, **settings)
    ckpts = run / "checkpoints"
    random.seed(0)
    for kill in range(1, kills + 1):
        proc = drill.worker(run, *(["--resume"] if latest_checkpoint(ckpts) else []),
                            stdout=drill.subprocess.DEVNULL, stderr=drill.subprocess.DEVNULL)
        done = latest_checkpoint(ckpts)
        target = (int(done.name.split("-")[1]) if done else 0) + random.randint(1, 3)  # the write to kill
        caught = drill.wait_for(lambda: writing(ckpts, target), every=0.001)
        time.sleep(random.uniform(0, 0.01))  # somewhere inside the write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        latest = latest_checkpoint(ckpts)
        drill.check(f"kill {kill} ({'inside a checkpoint write' if caught else 'no write seen'}): the newest "
                    f"checkpoint {latest.name if latest else None} is complete and loads",
                    latest is not None and loads(latest))
    final = drill.worker(run, "--resume", stdout=drill.subprocess.DEVNULL, stderr=drill.subprocess.DEVNULL)
    drill.check("the resumed run completes", final.wait(timeout=600) == 0)
    events = drill.events(run)
    drill.check("every events.jsonl line is a whole event", all(e["type"] != "BROKEN LINE" for e in events))
    drill.check("no partial checkpoint folder is left", not writing(ckpts))

    baseline = drill.tiny_run(drill.scratch("kill9-baseline"), **settings)
    drill.worker(baseline, stdout=drill.subprocess.DEVNULL, stderr=drill.subprocess.DEVNULL).wait(timeout=600)
    losses = {e["step"]: e["loss"] for e in events if e["type"] == "step"}  # a redone step's newest loss
    expected = {e["step"]: e["loss"] for e in drill.events(baseline) if e["type"] == "step"}
    drill.check("the killed-and-resumed run has the losses of an uninterrupted run, step for step",
                losses == expected, f"{len(losses)} vs {len(expected)} steps")
    drill.finish()


if __name__ == "__main__":
    main()
