"""Drill: the disk under a run fills up while it trains, then a read-only disk; needs root (tmpfs).

Promises:

* a full disk ends the run failed with a message naming the place and saying to free space;
  no partial checkpoint folder stays, every events.jsonl line is a whole event, and after space
  is freed ``--resume`` completes the run;
* a worker started on a read-only run folder is refused naming the folder, with no traceback.

Runs where ``mount -t tmpfs`` works (root on Linux); elsewhere it says why it skipped.

    sudo python tests/reliability/drill_full_disk.py
"""

from __future__ import annotations

import os
import subprocess

import drill

from studio.core.runs import Registry


def mount(where) -> None:
    where.mkdir(parents=True)
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        drill.skip("mounting a small tmpfs needs root (run it with sudo)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(where)], capture_output=True,
                          text=True)
    if done.returncode:
        drill.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def fill(disk) -> None:
    """Write zeros until the disk has no space left."""
    with open(disk / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 2**16)
                fh.flush()
        except OSError:
            pass


def full_disk(folder, disk) -> None:
    model = folder / "model"
    drill.build_tiny_model(model)
    run = drill.make_run_dir(disk, model, {"train.max_steps": 200, "train.batch_size": 2, "eval.every_steps": 0,
                                           "eval.sample_prompts": [], "output.save_every_steps": 5,
                                           "data.max_length": 64, "output.report_to": ["none"]})
    proc = drill.worker(run, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    drill.wait_for(lambda: (run / "checkpoints" / "latest").exists())
    fill(disk)
    out, _ = proc.communicate(timeout=300)
    rec = Registry().find(run)
    drill.check("a full disk fails the run naming the place and saying to free space",
                rec.status == "failed" and "no space left on the disk holding" in rec.error and str(disk) in rec.error
                and "free space" in rec.hint, f"{rec.status}: {rec.error} / {rec.hint}")
    drill.check("no partial checkpoint folder stays", not list((run / "checkpoints").glob(".tmp-*")))
    drill.check("every events.jsonl line is a whole event", all(e["type"] != "BROKEN LINE" for e in drill.events(run)))
    (disk / "filler").unlink()
    resumed = drill.worker(run, "--resume", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    drill.check("after space is freed, --resume completes the run",
                resumed.wait(timeout=900) == 0 and Registry().find(run).status == "completed"
                and all(e["type"] != "BROKEN LINE" for e in drill.events(run)))
    return run


def read_only(run, disk) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    try:
        proc = drill.worker(run, "--resume", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, err = proc.communicate(timeout=120)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    drill.check("a read-only run folder is refused naming it, without a traceback",
                proc.returncode == 2 and "read-only" in err and str(run) in err and "Traceback" not in err, err[-400:])


def main() -> None:
    folder = drill.scratch("disk")
    disk = folder / "disk"
    mount(disk)
    try:
        run = full_disk(folder, disk)
        read_only(run, disk)
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    drill.finish()


if __name__ == "__main__":
    main()
