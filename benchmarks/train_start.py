"""Press Train to first step: a fresh worker process against one started ahead of time.

Each round starts the demo preset twice through the window's own ``RunsController`` (the code
the Train button calls), once with a fresh process (``STUDIO_STANDBY=0``'s path: the baseline)
and once handed to a standby worker that had finished its imports, in alternating order, and
measures the time from the call to the first ``step`` event the window receives (it reads
``events.jsonl`` every 200 ms, as it does for real runs). The run is then stopped and its
process awaited, so rounds do not overlap. From the ``started`` event's ``startup`` times the
wait is split into:

* spawn: the call until the process runs (fresh) or takes the run (standby);
* imports: until torch, transformers, PEFT, accelerate and TensorBoard are imported;
* data: tokenizer, reading and encoding the rows, lints, the metric loggers;
* model: loading the model and applying the method;
* first step: preparing the optimizer, the ``started`` event and the first optimizer step;
* seen: until the window has read the step event.

The machine's load average is printed before and after: on a shared machine it moves these
figures more than anything in Studio does, hence the baseline in the same run.

Usage::

    python benchmarks/train_start.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

PHASES = ("spawn", "imports", "data", "model", "first step", "seen")
TARGET_S = 4.0


def wait_until(app, predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.005)
    return True


def one_start(app, controller, cfg) -> dict:
    """Start a run, wait for its first step event, stop it; the phases in seconds."""
    seen: dict = {}
    pressed = time.time()
    proc = controller.start_run(cfg)
    proc.event.connect(lambda ev: seen.setdefault(ev["type"], (ev, time.time())))
    if not wait_until(app, lambda: "step" in seen or "finished" in seen, 300):
        raise SystemExit(f"no step event within 300 s; see {proc.run_dir}/worker.log")
    if "step" not in seen:
        raise SystemExit(f"the run ended before its first step: {seen['finished'][0]}")
    started, (step, window_time) = seen["started"][0], seen["step"]
    up = started.get("startup", {})
    begin = up.get("run_received") or up["process_start"]
    marks = [pressed, begin, up["imports_done"], up["data_done"], up["model_done"], step["time"], window_time]
    proc.stop()
    wait_until(app, lambda: not proc.is_alive(), 120)
    result = {name: round(b - a, 3) for name, a, b in zip(PHASES, marks, marks[1:])}
    result["total"] = round(window_time - pressed, 3)
    result["standby"] = bool(up.get("standby"))
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    os.environ["STUDIO_HOME"] = tempfile.mkdtemp(prefix="studio-train-start-")
    from PySide6.QtCore import QCoreApplication

    from studio.gui.app import initial_config
    from studio.gui.run_controller import RunsController

    app = QCoreApplication.instance() or QCoreApplication(sys.argv[:1])
    cfg = initial_config()
    load_before = os.getloadavg()
    results: dict[str, list[dict]] = {"fresh": [], "standby": []}
    prep: list[float] = []
    for r in range(args.rounds):
        for mode in (("fresh", "standby") if r % 2 == 0 else ("standby", "fresh")):
            controller = RunsController()
            if mode == "standby":
                began = time.perf_counter()
                controller.enable_standby()
                if not wait_until(app, lambda: controller.standby.is_ready(), 300):
                    raise SystemExit(f"the standby worker did not get ready; see {controller.standby.folder}")
                prep.append(time.perf_counter() - began)
            results[mode].append(one_start(app, controller, cfg))
            controller.close_standby()
            print(f"round {r + 1} {mode:<8}", json.dumps(results[mode][-1]), flush=True)
    load_after = os.getloadavg()
    print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); "
          f"{os.cpu_count()} CPUs; median of {args.rounds} starts each; standby ready {statistics.median(prep):.1f} s "
          f"after it was started (not part of the wait)")
    print(f"{'phase (s)':<12}" + "".join(f"{m:>10}" for m in results))
    for phase in (*PHASES, "total"):
        print(f"{phase:<12}" + "".join(f"{statistics.median(r[phase] for r in results[m]):>10.2f}" for m in results))
    fresh = statistics.median(r["total"] for r in results["fresh"])
    warm = statistics.median(r["total"] for r in results["standby"])
    print(f"\nPress Train to first step: {warm:.2f} s with a standby worker, {fresh:.2f} s fresh "
          f"({warm / fresh:.2f}x); target < {TARGET_S:.0f} s: {'met' if warm < TARGET_S else 'MISSED'}")
    print(json.dumps({"fresh_s": fresh, "standby_s": warm, "ratio": round(warm / fresh, 3),
                      "load_before": round(load_before[0], 2), "load_after": round(load_after[0], 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
