"""How responsive the window stays while a long run's event log is replayed into the run view.

Writes an events.jsonl of N step events (plus an eval every 100 steps), follows it with a
RunProcess into a RunView (offscreen, 1280x800), and reports the total replay time, the longest
time the event loop was blocked (measured by a 10 ms heartbeat timer) and the time of one full
redraw of the loss plot with all points.

    python benchmarks/run_view_replay.py --steps 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def write_log(run_dir: Path, steps: int) -> None:
    with open(run_dir / "events.jsonl", "w") as fh:
        fh.write(json.dumps({"v": 1, "type": "started", "time": 0.0, "config": {}, "params_total": 1, "params_trainable": 1,
                             "train_rows": 1, "eval_rows": 1, "device": "cpu", "max_steps": steps}) + "\n")
        for s in range(1, steps + 1):
            fh.write(json.dumps({"v": 1, "type": "step", "time": s * 0.01, "step": s, "epoch": s / steps,
                                 "loss": 2.0 + 1.0 / s + (s % 7) * 0.01, "learning_rate": 1e-4, "grad_norm": 1.0,
                                 "tokens_per_second": 2000.0, "tokens_seen": s * 512, "memory_mib": 400.0}) + "\n")
            if s % 100 == 0:
                fh.write(json.dumps({"v": 1, "type": "eval", "time": s * 0.01, "step": s, "eval_loss": 2.1,
                                     "perplexity": 8.1, "metrics": {}}) + "\n")
        fh.write(json.dumps({"v": 1, "type": "finished", "time": steps * 0.01, "status": "completed"}) + "\n")


def _probe_class():
    from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer

    class InputProbe(QObject):
        """Posts an event, as a mouse click or key press would be, and records how long it waited."""

        def post(self) -> None:
            self._sent = time.perf_counter()
            QCoreApplication.postEvent(self, QEvent(QEvent.Type.User))

        def event(self, ev) -> bool:
            if ev.type() == QEvent.Type.User:
                self.waits.append(time.perf_counter() - self._sent)
                QTimer.singleShot(10, self.post)  # not at once: a busy probe would slow the replay
                return True
            return super().event(ev)

    InputProbe.waits = []
    return InputProbe


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    args = parser.parse_args()
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    from studio.gui.run_view import RunView
    from studio.gui.runner import RunProcess

    app = QApplication(sys.argv)
    InputProbe = _probe_class()
    run_dir = Path(tempfile.mkdtemp())
    write_log(run_dir, args.steps)
    view = RunView()
    view.resize(1280, 800)
    view.show()
    probe = InputProbe()
    proc = RunProcess(run_dir)
    loop = QEventLoop()
    proc.finished.connect(loop.quit)
    view.watch(proc)
    t0 = time.perf_counter()
    proc.follow(None)
    probe.post()
    loop.exec()
    gaps = probe.waits
    replay = time.perf_counter() - t0
    t1 = time.perf_counter()
    view.panel.loss._dirty.update(view.panel.loss.series)
    view.panel.loss.redraw()
    app.processEvents()
    redraw = time.perf_counter() - t1
    print(f"steps={args.steps} points_in_loss_plot={view.panel.loss.point_count('train')} "
          f"replay_s={replay:.2f} input_wait_max_s={max(gaps):.3f} "
          f"input_wait_p99_s={sorted(gaps)[int(0.99 * len(gaps))]:.3f} waits={len(gaps)} full_redraw_s={redraw:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
