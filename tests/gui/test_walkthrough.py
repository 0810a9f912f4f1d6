"""A new user's walk through the window the `studio` command builds: what misled them must not."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QScrollArea

from studio.gui import tasks
from studio.gui.app import build_window

ROOT = Path(__file__).resolve().parents[2]
# The offscreen platform says this when a top-level window is shown; it is not about our code.
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.fixture
def window(qtbot):
    w = build_window()
    qtbot.addWidget(w)
    w.resize(1024, 700)
    w.show()
    tasks.wait_idle(60)
    yield w
    tasks.wait_idle(30)


def wheel(widget, notches: int = 3) -> None:
    """Turn the mouse wheel down over the middle of ``widget``, ``notches`` clicks."""
    centre = widget.rect().center()
    for _ in range(notches):
        event = QWheelEvent(QPointF(centre), QPointF(widget.mapToGlobal(centre)), QPoint(0, 0), QPoint(0, -120),
                            Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
        QApplication.sendEvent(widget, event)


# -- 1. the wheel scrolls the page; it changes only the box the person clicked into ------------------

def test_the_wheel_over_unfocused_boxes_scrolls_the_method_page_and_changes_nothing(window, qtbot):
    page = window.show_page("Method")
    area = page.findChild(QScrollArea, "settingsArea")
    bar = area.verticalScrollBar()
    steps, device = page.form.editor("train.max_steps"), page.form.editor("train.device")
    before = (steps.value(), device.currentText())
    for box in (device, steps):
        area.ensureWidgetVisible(box)
        top = bar.value()
        assert top < bar.maximum()  # room to scroll down
        wheel(box)
        assert bar.value() > top, f"the page did not scroll under {box.objectName()}"
    assert (steps.value(), device.currentText()) == before
    assert window.state.config.train.max_steps == before[0] and window.state.config.train.device == before[1]
    assert steps.focusPolicy() == Qt.StrongFocus and device.focusPolicy() == Qt.StrongFocus

    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    steps.setFocus()
    qtbot.waitUntil(steps.hasFocus, timeout=5000)
    wheel(steps, 1)  # clicked into: the wheel edits it, as in every desktop app
    assert steps.value() == before[0] - 1
