"""A small "working…" indicator for background work."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget


class BusyIndicator(QWidget):
    """An indeterminate bar with a short label; shows determinate progress when given counts.

    Signals:
        stop_requested(): the person pressed Stop (shown only while :meth:`progress` reports counts
            and ``stoppable`` was given).
    """

    stop_requested = Signal()

    def __init__(self, object_name: str = "busyIndicator", parent=None, stoppable: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setAccessibleName("Working")
        self._bar = QProgressBar(self)
        self._bar.setObjectName(f"{object_name}Bar")
        self._bar.setMaximumWidth(160)
        self._bar.setMaximumHeight(12)
        self._bar.setTextVisible(False)
        self._label = QLabel(self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._bar)
        layout.addWidget(self._label, 1)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setObjectName(f"{object_name}Stop")
        self.stop_button.setToolTip("Stop reading: what was read so far is not shown")
        self.stop_button.clicked.connect(self.stop_requested)
        self.stop_button.hide()
        self._stoppable = stoppable
        layout.addWidget(self.stop_button)
        self.hide()

    def start(self, text: str = "Working…") -> None:
        """Show an indeterminate bar with ``text``."""
        self._bar.setRange(0, 0)
        self._label.setText(text)
        self.stop_button.hide()
        self.show()

    def progress(self, done: int, total: int, text: str = "") -> None:
        """Show ``done`` of ``total`` (falls back to indeterminate when total is 0)."""
        self._bar.setRange(0, max(total, 0))
        self._bar.setValue(done)
        if text:
            self._label.setText(text)
        self.stop_button.setVisible(self._stoppable)
        self.show()

    def stop(self) -> None:
        self.hide()

    def set_busy(self, busy: bool, text: str = "Working…") -> None:
        """Convenience for TaskRunner.busy_changed."""
        self.start(text) if busy else self.stop()
