"""A message strip at the top of a page: errors, warnings and notes where the person looks."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton

from studio.core.errors import StudioError


class ErrorBanner(QFrame):
    """Shows one message (with its hint) in a coloured strip; hidden when there is none.

    The ``level`` property (error, warning, info) drives the colours in style.qss.
    """

    def __init__(self, object_name: str = "errorBanner", parent=None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setAccessibleName("Message")
        self.setProperty("level", "error")
        self._label = QLabel(self)
        self._label.setObjectName(f"{object_name}Text")
        self._label.setWordWrap(True)
        self._label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        close = QToolButton(self)
        close.setObjectName(f"{object_name}Close")
        close.setText("✕")
        close.setAccessibleName("Dismiss message")
        close.setToolTip("Dismiss this message")
        close.clicked.connect(self.clear)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self._label, 1)
        layout.addWidget(close, 0, Qt.AlignTop)
        self.hide()

    @property
    def text(self) -> str:
        """The plain text shown (empty when hidden)."""
        return self._label.text() if self.isVisibleTo(self.parentWidget()) else ""

    def show_error(self, error: BaseException | str, hint: str = "") -> None:
        """Show a StudioError's message and hint, or any exception/string as an error."""
        if isinstance(error, StudioError):
            message, hint = error.message, hint or error.hint
        else:
            message = str(error) or type(error).__name__
        self._show("error", message, hint)

    def show_warning(self, message: str, hint: str = "") -> None:
        self._show("warning", message, hint)

    def show_info(self, message: str) -> None:
        self._show("info", message, "")

    def clear(self) -> None:
        self._label.clear()
        self.hide()

    def _show(self, level: str, message: str, hint: str) -> None:
        self.setProperty("level", level)
        self._label.setText(f"{message}\nWhat to do: {hint}" if hint else message)
        # A dynamic property only restyles after the style sheet is re-applied.
        self.style().unpolish(self)
        self.style().polish(self)
        self.show()
