"""Work around reference-count bugs in the installed PySide6 (6.12.0 on CPython 3.11).

Measured here: every ``signal.emit(...)`` called from Python returns ``True`` without taking a
reference to it, and every method that returns nothing (``setText``, ``setValue``, ...) returns
``None`` without taking one. Each call lowers the count of ``True`` or ``None`` by one; after a
few hundred emits (or some tens of thousands of setters) CPython aborts with "Fatal Python
error: bool_dealloc / none_dealloc". A training run replayed into the plots makes that many
calls in seconds.

CPython 3.12 made these singletons immortal, which hides such bugs. :func:`install` does the
same by hand on older interpreters, and only when the bug is measured: it adds 2**40 to the
reference counts of ``None``, ``True`` and ``False``, which no number of leaked references in a
session can use up. Nothing is changed where PySide6 behaves.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal

_PROBES = 10
_PIN = 1 << 40
_installed = False


class _Probe(QObject):
    ping = Signal()


def leaks() -> dict[str, int]:
    """References to ``True`` and ``None`` lost by ten emits and ten void calls."""
    probe = _Probe()
    true0, none0 = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(_PROBES):
        probe.ping.emit()
        probe.setObjectName("probe")
    return {"True": true0 - sys.getrefcount(True), "None": none0 - sys.getrefcount(None)}


def _add_references(obj: object, count: int) -> None:
    # ob_refcnt is the first field of every object in CPython's (non-debug) object layout.
    ctypes.c_ssize_t.from_address(id(obj)).value += count


def install() -> bool:
    """Pin ``None``/``True``/``False`` if PySide6 leaks their references; returns whether it did."""
    global _installed
    if _installed or sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return _installed
    lost = leaks()
    if max(lost.values()) < _PROBES:
        return False
    for obj in (None, True, False):
        _add_references(obj, _PIN)
    _installed = True
    return True
