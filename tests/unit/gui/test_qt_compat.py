"""The PySide6 emit reference-count workaround keeps long event streams from aborting Python."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal

import studio.gui  # noqa: F401  (installs the workaround)
from studio.gui import qt_compat


class Emitter(QObject):
    event = Signal(object)


def test_many_emits_leave_the_refcount_of_true_unchanged():
    emitter, got = Emitter(), []
    emitter.event.connect(got.append)
    before = sys.getrefcount(True)
    for i in range(20000):  # far more than the few hundred references True starts with
        emitter.event.emit({"step": i})
    assert abs(sys.getrefcount(True) - before) < 50  # unpatched it falls by 20000 (and aborts)
    assert len(got) == 20000


def test_probe_reports_no_leak_once_installed():
    qt_compat.install()
    assert qt_compat.emit_leaks_true() is False
