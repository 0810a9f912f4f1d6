"""From a problem's text to the control that changes the setting it names.

Problems and pitfalls name settings the way the YAML file does (``train.learning_rate``,
``data.max_length``). Clicking one in the window goes to the page holding that setting's
control, scrolls it into view and gives it the keyboard focus.
"""

from __future__ import annotations

import re

from PySide6.QtWidgets import QAbstractScrollArea, QScrollArea, QWidget

from studio.core import config as configmod
from studio.gui.widgets.config_form import camel

#: Settings with a hand-made control: dotted field -> (page, objectName). Generated editors
#: (``trainLearningRateSpin``...) are found by their name and need no entry here.
CONTROLS = {
    "model.path": ("Model", "modelPathEdit"),
    "model.trust_remote_code": ("Model", "trustRemoteCodeCheck"),
    "model.template": ("Inspect", "templateCombo"),
    "data.train": ("Data", "dataPathEdit"),
    "data.format": ("Data", "formatCombo"),
    "data.columns": ("Data", "formatCombo"),
    "data.eval_fraction": ("Data", "evalFractionSpin"),
    "data.eval": ("Data", "evalFileEdit"),
    "data.loss": ("Inspect", "lossCombo"),
    "data.max_length": ("Inspect", "maxLengthSpin"),
    "data.truncation_side": ("Inspect", "truncationSideCombo"),
    "data.padding": ("Inspect", "paddingCombo"),
    "data.pad_to_multiple_of": ("Inspect", "multipleOfSpin"),
    "data.padding_side": ("Inspect", "paddingSideCombo"),
    "train.objective": ("Method", "objectiveCombo"),
    "method.name": ("Method", "methodCombo"),
}
GENERATED_KINDS = ("Edit", "Spin", "Combo", "Check")


def known_settings() -> list[str]:
    """Every dotted field of the run config, longest first (so ``data.eval_fraction`` wins over ``data.eval``)."""
    paths = [f"{section}.{name}" for section, name, _, _ in configmod.field_info(configmod.RunConfig())]
    return sorted(paths, key=len, reverse=True)


def setting_in(text: str) -> str | None:
    """The first setting a problem's text names, or None."""
    found = [(m.start(), path) for path in known_settings()
             for m in [re.search(rf"(?<![\w.]){re.escape(path)}(?![\w])", text)] if m]
    return min(found)[1] if found else None


def find_control(pages: dict[str, QWidget], path: str) -> tuple[str, QWidget] | None:
    """(page label, control) that edits ``path``; None when no page shows it."""
    if path in CONTROLS:
        label, name = CONTROLS[path]
        widget = pages.get(label) and pages[label].findChild(QWidget, name)
        if widget is not None:
            return label, widget
    names = {camel(*path.split(".")) + kind for kind in GENERATED_KINDS}
    for label, page in pages.items():
        for widget in page.findChildren(QWidget):
            if widget.objectName() in names:
                return label, widget
    return None


def reveal(widget: QWidget) -> None:
    """Scroll every scroll area holding ``widget`` so it shows, and give it the focus."""
    parent = widget.parentWidget()
    while parent is not None:
        area = parent.parentWidget()
        if isinstance(area, QScrollArea) and not isinstance(widget, QAbstractScrollArea):
            area.ensureWidgetVisible(widget, 40, 40)
        parent = area
    widget.setFocus()
