"""Work around a reference-count bug in PySide6's ``SignalInstance.emit``.

In PySide6 6.12.0 every ``signal.emit(...)`` called from Python returns ``True`` without taking
a reference to it, so each emit lowers the reference count of ``True`` by one. After a few
hundred to a few thousand emits (a training run replayed into a plot emits one per event) the
interpreter aborts with "Fatal Python error: bool_dealloc: deallocating True or False".

:func:`install` checks at start-up whether the installed PySide6 has the bug (ten emits on a
throw-away object, comparing the count before and after) and only then wraps ``emit`` to give
back the lost reference. With a PySide6 that does not have the bug, nothing is changed.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal, SignalInstance

_PROBES = 10
_installed = False


class _Probe(QObject):
    ping = Signal()


def emit_leaks_true() -> bool:
    """Whether ``emit`` drops a reference to ``True`` (measured, not assumed from the version)."""
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(_PROBES):
        probe.ping.emit()
    lost = before - sys.getrefcount(True)
    if lost > 0:
        _incref_true(lost)  # give back what the probe itself took
    return lost >= _PROBES


def _incref_true(times: int = 1) -> None:
    for _ in range(times):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))


def install() -> bool:
    """Patch ``SignalInstance.emit`` if (and only if) it has the bug; returns whether it patched."""
    global _installed
    if _installed or not emit_leaks_true():
        return _installed
    original = SignalInstance.emit

    def emit(self, *args):
        result = original(self, *args)
        if result is True:
            _incref_true()
        return result

    emit.__doc__ = original.__doc__
    SignalInstance.emit = emit
    _installed = True
    return True
