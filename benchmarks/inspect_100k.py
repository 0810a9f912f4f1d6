"""Time `studio inspect` on a generated 100k-row chat dataset, cold and with a warm cache.

Usage::

    python benchmarks/inspect_100k.py [--rows 100000] [--model resources/demo-model] [--template auto] [--keep DIR]

Writes a seeded OpenAI-messages JSONL file (system, user, assistant turns of varied length),
then runs ``python -m studio inspect`` on it twice in a fresh ``STUDIO_HOME``: the first run
measures every row through the encoder, the second finds the lengths in the statistics
cache (and skips loading the file). Prints the wall and CPU time of each run; the target is
well under 30 s for the cold run on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("the train to Lisbon leaves early so book a seat near the window and bring water "
         "museums close on Mondays while markets open at dawn; ask locals where they eat").split()


def sentence(rng: random.Random, words: int) -> str:
    """A plain sentence of ``words`` words."""
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` chat rows whose lengths spread from a few to a few hundred tokens."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(rows):
            messages = [{"role": "system", "content": "You are a helpful travel assistant."},
                        {"role": "user", "content": sentence(rng, rng.randint(4, 40))},
                        {"role": "assistant", "content": sentence(rng, int(rng.lognormvariate(3.5, 0.8)) + 1)}]
            fh.write(json.dumps({"messages": messages}) + "\n")


def timed_inspect(data: Path, model: str, template: str, home: Path) -> tuple[float, float, str]:
    """Run ``python -m studio inspect`` once: (wall seconds, CPU seconds, its output).

    CPU time (user + system of the child) is reported too because wall time on a shared
    machine also counts the time other processes held the cores.
    """
    env = {**os.environ, "STUDIO_HOME": str(home)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    command = [sys.executable, "-m", "studio", "inspect", "--model", model, "--data", str(data), "--template", template]
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        sys.exit(f"studio inspect failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--model", default=str(ROOT / "resources" / "demo-model"))
    parser.add_argument("--template", default="auto", help="chat template (llama3 for a tokenizer-only folder)")
    parser.add_argument("--keep", metavar="DIR", help="write the dataset here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        data = folder / f"chat_{args.rows}.jsonl"
        start = time.perf_counter()
        if not data.exists():  # a kept file is reused: the same seed writes the same rows
            generate(data, args.rows)
        print(f"generated {args.rows:,} rows ({data.stat().st_size / 1e6:.1f} MB) "
              f"in {time.perf_counter() - start:.1f} s")
        home = Path(tmp) / "home"
        cold, cold_cpu, report = timed_inspect(data, args.model, args.template, home)
        warm, warm_cpu, _ = timed_inspect(data, args.model, args.template, home)
    print(report)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"studio inspect, {args.rows:,} rows: cold {cold:.1f} s wall / {cold_cpu:.1f} s CPU, "
          f"cached {warm:.1f} s wall / {warm_cpu:.1f} s CPU ({os.cpu_count()} CPUs, load average {load})")


if __name__ == "__main__":
    main()
