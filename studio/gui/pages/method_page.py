"""The Method page: objective, method and every training setting, checked before the run.

The settings form is generated from the config dataclasses (help text as tooltips); fields
that do not matter for the chosen method or objective are hidden. Invalid fields turn red
with the reason as tooltip and are listed under Problems. A preflight panel (memory
estimate against the memory present, and pitfall lints from :mod:`studio.core.preflight`)
updates shortly after each change, in a background thread.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QScrollArea, QSplitter, QVBoxLayout, QWidget)

from studio.core import config as configmod
from studio.core.errors import StudioError
from studio.core.memory import trainable_text
from studio.core.runs import studio_home
from studio.gui.pages import method_support as support
from studio.gui.setting_links import reveal, setting_in
from studio.gui.state import StudioState
from studio.gui.tasks import TaskRunner
from studio.gui.widgets.banner import ErrorBanner
from studio.gui.widgets.busy import BusyIndicator
from studio.gui.widgets.common import button, named, page_layout, role_label
from studio.gui.widgets.config_form import ConfigForm

FORM_SECTIONS = ["method", "train", "eval", "output", "distributed"]
PREFLIGHT_DELAY_MS = 400
NO_PRESET = "(no preset)"


def _preflight(cfg, device: str) -> tuple[dict, support.MemoryBudget]:
    """Background: the preflight report as a dict and the memory it is compared with."""
    from studio.core import preflight

    return preflight.report(cfg, max_rows=500).to_dict(), support.memory_budget(device)


class MethodPage(QWidget):
    """Objective and method pickers, presets, the settings form, problems and preflight.

    Signals:
        setting_requested(str): a problem or pitfall naming a setting that lives on another
            page (``data.max_length``) was clicked; the window goes there.
    """

    setting_requested = Signal(str)

    def __init__(self, state: StudioState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        self.preset_path: Path | None = support.presets().get("demo")
        self.last_command = ""
        self.preflight: dict | None = None
        self._tasks = TaskRunner(self)
        layout = page_layout(self, "Method", "How the model learns: the objective, the fine-tuning method and "
                             "the training settings. Hover a setting to see what it does.")
        self.banner = ErrorBanner("methodBanner", self)
        layout.addWidget(self.banner)
        layout.addLayout(self._top_row())
        self.method_words = named(role_label("", "muted", self), "methodDescriptionLabel", "About the choice")
        layout.addWidget(self.method_words)
        split = QSplitter(self)
        split.addWidget(self._form_area())
        split.addWidget(self._side_panel())
        split.setSizes([640, 420])
        layout.addWidget(split, 1)
        self._timer = QTimer(self, singleShot=True, interval=PREFLIGHT_DELAY_MS)
        self._timer.timeout.connect(self.run_preflight)
        self._tasks.busy_changed.connect(lambda b: self.busy.set_busy(b, "Checking…"))
        state.config_changed.connect(self._on_config)
        self._on_config()

    # --- building ---------------------------------------------------------------------------

    def _top_row(self) -> QHBoxLayout:
        self.objective = self._choice_combo("objectiveCombo", "Objective", configmod.OBJECTIVES, "train", "objective")
        self.method = self._choice_combo("methodCombo", "Method", configmod.METHODS, "method", "name")
        self.preset = named(QComboBox(self), "presetCombo", "Preset", "Start from a shipped configuration")
        self.preset.addItem(NO_PRESET)
        for name, path in support.presets().items():
            self.preset.addItem(name, str(path))
        self.preset.setCurrentText(self.preset_path.stem if self.preset_path else NO_PRESET)
        self.preset.activated.connect(self._preset_chosen)
        load = button("Load…", "loadConfigButton", "Load a config file", "Open a config YAML file")
        save = button("Save…", "saveConfigButton", "Save the config", "Save these settings as a YAML file")
        copy = button("Copy as command", "copyCommandButton", "Copy the training command",
                      "Put the exact `studio train` command for these settings on the clipboard")
        load.clicked.connect(self._load_dialog)
        save.clicked.connect(self._save_dialog)
        copy.clicked.connect(self.copy_command)
        row = QHBoxLayout()
        for label, widget in (("Objective", self.objective), ("Method", self.method), ("Preset", self.preset)):
            row.addWidget(QLabel(label))
            row.addWidget(widget)
        row.addStretch(1)
        for b in (load, save, copy):
            row.addWidget(b)
        return row

    def _choice_combo(self, object_name: str, label: str, choices, section: str, field: str) -> QComboBox:
        combo = named(QComboBox(self), object_name, label)
        for choice in choices:
            combo.addItem(choice)
        combo.currentTextChanged.connect(lambda text: self.state.set_field(section, field, text))
        return combo

    def _form_area(self) -> QScrollArea:
        self.form = ConfigForm(self.state, FORM_SECTIONS, exclude={"train.objective", "method.name"}, parent=self)
        area = named(QScrollArea(self), "settingsArea", "Settings")
        area.setWidget(self.form)
        area.setWidgetResizable(True)
        return area

    def _side_panel(self) -> QWidget:
        panel = QWidget(self)
        col = QVBoxLayout(panel)
        col.setContentsMargins(8, 0, 0, 0)
        problems = QGroupBox("Problems", panel)
        box = QVBoxLayout(problems)
        self.problem_list = named(QListWidget(problems), "problemList", "Problems with the settings")
        self.problem_list.setWordWrap(True)
        box.addWidget(self.problem_list)
        col.addWidget(problems, 1)
        col.addWidget(self._preflight_box(panel), 3)
        return panel

    def _preflight_box(self, parent) -> QGroupBox:
        box = named(QGroupBox("Preflight", parent), "preflightPanel", "Preflight")
        form = QFormLayout(box)
        self.busy = BusyIndicator("preflightBusy", box)
        self.memory = named(role_label("—", "value", box), "memoryEstimateLabel", "Memory estimate")
        self.memory.setWordWrap(True)
        self.lint_list = named(QListWidget(box), "lintList", "Pitfalls found")
        self.lint_list.setWordWrap(True)
        self.lint_list.setSpacing(4)
        for listing in (self.problem_list, self.lint_list):
            listing.itemActivated.connect(self._focus_problem)
            listing.itemClicked.connect(self._focus_problem)
        form.addRow(self.busy)
        form.addRow("Memory", self.memory)
        form.addRow(QLabel("Pitfalls"))
        form.addRow(self.lint_list)
        return box

    # --- state -> view ----------------------------------------------------------------------

    def _on_config(self) -> None:
        cfg = self.state.config
        for combo, value in ((self.objective, cfg.train.objective), (self.method, cfg.method.name)):
            combo.blockSignals(True)
            combo.setCurrentText(value)
            combo.blockSignals(False)
        self.method_words.setText(f"{support.OBJECTIVE_WORDS.get(cfg.train.objective, '')}\n"
                                  f"{support.METHOD_WORDS.get(cfg.method.name, '')}")
        for path in self.form.editors:
            self.form.set_row_visible(path, support.is_relevant(path, cfg))
        nothing = not self.form.visible_rows("method")
        self.form.set_note("method", "Nothing to set here: full fine-tuning trains every weight of the model. "
                                     "The training settings are below." if nothing else "")
        self.show_problems()
        # Until the new answer arrives the last one is about other settings: shown greyed.
        self.memory.setEnabled(False)
        self.lint_list.setEnabled(False)
        self._timer.start()

    def show_problems(self) -> None:
        """List every invalid field (from config.validate and unreadable text in the form)."""
        self.problem_list.clear()
        problems = self.form.problems() + self.state.problems()
        for path, reason in problems:
            item = QListWidgetItem(f"{path}: {reason}")
            _link(item, path)
            self.problem_list.addItem(item)
        if not problems:
            self.problem_list.addItem("No problems: these settings can be trained.")

    def _focus_problem(self, item: QListWidgetItem) -> None:
        """Go to the setting a clicked problem or pitfall names: here, or on its own page."""
        path = item.data(Qt.UserRole) or ""
        editor = self.form.editors.get(path)
        if editor is not None and editor.isVisibleTo(self.form):
            reveal(editor)
        elif path:
            self.setting_requested.emit(path)

    # --- preflight --------------------------------------------------------------------------

    def run_preflight(self) -> None:
        """Check the current settings in the background (memory estimate and pitfalls)."""
        cfg = self.state.config
        self._tasks.submit("preflight", lambda: _preflight(cfg, cfg.train.device),
                           lambda result: self._show_preflight(result, cfg), self._preflight_failed)

    def _show_preflight(self, result, cfg=None) -> None:
        report, budget = result
        self.preflight = report
        self.memory.setEnabled(True)
        self.lint_list.setEnabled(True)
        if cfg is not None:
            self.state.set_preflight(cfg, report)
        self.memory.setText(_memory_text(report.get("estimate"), budget))
        self.lint_list.clear()
        for lint in report.get("lints", []):
            error = lint["severity"] == "error"
            item = QListWidgetItem(f"{'Must fix' if error else 'Check'}: {lint['message']}\n"
                                   f"What to do: {lint['hint']}")
            item.setForeground(QColor("#b91c1c" if error else "#92400e"))
            item.setToolTip(f"{lint['severity']} ({lint['code']})")
            _link(item, setting_in(f"{lint['message']} {lint['hint']}"))
            self.lint_list.addItem(item)
        if not report.get("lints"):
            self.lint_list.addItem(f"No pitfalls found in {report.get('rows_checked', 0)} rows checked.")

    def _preflight_failed(self, exc: BaseException) -> None:
        self.memory.setEnabled(True)
        self.lint_list.setEnabled(True)
        self.memory.setText("—")
        self.lint_list.clear()
        text = "Preflight is not available in this build." if isinstance(exc, ImportError) else \
            f"Preflight could not run: {getattr(exc, 'message', exc)}"
        self.lint_list.addItem(text)

    # --- presets, files, command ------------------------------------------------------------

    def _preset_chosen(self, index: int) -> None:
        path = self.preset.itemData(index)
        self.preset_path = Path(path) if path else None
        if path:
            self._apply(lambda: support.load_preset(Path(path)))

    def load_config(self, path: str | Path) -> bool:
        """Load a config YAML into the window; the problem is shown on the banner if it fails."""
        self.preset_path = None
        self.preset.setCurrentText(NO_PRESET)
        return self._apply(lambda: support.resolve_config_paths(configmod.load(path)))

    def _apply(self, build) -> bool:
        try:
            cfg = build()
        except StudioError as exc:
            self.banner.show_error(exc)
            return False
        self.banner.clear()
        self.state.set_config(cfg)
        return True

    def save_config(self, path: str | Path) -> None:
        try:
            configmod.save(self.state.config, path)
        except OSError as exc:
            self.banner.show_error(f"could not save the config to {path}: {exc.strerror}",
                                   "choose a folder you can write to")
        else:
            self.banner.show_info(f"Saved to {path}.")

    def copy_command(self) -> str:
        """Put the exact `studio train` command for the current settings on the clipboard.

        Only settings that can be trained are copied: otherwise the banner lists what to fix.
        """
        problems = self.form.problems() + self.state.problems()
        if problems:
            lines = "\n".join(f"• {path}: {reason}" for path, reason in problems)
            self.banner.show_error(f"These settings cannot be trained, so there is no command to copy:\n{lines}",
                                   "fix them (they are listed under Problems), then copy again")
            return ""
        try:
            self.last_command = support.train_command(self.state.config, self.preset_path,
                                                      studio_home() / "configs")
        except StudioError as exc:
            self.banner.show_error(exc)
            return ""
        QGuiApplication.clipboard().setText(self.last_command)
        self.banner.show_info(f"Copied: {self.last_command}")
        return self.last_command

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a config", "", "Config (*.yaml *.yml)")
        if path:
            self.load_config(path)

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the config", "config.yaml", "Config (*.yaml *.yml)")
        if path:
            self.save_config(path)


def _link(item: QListWidgetItem, path: str | None) -> None:
    """Make a listed problem lead to the setting it names."""
    if path:
        item.setData(Qt.UserRole, path)
        tip = item.toolTip()
        item.setToolTip(f"{tip}\nClick to go to {path}." if tip else f"Click to go to {path}.")


def _memory_text(estimate: dict | None, budget: support.MemoryBudget) -> str:
    if not estimate:
        return f"No estimate (the model could not be read). Available: {budget.text()}."
    total = estimate["total"]
    verdict = "fits" if total <= budget.total_bytes * 0.9 else "does NOT fit"
    return (f"About {total / 2**30:.2f} GiB per device; {verdict} in {budget.text()}. "
            f"{trainable_text(estimate['params_trainable'], estimate['params_total'])}.")
