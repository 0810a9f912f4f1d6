"""The mouse wheel scrolls the page; it edits a setting only in the box the person clicked into.

Qt's spin boxes and combo boxes take the wheel whenever the pointer is over them, so scrolling
a long form changes whatever value passes under the pointer (Device from auto to mps, Max steps
from 30 to 33) and the page stops scrolling. One application-wide filter fixes every such box,
including those a page makes later: a box takes focus from a click or Tab only (not from the
wheel), and a wheel event over a box without focus goes on to the scroll area behind it.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QComboBox, QWidget

_BOXES = (QAbstractSpinBox, QComboBox)


class WheelGuard(QObject):
    """Application event filter: wheel over an unfocused spin or combo box scrolls its parent."""

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt naming)
        kind = event.type()
        if kind == QEvent.Wheel:
            if isinstance(obj, _BOXES) and not obj.hasFocus():
                pass_to_parents(obj, event)
                return True
        elif kind == QEvent.Polish and isinstance(obj, _BOXES) and obj.focusPolicy() == Qt.WheelFocus:
            obj.setFocusPolicy(Qt.StrongFocus)  # the wheel alone never gives a box focus
        return False


def guard_wheel(app: QApplication | None = None) -> WheelGuard:
    """Install the guard on the application once; returns it."""
    app = app or QApplication.instance()
    guard = app.findChild(WheelGuard)
    if guard is None:
        guard = WheelGuard(app)
        app.installEventFilter(guard)
    return guard


def pass_to_parents(widget: QWidget, event: QWheelEvent) -> None:
    """Offer the wheel event to ``widget``'s parents, nearest first, until one takes it.

    Done here rather than left to Qt, which passes an event on to parents only when it came from
    the window system: the same code path then serves a real wheel and a test's.
    """
    event.accept()  # the box is done with it; Qt must not pass the original on as well
    parent = widget.parentWidget()
    while parent is not None:
        pos = QPointF(widget.mapTo(parent, event.position().toPoint()))
        copy = QWheelEvent(pos, event.globalPosition(), event.pixelDelta(), event.angleDelta(), event.buttons(),
                           event.modifiers(), event.phase(), event.inverted(), event.source())
        QApplication.sendEvent(parent, copy)
        if copy.isAccepted():
            return
        if parent.isWindow():
            return
        parent = parent.parentWidget()
