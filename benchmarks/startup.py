"""Time from launching ``studio`` to the window's first paint.

Launches ``studio --screenshot OUT.png`` (offscreen) ``--runs`` times. The window measures its
own first paint against the process start time the kernel recorded (``studio.gui.app``
``FirstPaint``), so interpreter start-up and every import are included; the launcher's own
overhead (a pyenv shim, for instance) is seen in the wall time to the process's exit, which
also includes building the other pages, the background loads and writing the PNG. The
machine's load average is printed alongside: on a shared machine it moves the figure more than
anything in Studio does.

Usage::

    python benchmarks/startup.py [--runs 5] [--command "studio"]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_start(command: list[str], out: Path) -> tuple[float, float, float]:
    """(first paint ms after process start, wall ms launch to exit, CPU ms launch to exit) of one start."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    started, cpu = time.perf_counter(), children_cpu_s()
    proc = subprocess.run([*command, "--screenshot", str(out)], capture_output=True, text=True, env=env, timeout=300)
    wall = 1000 * (time.perf_counter() - started)
    cpu_ms = 1000 * (children_cpu_s() - cpu)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("first paint")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(command)} --screenshot failed (exit {proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return float(lines[0].split()[2]), wall, cpu_ms


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--command", default=None,
                   help="how to launch Studio (default: the `studio` script, else python -m studio)")
    args = p.parse_args(argv)
    command = shlex.split(args.command) if args.command else (
        [shutil.which("studio")] if shutil.which("studio") else [sys.executable, "-m", "studio"])
    out = Path(tempfile.mkdtemp(prefix="studio-start-")) / "window.png"
    one_start(command, out)  # warm the file cache: the first start after a boot reads everything from disk
    paints, walls, cpus = zip(*(one_start(command, out) for _ in range(args.runs)))
    result = {"command": " ".join(command), "runs": args.runs,
              "first_paint_ms": {"median": round(statistics.median(paints)), "min": round(min(paints)),
                                 "max": round(max(paints))},
              "launch_to_exit_ms": {"median": round(statistics.median(walls)), "min": round(min(walls)),
                                    "max": round(max(walls))},
              "launch_to_exit_cpu_ms": {"median": round(statistics.median(cpus)), "min": round(min(cpus))},
              "load_average": round(os.getloadavg()[0], 1), "cpus": os.cpu_count()}
    print(f"{result['command']}: first paint {result['first_paint_ms']['median']} ms after process start "
          f"(median of {args.runs}; min {result['first_paint_ms']['min']}, max {result['first_paint_ms']['max']}); "
          f"launch to exit with the screenshot written {result['launch_to_exit_ms']['median']} ms "
          f"({result['launch_to_exit_cpu_ms']['median']} ms of CPU); "
          f"target < 1000 ms: {'met' if result['first_paint_ms']['median'] < 1000 else 'MISSED'} "
          f"(load average {result['load_average']} on {result['cpus']} CPUs)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
