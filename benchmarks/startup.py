"""Time from process start to the window's first paint: ``python benchmarks/startup.py [RUNS]``.

Each run starts a fresh ``studio --screenshot`` process (offscreen) and reads the first-paint
time it prints; the machine's load average is printed alongside, since on shared machines it
moves the figure more than anything in Studio does.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def first_paint_ms(out: Path) -> int:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-m", "studio", "--screenshot", str(out)], capture_output=True,
                          text=True, env=env, timeout=120, check=True)
    line = next(line for line in proc.stdout.splitlines() if line.startswith("first paint"))
    return int(line.split()[2])


def main(runs: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        times = [first_paint_ms(Path(tmp) / f"{i}.png") for i in range(runs)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"first paint over {runs} runs: median {statistics.median(times)} ms, min {min(times)} ms, "
          f"max {max(times)} ms (load average {load:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
