"""Drill: the terminal running ``studio train`` closes, or ``studio train`` is terminated or killed.

Promises:

* closing the terminal (a real pseudo-terminal whose other end is closed: the kernel hangs up
  ``studio train`` and the worker) ends the run as Ctrl-C does: a checkpoint, status stopped;
* SIGTERM to ``studio train`` alone does the same (it passes the stop on to the worker);
* kill -9 of ``studio train`` leaves the worker training on its own: the run completes and the
  registry says so (its events went to events.jsonl all along).

    python tests/reliability/drill_sighup.py
"""

from __future__ import annotations

import os
import pty
import signal
import sys
import time

import drill

from studio.core.runs import Registry


def train_args(run) -> list[str]:
    return ["train", str(run / "config.yaml"), "--run-dir", str(run.parent / "cli-run")]


def outcome(run_dir) -> tuple[str, bool]:
    """(registry status, whether the last two events are a checkpoint and the finish)."""
    events = drill.events(run_dir)
    rec = Registry().find(run_dir)
    return (rec.status if rec else "unregistered",
            len(events) > 1 and events[-2]["type"] == "checkpoint" and events[-1]["type"] == "finished")


def until_step(run_dir, step: int) -> bool:
    path = run_dir / "events.jsonl"
    return drill.wait_for(lambda: path.exists() and f'"type":"step","time"' in path.read_text()
                          and any(e.get("step", 0) >= step for e in drill.events(run_dir) if e["type"] == "step"))


def terminal_closes(folder) -> None:
    run = drill.tiny_run(folder / "pty", **{"train.max_steps": 400, "output.save_every_steps": 1000})
    pid, master = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pseudo-terminal
        os.chdir(drill.ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "studio", *train_args(run)], drill.env())
    run_dir = run.parent / "cli-run"
    shown = b""
    while b"step 3/400" not in shown:
        try:
            shown += os.read(master, 4096)
        except OSError:
            break
    os.close(master)  # the terminal window closes
    _, status = os.waitpid(pid, 0)
    drill.wait_for(lambda: outcome(run_dir)[0] != "running", timeout=120)
    state, saved = outcome(run_dir)
    drill.check("closing the terminal: the run is stopped with a checkpoint as its last act",
                state == "stopped" and saved, f"status {state}, checkpoint last {saved}, exit {status}")


def studio_train_terminated(folder) -> None:
    run = drill.tiny_run(folder / "term", **{"train.max_steps": 400, "output.save_every_steps": 1000})
    proc = drill.studio(*train_args(run), stdout=drill.subprocess.PIPE, stderr=drill.subprocess.PIPE,
                        start_new_session=True)
    until_step(run.parent / "cli-run", 3)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=180)
    state, saved = outcome(run.parent / "cli-run")
    drill.check("SIGTERM to studio train alone: the run is stopped with a checkpoint",
                state == "stopped" and saved and proc.returncode == 0, f"status {state}, exit {proc.returncode}")


def studio_train_killed(folder) -> None:
    run = drill.tiny_run(folder / "kill", **{"train.max_steps": 12})
    proc = drill.studio(*train_args(run), stdout=drill.subprocess.PIPE, stderr=drill.subprocess.DEVNULL,
                        start_new_session=True)
    run_dir = run.parent / "cli-run"
    until_step(run_dir, 2)
    os.kill(proc.pid, signal.SIGKILL)  # only studio train: its pipe to the worker breaks
    proc.wait()
    proc.stdout.close()
    drill.wait_for(lambda: Registry().find(run_dir).status != "running", timeout=300, every=0.5)
    events = drill.events(run_dir)
    drill.check("kill -9 of studio train: the worker trains on alone and the run completes",
                Registry().find(run_dir).status == "completed" and events[-1].get("status") == "completed",
                f"status {Registry().find(run_dir).status}")


def main() -> None:
    folder = drill.scratch("sighup")
    terminal_closes(folder)
    studio_train_terminated(folder)
    studio_train_killed(folder)
    drill.finish()


if __name__ == "__main__":
    main()
