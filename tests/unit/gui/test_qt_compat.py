"""The PySide6 reference-count workaround keeps long event streams from aborting Python."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QProgressBar

import studio.gui  # noqa: F401  (installs the workaround)
from studio.gui import qt_compat


class Emitter(QObject):
    event = Signal(object)


def test_many_emits_and_setters_do_not_abort(qapp):
    """Unpatched, this aborts the interpreter (bool_dealloc / none_dealloc) long before the end."""
    emitter, got, bar = Emitter(), [], QProgressBar()
    emitter.event.connect(got.append)
    for i in range(100_000):
        emitter.event.emit({"step": i})
        bar.setValue(i % 100)
    assert len(got) == 100_000


def test_install_is_idempotent():
    first = qt_compat.install()
    assert qt_compat.install() == first
