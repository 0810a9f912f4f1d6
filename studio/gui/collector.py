"""Python's cyclic garbage collection, run only on the window's thread.

The pages do slow work in Qt's thread pool. Left automatic, a collection starts in whichever
thread happens to allocate when a threshold is crossed; if that is a pool thread and the cycle
it frees holds a Qt object (a page's lambda, a relay, a closed dialog), Qt destroys a
QObject of the GUI thread from another thread and the process dies with a segmentation
fault. So while the window lives, automatic collection is off and a timer on the GUI thread
collects instead, generation by generation, with the interpreter's own thresholds.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

#: how often the GUI thread looks at the collector's counts
INTERVAL_MS = 250

_active: "MainThreadCollector | None" = None


class MainThreadCollector(QObject):
    """Collects on a timer of the thread it was made in; see :func:`start`."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._threshold = gc.get_threshold()
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.check)
        self._timer.start(INTERVAL_MS)

    def check(self) -> None:
        """Collect the generations whose counts passed their thresholds, youngest first."""
        counts = gc.get_count()
        for generation in range(3):
            if counts[generation] <= self._threshold[generation]:
                break
            gc.collect(generation)

    def stop(self) -> None:
        """Collect everything once on this thread and give collection back to the interpreter."""
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()


def start(parent: QObject) -> MainThreadCollector:
    """Turn automatic collection off and collect on ``parent``'s thread instead (idempotent)."""
    global _active
    if _active is None:
        _active = MainThreadCollector(parent)
    return _active


def stop() -> None:
    """Undo :func:`start` (for tests, which share one interpreter with code that is not Qt's)."""
    global _active
    if _active is not None:
        _active.stop()
        _active.deleteLater()
        _active = None
