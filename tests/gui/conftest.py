"""GUI tests: background work ends before a test's windows are torn down."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _background_work_finishes(qtbot, qapp):
    """Pages tokenize and read files in Qt's thread pool (two threads on two cores, so a test's
    jobs may still run after it ends). A job that signals a window already torn down, or a
    torn-down window collected while its job runs, crashes the test process; wait for them.
    Garbage is collected on the GUI thread only, as the application does (see
    studio.gui.collector), and automatic collection is given back after each test."""
    from PySide6.QtCore import QThreadPool

    from studio.gui import collector, tasks

    collector.start(qapp)
    yield
    tasks.release()
    QThreadPool.globalInstance().waitForDone(120_000)
    collector.stop()


@pytest.fixture
def window(qtbot):
    """The window the `studio` command builds, at 1024x700, shown, its start-up loads done.
    A test module may define its own ``window`` instead."""
    from studio.gui import tasks
    from studio.gui.app import build_window

    w = build_window()
    w.resize(1024, 700)
    w.show()
    tasks.wait_idle(60)
    yield w
    tasks.wait_idle(60)
    w.close()
    w.deleteLater()
