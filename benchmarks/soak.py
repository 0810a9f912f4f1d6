"""Memory over a long run: the demo preset trained for many steps, the worker's RSS every 100 steps.

A run's memory must level off once its first steps have warmed up what they cache; memory that
keeps growing ends a long run out of memory. This starts the real worker
(``python -m studio.worker RUN_DIR``) on the demo preset with evaluation, samples and
checkpoints off, reads the ``memory_mib`` of its step events (the worker's resident set on a
CPU; ``torch.cuda.max_memory_allocated`` on a GPU) and prints it at every ``--every`` steps.

Target: after the first 200 steps, memory grows by less than 5 % to the end.

Usage::

    python benchmarks/soak.py                  # 2,000 steps
    python benchmarks/soak.py --steps 600      # shorter, for iterating
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WARM_STEPS = 200
TARGET_GROWTH = 0.05


def make_run(folder: Path, steps: int, device: str) -> Path:
    """A run folder with the demo preset, ``steps`` steps, no evaluation, samples or checkpoints."""
    from studio.core import config as configmod

    cfg = configmod.load(ROOT / "resources" / "presets" / "demo.yaml")
    data = configmod.to_dict(cfg)
    data["model"]["path"] = str(ROOT / "resources" / "demo-model")
    data["data"]["train"] = str(ROOT / "resources" / "datasets" / "travel_chat.jsonl")
    data["train"].update(max_steps=steps, device=device)
    data["eval"].update(every_steps=0, sample_prompts=[])
    data["output"].update(save_every_steps=10**9)
    run_dir = folder / "run"
    run_dir.mkdir(parents=True)
    configmod.save(configmod.from_dict(data), run_dir / "config.yaml")
    return run_dir


def memory_by_step(run_dir: Path) -> dict[int, float]:
    out = {}
    for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("type") == "step":
            out[event["step"]] = event["memory_mib"]
    return out


def growth(memory: dict[int, float], warm: int = WARM_STEPS, window: int = 50) -> tuple[float, float, float]:
    """(memory after ``warm`` steps, memory at the end, relative growth between them).

    Each is the median of ``window`` consecutive steps' figures: a single step's resident set
    moves by a few per cent with the size of that step's batch.
    """
    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    steps = sorted(memory)
    start = median([memory[s] for s in steps if warm <= s < warm + window])
    end = median([memory[s] for s in steps[-window:]])
    return start, end, end / start - 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--every", type=int, default=100, help="print memory every this many steps")
    p.add_argument("--device", default="auto")
    p.add_argument("--workdir", default=None)
    args = p.parse_args(argv)
    run_dir = make_run(Path(args.workdir or tempfile.mkdtemp(prefix="studio-soak-")), args.steps, args.device)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "studio.worker", str(run_dir)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"the worker failed (exit {proc.returncode})")
    memory = memory_by_step(run_dir)
    for step in sorted(memory):
        if step == 1 or step % args.every == 0 or step == max(memory):
            print(f"step {step:>5}: {memory[step]:8.1f} MiB", flush=True)
    warm = min(WARM_STEPS, max(memory) // 2)
    window = max(1, min(50, (max(memory) - warm) // 2))
    start, end, g = growth(memory, warm, window)
    print(f"{args.steps} steps in {time.perf_counter() - started:.0f} s; median of {window} steps from step {warm}: "
          f"{start:.1f} MiB, of the last {window}: {end:.1f} MiB; growth {100 * g:.1f} % "
          f"(target < {100 * TARGET_GROWTH:.0f} %: {'met' if g < TARGET_GROWTH else 'NOT met'})")
    print(json.dumps({"steps": args.steps, "first_mib": memory[min(memory)], "warm_mib": start, "end_mib": end,
                      "growth_after_warm": round(g, 4)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
