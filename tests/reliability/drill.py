"""What the reliability drills share: a scratch Studio home, a tiny model, run folders, verdicts.

The drills are scripts a person reruns (``python tests/reliability/drill_sighup.py``); pytest does
not collect them. Each prints one ``PASS``/``FAIL``/``SKIP`` line per promise and exits 1 if any
promise failed. They train a tiny random Llama (hidden size 32) with the demo tokenizer on the
first rows of the demo dataset, on the CPU, so each takes about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from worker_runs import build_tiny_model, make_run_dir  # noqa: E402

FAILED: list[str] = []


def scratch(name: str) -> Path:
    """A fresh folder for one drill; Studio's home (registry) goes inside it."""
    folder = Path(tempfile.mkdtemp(prefix=f"studio-drill-{name}-"))
    os.environ["STUDIO_HOME"] = str(folder / "home")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return folder


def tiny_run(folder: Path, **settings) -> Path:
    """A run folder (not started) training a tiny model; ``settings`` as ``{"train.max_steps": 40}``."""
    model = folder / "model"
    if not model.exists():
        build_tiny_model(model)
    base = {"train.max_steps": 40, "train.batch_size": 2, "eval.every_steps": 0, "eval.sample_prompts": [],
            "output.save_every_steps": 5, "data.max_length": 64}
    return make_run_dir(folder, model, {**base, **settings})


def env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def worker(run_dir: Path, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "studio.worker", str(run_dir), *args], cwd=str(ROOT), env=env(),
                            **popen)


def studio(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "studio", *args], cwd=str(ROOT), env=env(), **popen)


def events(run_dir: Path) -> list[dict]:
    """Every event of events.jsonl; a line that is not JSON fails the drill's promise of whole lines."""
    out = []
    for number, line in enumerate((run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"type": "BROKEN LINE", "line": number})
    return out


def wait_for(predicate, timeout: float = 180.0, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def check(promise: str, ok: bool, detail: str = "") -> bool:
    print(f"{'PASS' if ok else 'FAIL'}: {promise}" + (f" ({detail})" if detail and not ok else ""), flush=True)
    if not ok:
        FAILED.append(promise)
    return ok


def skip(reason: str) -> None:
    print(f"SKIP: {reason}", flush=True)
    sys.exit(0)


def finish() -> None:
    print(f"{len(FAILED)} promise(s) failed" if FAILED else "all promises held", flush=True)
    sys.exit(1 if FAILED else 0)
