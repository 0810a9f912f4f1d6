"""Responsiveness of the run view while a 1,000,000-step run streams 1,000 events per second.

The run view (``studio.gui.run_view.RunView``, the view the Train page shows) is filled with
the first ``1,000,000 - rate * seconds`` steps directly, as a reattached long run would be, and
then follows a live ``events.jsonl`` that a separate writer process appends to at ``--rate``
step events per second, exactly as a worker does; the window reads it through the same
``RunProcess`` it uses for real runs. Offscreen, 1280x800.

Reported:

* the longest event-loop stall: a 5 ms heartbeat ``QTimer`` records how late each tick fires
  (target < 50 ms), and, because on a shared machine lateness is mostly other processes'
  time, the main thread's CPU time of the longest single event the window handled;
* plot redraw with all 1,000,000 points: handing the series to the curves and the one paint
  that causes, timed directly for the loss plot (target < 16 ms), for the live redraws that
  happened during the stream (one plot per redraw timer tick), and for all five plots at once.

Usage::

    python benchmarks/gui_stream.py [--seconds 10] [--rate 1000] [--steps 1000000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HEARTBEAT_MS = 5

#: The writer: appends step events at a fixed rate in batches (``--batch-ms``), then the final event.
WRITER = r"""
import json, sys, time
path, first, count, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
per_batch = max(1, int(rate * float(sys.argv[5]) / 1000))
line = ('{"v": 1, "type": "step", "time": %.3f, "step": %d, "epoch": %.5f, "loss": %.5f, "learning_rate": 0.0001, '
        '"grad_norm": 1.0, "tokens_per_second": 2000.0, "tokens_seen": %d, "memory_mib": 400.0, "max_steps": %d}\n')
last = first + count - 1
start = time.perf_counter()
with open(path, "a") as fh:
    for s in range(first, first + count, per_batch):
        batch = range(s, min(s + per_batch, first + count))
        fh.write("".join(line % (time.time(), k, k / last, 2.0 + 1.0 / k + (k % 7) * 0.01, k * 512, last) for k in batch))
        fh.flush()
        wait = start + (s + len(batch) - first) / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    fh.write(json.dumps({"v": 1, "type": "finished", "time": time.time(), "status": "completed"}) + "\n")
"""


def step_event(k: int, last: int) -> dict:
    return {"v": 1, "type": "step", "time": k * 0.01, "step": k, "epoch": k / last, "loss": 2.0 + 1.0 / k + (k % 7) * 0.01,
            "learning_rate": 1e-4, "grad_norm": 1.0, "tokens_per_second": 2000.0, "tokens_seen": k * 512,
            "memory_mib": 400.0, "max_steps": last}


def prefill(view, app, upto: int, last: int) -> float:
    """The first ``upto`` steps (and an eval every 1,000) straight into the view; returns seconds."""
    started = time.perf_counter()
    for lo in range(1, upto + 1, 100_000):
        chunk = [step_event(k, last) for k in range(lo, min(lo + 100_000, upto + 1))]
        chunk += [{"v": 1, "type": "eval", "time": 0.0, "step": k, "eval_loss": 2.1, "perplexity": 8.2, "metrics": {}}
                  for k in range(lo, min(lo + 100_000, upto + 1)) if k % 1000 == 0]
        view.add_events(chunk)
        app.processEvents()
    return time.perf_counter() - started


def timed_application(argv: list[str]):
    """A QApplication that records the main thread's CPU time for every event it delivers.

    The longest delivery (a timer's slot such as reading the log or redrawing a plot, or one
    paint of the window) is the longest stall the window's own work causes. Wall-clock
    lateness also counts time the OS gave to other processes, which on a shared machine
    dominates; this figure does not.
    """
    from PySide6.QtWidgets import QApplication

    class TimedApplication(QApplication):
        def __init__(self, args) -> None:
            super().__init__(args)
            self.busy_ms: list[float] = []
            self.slowest: list[tuple[float, str]] = []  # (CPU ms, what it was), the 10 dearest
            self.recording = False
            self._depth = 0

        def notify(self, receiver, event) -> bool:  # noqa: D401 (Qt override)
            if not self.recording or self._depth:
                return super().notify(receiver, event)
            self._depth += 1
            cpu = time.thread_time()
            try:
                return super().notify(receiver, event)
            finally:
                self._depth -= 1
                ms = 1000 * (time.thread_time() - cpu)
                self.busy_ms.append(ms)
                if len(self.slowest) < 10 or ms > self.slowest[0][0]:
                    self._note(ms, receiver, event)

        def _note(self, ms: float, receiver, event) -> None:
            """Keep the ten dearest events, named by event type and receiver (class and objectName)."""
            what = (f"{event.type().name} -> {type(receiver).__name__}"
                    f"{'(' + receiver.objectName() + ')' if hasattr(receiver, 'objectName') and receiver.objectName() else ''}")
            self.slowest.append((ms, what))
            self.slowest.sort(key=lambda item: item[0])
            del self.slowest[:-10]

    return TimedApplication(argv)


class Heartbeat:
    """A precise timer that records how late each of its ticks fires (what a person feels)."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.late_ms: list[float] = []
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(HEARTBEAT_MS)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.late_ms.append(max(0.0, 1000 * (now - self._last) - HEARTBEAT_MS))
        self._last = now


def time_live_redraws(panel) -> list[tuple[float, float, dict]]:
    """Wrap the panel's redraw timer so each live redraw (setData + the paint it causes) is timed,
    with what it drew: the plot, points handed to its curves, the level of detail (points per
    drawn point), whether the view followed the data (auto-range), and the setData/paint split."""
    timings: list[tuple[float, float, dict]] = []
    original = panel.timer.tick

    def timed():
        dirty = [plot for plot in panel.plots if plot._dirty]
        started, cpu = time.perf_counter(), time.thread_time()
        original()
        handed = time.perf_counter()
        detail = {}
        for plot in dirty:
            if not plot._dirty:
                paint_now(plot)
                detail = describe(plot)
        detail["set_data_ms"] = round(1000 * (handed - started), 1)
        detail["paint_ms"] = round(1000 * (time.perf_counter() - handed), 1)
        timings.append((1000 * (time.perf_counter() - started), 1000 * (time.thread_time() - cpu), detail))

    panel.timer._timer.timeout.disconnect()
    panel.timer._timer.timeout.connect(timed)
    return timings


def time_polls(proc) -> list[tuple[float, int]]:
    """Wrap the run's poll: (wall ms, slices read) of each, the reading side of a stall."""
    polls: list[tuple[float, int]] = []
    read, poll = proc._read_new, proc.poll
    count = [0]

    def counted_read():
        count[0] += 1
        return read()

    def timed_poll():
        count[0], started = 0, time.perf_counter()
        poll()
        polls.append((1000 * (time.perf_counter() - started), count[0]))

    proc._read_new = counted_read
    proc._timer.timeout.disconnect()
    proc._timer.timeout.connect(timed_poll)
    return polls


def describe(plot) -> dict:
    """What a plot drew last: its name, points per curve and level of detail, auto-range."""
    drawn = {name: {"points": max(0, (end - first) // max(block, 1)), "level": block, "of": total}
             for name, (first, end, block, total) in plot._drawn.items()}
    return {"plot": plot.objectName(), "auto_range": bool(plot.getViewBox().autoRangeEnabled()[0]),
            "curves": drawn}


def paint_now(plot) -> None:
    """Deliver the scene's pending update now, inside the timing: exactly the one paint of the
    plot's viewport that the new points cause (``repaint()`` on the view would paint only its
    frame, and the curves would be painted later, outside the timing)."""
    from PySide6.QtCore import QCoreApplication

    QCoreApplication.sendPostedEvents(plot.scene(), 0)


def full_redraw_ms(plots) -> tuple[float, float]:
    """Hand every series of ``plots`` to its curves again and paint them: (wall, CPU) ms."""
    started, cpu = time.perf_counter(), time.thread_time()
    for plot in plots:
        plot._dirty.update(plot.series)
        plot.redraw()
        paint_now(plot)
    return 1000 * (time.perf_counter() - started), 1000 * (time.thread_time() - cpu)


class _Collections:
    """Times every garbage collection: a full one scans every tracked object and stalls the loop."""

    def __init__(self) -> None:
        self.ms: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.ms[info["generation"]].append(1000 * (time.perf_counter() - self._started))


def watch_collections() -> _Collections:
    watcher = _Collections()
    gc.callbacks.append(watcher.callback)
    return watcher


def stats(values: list[float]) -> dict:
    values = sorted(values) or [0.0]
    return {"median": round(statistics.median(values), 1), "p99": round(values[int(0.99 * (len(values) - 1))], 1),
            "max": round(values[-1], 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--rate", type=float, default=1000.0, help="step events per second")
    p.add_argument("--seconds", type=float, default=10.0, help="how long the live stream lasts")
    p.add_argument("--batch-ms", type=float, default=10.0,
                   help="the writer flushes every this many ms (a real worker: after every step)")
    args = p.parse_args(argv)
    from PySide6.QtCore import QEventLoop, QTimer

    from studio.gui.app import settle_heap
    from studio.gui.run_view import RunView
    from studio.gui.runner import RunProcess

    app = timed_application(sys.argv)
    live = int(args.rate * args.seconds)
    first_live = args.steps - live + 1
    run_dir = Path(tempfile.mkdtemp(prefix="studio-stream-"))
    (run_dir / "events.jsonl").write_text(json.dumps(
        {"v": 1, "type": "started", "time": time.time(), "config": {}, "params_total": 1, "params_trainable": 1,
         "train_rows": 1, "eval_rows": 1, "device": "cpu", "max_steps": args.steps}) + "\n")
    view = RunView()
    view.resize(1280, 800)
    view.show()
    proc = RunProcess(run_dir)
    view.watch(proc)
    prefill_s = prefill(view, app, first_live - 1, args.steps)
    full_redraw_ms(view.panel.plots)  # first paint with the pre-filled points
    settle_heap()  # as the window does once it has started
    live_redraws = time_live_redraws(view.panel)
    polls = time_polls(proc)
    beat = Heartbeat()
    loop = QEventLoop()
    proc.finished.connect(loop.quit)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(run_dir / "events.jsonl"), str(first_live), str(live),
                               str(args.rate), str(args.batch_ms)])
    collections = watch_collections()
    app.recording = True
    streamed = time.perf_counter()
    proc.follow(writer.pid)
    # The heartbeat starts a quarter second into the running loop: the loop's first passes paint
    # the view the artificial one-shot pre-fill built (a one-off 130-230 ms here, as when a person
    # opens a finished million-step run), which is not a stall caused by the live stream.
    QTimer.singleShot(250, beat.start)
    loop.exec()
    stream_s = time.perf_counter() - streamed
    app.recording = False
    gc.callbacks.remove(collections.callback)
    beat.stop()
    writer.wait()
    points = view.panel.loss.point_count("train")
    panel = [full_redraw_ms(view.panel.plots) for _ in range(5)]
    loss = [full_redraw_ms([view.panel.loss]) for _ in range(5)]
    result = {
        "steps": args.steps, "points_in_loss_plot": points, "live_events": live, "rate": args.rate,
        "prefill_s": round(prefill_s, 2), "stream_s": round(stream_s, 2), "heartbeats": len(beat.late_ms),
        "stall_ms": stats(beat.late_ms), "stall_cpu_ms": stats(app.busy_ms),
        "redraw_panel_ms": stats([w for w, _ in panel]), "redraw_panel_cpu_ms": stats([c for _, c in panel]),
        "redraw_loss_plot_ms": stats([w for w, _ in loss]), "redraw_loss_plot_cpu_ms": stats([c for _, c in loss]),
        "live_redraws": len(live_redraws), "live_redraw_ms": stats([w for w, _, _ in live_redraws]),
        "live_redraw_cpu_ms": stats([c for _, c, _ in live_redraws]),
        "polls": len(polls), "poll_ms": stats([ms for ms, _ in polls]), "reads_per_poll_max": max((n for _, n in polls), default=0),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "gc_ms": {f"gen{g}": {"count": len(v), "max": round(max(v, default=0.0), 1)} for g, v in collections.ms.items()},
    }
    print(f"{points:,} points per curve; {live:,} events streamed live at {args.rate:.0f}/s in {stream_s:.1f} s "
          f"(pre-fill {prefill_s:.1f} s)")
    for label, key, target in (("event-loop stall", "stall", 50), ("redraw, loss plot", "redraw_loss_plot", 16),
                               ("live redraw (one plot)", "live_redraw", 16)):
        wall, cpu = result[key + "_ms"], result[key + "_cpu_ms"]
        print(f"{label:<30} wall max {wall['max']:>7} ms (median {wall['median']}), own CPU max {cpu['max']:>7} ms "
              f"(median {cpu['median']}); target < {target} ms: wall {'met' if wall['max'] < target else 'MISSED'}, "
              f"CPU {'met' if cpu['max'] < target else 'MISSED'}")
    wall = result["redraw_panel_ms"]
    print(f"{'all five plots in one go':<30} wall max {wall['max']:>7} ms (median {wall['median']}), "
          f"{wall['median'] / 5:.1f} ms a plot (opening a finished run; live, one plot is redrawn per tick)")
    print("\nslowest events the window handled (own CPU ms):")
    for ms, what in reversed(app.slowest):
        print(f"  {ms:7.1f}  {what}")
    print("slowest live redraws (wall ms, own CPU ms, what was drawn):")
    for wall_ms, cpu_ms, detail in sorted(live_redraws, key=lambda t: -t[0])[:8]:
        print(f"  {wall_ms:7.1f} {cpu_ms:7.1f}  {json.dumps(detail)}")
    print(f"reading the log: {len(polls)} polls, wall {result['poll_ms']} ms, at most "
          f"{result['reads_per_poll_max']} slices in one poll")
    print(f"garbage collections during the stream: {result['gc_ms']}")
    print(f"load average {result['load_average']} on {os.cpu_count()} CPUs")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
