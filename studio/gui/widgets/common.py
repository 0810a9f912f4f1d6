"""Small building blocks every page uses, so the pages look alike."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget


def named(widget, object_name: str, accessible: str, tooltip: str = ""):
    """Give a control its stable objectName, accessible name and (optionally) tooltip."""
    widget.setObjectName(object_name)
    widget.setAccessibleName(accessible)
    if tooltip:
        widget.setToolTip(tooltip)
    return widget


def role_label(text: str, role: str, parent=None) -> QLabel:
    """A label styled by its role in style.qss: title, subtitle, muted or value."""
    label = QLabel(text, parent)
    label.setProperty("role", role)
    label.setWordWrap(role in ("subtitle", "muted"))
    return label


def button(text: str, object_name: str, accessible: str = "", tooltip: str = "", primary: bool = False) -> QPushButton:
    """A push button with names set; ``primary`` makes it the page's main action."""
    b = named(QPushButton(text), object_name, accessible or text.rstrip("…"), tooltip)
    if primary:
        b.setProperty("primary", True)
    return b


def page_layout(page: QWidget, title: str, subtitle: str) -> QVBoxLayout:
    """The shared page frame: a title, one line saying what the page is for, then content."""
    layout = QVBoxLayout(page)
    layout.setContentsMargins(24, 18, 24, 18)
    layout.setSpacing(10)
    layout.addWidget(role_label(title, "title", page))
    layout.addWidget(role_label(subtitle, "subtitle", page))
    return layout
