"""Garbage is collected on the GUI thread only, never in a pool thread (a crash otherwise)."""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QThreadPool

from studio.gui import app as appmod
from studio.gui import collector, tasks


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def _make_cyclic_garbage() -> int:
    for _ in range(50_000):
        _Cycle()
    return 0


def test_collections_happen_only_on_the_gui_thread(qtbot, qapp):
    collector.stop()  # the test fixture's collector: the application's own must take over
    appmod.application()  # what the `studio` command calls
    threads: list[int] = []

    def record(phase, info):
        if phase == "start":
            threads.append(threading.get_ident())

    gc.callbacks.append(record)
    try:
        runner = tasks.TaskRunner()
        delivered = []
        runner.submit("garbage", _make_cyclic_garbage, delivered.append)
        tasks.release()
        qtbot.waitUntil(lambda: delivered == [0], timeout=30_000)
        QThreadPool.globalInstance().waitForDone(30_000)
        qtbot.waitUntil(lambda: len(threads) > 0, timeout=5_000)  # the timer collected it
    finally:
        gc.callbacks.remove(record)
    assert set(threads) == {threading.main_thread().ident}
