"""A form generated from the run-config dataclasses.

Every leaf field of the chosen sections gets an editor picked from its type and metadata:
choices become combo boxes, bools check boxes, ints spin boxes, floats, strings, lists and
mappings line edits. The field's help is the tooltip. Edits are written to the shared
:class:`~studio.gui.state.StudioState`; the form re-reads the state when it changes and marks
every invalid field red with the reason as its tooltip.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QLabel, QLineEdit, QSpinBox,
                               QVBoxLayout, QWidget)

from studio.core import config as configmod

_INT_LIMIT = 2**31 - 1
SECTION_TITLES = {"model": "Model", "data": "Data", "method": "Method settings", "train": "Training",
                  "eval": "Evaluation", "output": "Checkpoints and logging", "distributed": "Several GPUs"}


def camel(*parts: str) -> str:
    """``("train", "learning_rate")`` -> ``trainLearningRate``."""
    words = "_".join(parts).split("_")
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def label_text(name: str) -> str:
    """``learning_rate`` -> ``Learning rate``."""
    text = name.replace("_", " ")
    return text[:1].upper() + text[1:]


def to_text(value: Any) -> str:
    """How a value reads in a line edit (lists comma-separated, mappings as YAML flow)."""
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return yaml.safe_dump(value, default_flow_style=True).strip() if value else ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_text(text: str, typ: type, path: str) -> Any:
    """Turn an edited string into the field's type; ValueError says why it cannot."""
    errors: list[tuple[str, str]] = []
    if typ is dict and not text.strip():
        return {}
    value = configmod._coerce(text.strip(), typ, path, errors)
    if errors:
        raise ValueError(f"not a valid {typ.__name__}: {text!r}")
    return value


def mark_invalid(widget: QWidget, reason: str) -> None:
    """Highlight a widget red with the reason as tooltip (empty reason clears it)."""
    if bool(widget.property("invalid")) == bool(reason) and widget.toolTip() == (reason or widget.property("help")):
        return
    widget.setProperty("invalid", bool(reason))
    widget.setToolTip(f"Problem: {reason}\n\n{widget.property('help') or ''}".strip() if reason
                      else widget.property("help") or "")
    widget.style().unpolish(widget)
    widget.style().polish(widget)


class ConfigForm(QWidget):
    """Editors for every field of some config sections, bound to the shared state.

    Signals:
        edited(str, str): (section, field) after the person changed a value.
    """

    edited = Signal(str, str)

    def __init__(self, state, sections: list[str], exclude: set[str] = frozenset(), parent=None, *,
                 only: set[str] | None = None, titles: dict[str, str] | None = None) -> None:
        """Build editors for ``sections``.

        Args:
            state: the shared StudioState.
            sections: config sections to show, in order.
            exclude: dotted fields to leave out.
            only: when given, show just these dotted fields.
            titles: group titles overriding the defaults.
        """
        super().__init__(parent)
        self._titles = {**SECTION_TITLES, **(titles or {})}
        self._state = state
        self.editors: dict[str, QWidget] = {}
        self._rows: dict[str, tuple[QFormLayout, QWidget]] = {}
        self._parse_errors: dict[str, str] = {}
        self._refreshing = False  # set while showing state values, so they are not written back
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        by_section: dict[str, list] = {}
        for section, name, f, value in configmod.field_info(state.config):
            path = f"{section}.{name}"
            if section in sections and path not in exclude and (only is None or path in only):
                by_section.setdefault(section, []).append((name, f, value))
        for section in sections:
            layout.addWidget(self._group(section, by_section.get(section, [])))
        layout.addStretch(1)
        state.config_changed.connect(self.refresh)
        self.refresh()

    def _group(self, section: str, fields: list) -> QGroupBox:
        box = QGroupBox(self._titles.get(section, label_text(section)), self)
        box.setObjectName(camel(section, "group"))
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        for name, f, value in fields:
            editor = self._editor(section, name, f, value)
            label = QLabel(label_text(name), box)
            label.setToolTip(f.metadata.get("help", ""))
            label.setBuddy(editor)
            form.addRow(label, editor)
            self._rows[f"{section}.{name}"] = (form, editor)
        return box

    def _editor(self, section: str, name: str, f: dataclasses.Field, value: Any) -> QWidget:
        meta, typ, path = f.metadata, configmod.field_type(section, name), f"{section}.{name}"
        if "choices" in meta:
            w = QComboBox(self)
            w.addItems([str(c) for c in meta["choices"]])
            w.currentTextChanged.connect(lambda t, p=path, c=meta["choices"]: self._write(p, _choice(c, t)))
            kind = "Combo"
        elif typ is bool:
            w = QCheckBox(self)
            w.toggled.connect(lambda on, p=path: self._write(p, on))
            kind = "Check"
        elif typ is int:
            w = QSpinBox(self)
            # a spin box holds 32-bit values; a wider setting (seeds below 2**32) is typed within that
            low, high = int(meta.get("min", -_INT_LIMIT)), int(meta.get("max", _INT_LIMIT))
            w.setRange(max(low, -_INT_LIMIT), min(high, _INT_LIMIT))
            w.setKeyboardTracking(False)
            w.valueChanged.connect(lambda v, p=path: self._write(p, v))
            kind = "Spin"
        else:
            w = QLineEdit(self)
            w.editingFinished.connect(lambda p=path, e=w, t=typ: self._write_text(p, e, t))
            kind = "Edit"
        w.setObjectName(camel(section, name, kind.lower()))
        w.setAccessibleName(f"{self._titles.get(section, section)}: {label_text(name)}")
        w.setProperty("help", meta.get("help", ""))
        w.setToolTip(meta.get("help", ""))
        self.editors[path] = w
        return w

    def editor(self, path: str) -> QWidget:
        """The editor of a dotted field such as ``train.learning_rate``."""
        return self.editors[path]

    def set_row_visible(self, path: str, visible: bool) -> None:
        form, editor = self._rows[path]
        form.setRowVisible(editor, visible)

    def set_note(self, section: str, text: str) -> None:
        """A line at the top of a section's box (e.g. why it has nothing to set); empty hides it."""
        box = self.findChild(QGroupBox, camel(section, "group"))
        note = box.findChild(QLabel, camel(section, "note"))
        if note is None:
            note = QLabel(box)
            note.setObjectName(camel(section, "note"))
            note.setWordWrap(True)
            note.setProperty("role", "muted")
            box.layout().insertRow(0, note)
        note.setText(text)
        box.layout().setRowVisible(note, bool(text))

    def visible_rows(self, section: str) -> list[str]:
        """The dotted fields of ``section`` whose rows are shown."""
        return [path for path, (form, editor) in self._rows.items()
                if path.startswith(section + ".") and form.isRowVisible(editor)]

    def _write_text(self, path: str, edit: QLineEdit, typ: type) -> None:
        try:
            value = parse_text(edit.text(), typ, path)
        except ValueError as exc:
            self._parse_errors[path] = str(exc)
            self.show_problems(self._state.problems())
            return
        self._parse_errors.pop(path, None)
        self._write(path, value)

    def _write(self, path: str, value: Any) -> None:
        if self._refreshing:
            return
        section, name = path.split(".")
        self._state.set_field(section, name, value)
        self.show_problems(self._state.problems())
        self.edited.emit(section, name)

    def refresh(self) -> None:
        """Show the state's current values (without writing them back)."""
        self._refreshing = True
        try:
            cfg = self._state.config
            for path, w in self.editors.items():
                section, name = path.split(".")
                if path not in self._parse_errors:
                    _set_value(w, getattr(getattr(cfg, section), name))
        finally:
            self._refreshing = False
        self.show_problems(self._state.problems())

    def show_problems(self, problems: list[tuple[str, str]]) -> None:
        """Mark the editors named in ``problems`` (plus unparsable text) red; clear the rest."""
        reasons = dict(self._parse_errors)
        for path, reason in problems:
            reasons.setdefault(path, reason)
        for path, w in self.editors.items():
            mark_invalid(w, reasons.get(path, ""))

    def problems(self) -> list[tuple[str, str]]:
        """Text the person typed that could not be read, as (field, reason)."""
        return sorted(self._parse_errors.items())


def _choice(choices, text: str):
    """Combo text back to the choice's own type (choices may be ints)."""
    for c in choices:
        if str(c) == text:
            return c
    return text


def _set_value(w: QWidget, value: Any) -> None:
    if isinstance(w, QComboBox):
        w.setCurrentText(str(value))
    elif isinstance(w, QCheckBox):
        w.setChecked(bool(value))
    elif isinstance(w, QSpinBox):
        w.setValue(int(value))
    elif isinstance(w, QLineEdit) and not w.hasFocus():
        w.setText(to_text(value))
