"""The Runs page: every run in the registry; open one, compare several, resume, branch, export."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QSplitter,
                               QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

from studio.core.errors import StudioError
from studio.gui.pages.run_compare import CompareView
from studio.gui.pages.run_export import ExportBar
from studio.gui.run_view import RunView, checkpoint_labels, format_duration, list_checkpoints
from studio.gui.runner import RunsController
from studio.gui.widgets.banner import ErrorBanner
from studio.gui.widgets.common import button, named, page_layout

log = logging.getLogger("studio.gui.runs")
COLUMNS = ("Status", "Name", "Started", "Duration", "Method", "Objective", "Final eval loss", "Best eval loss")
NAME_COLUMN = COLUMNS.index("Name")
REFRESH_MS = 2000
STATUS_MARK = {"running": "● running", "completed": "✓ completed", "stopped": "■ stopped", "failed": "✗ failed",
               "created": "○ created"}


def row_values(rec) -> list[str]:
    """The table cells of one registry record."""
    start = rec.first_started or rec.started or rec.created
    seconds = rec.duration_s(time.time())
    duration = format_duration(seconds) if seconds is not None else ""
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(start)) if start else ""
    final = _loss(rec.final_eval_loss) if rec.status != "running" else ""  # not final while it trains
    return [STATUS_MARK.get(rec.status, rec.status), rec.name, started, duration, rec.method, rec.objective,
            final, _loss(rec.best_eval_loss)]


def _loss(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else ""


class RunsPage(QWidget):
    """The registry as a table; below it the opened run (curves, log, error) and a comparison."""

    def __init__(self, state, runs_controller: RunsController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.controller = runs_controller
        self.records: list = []
        self._build()
        self.controller.runs_changed.connect(self.refresh)
        self.controller.run_started.connect(lambda _proc: self.refresh())
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self.refresh()

    def _build(self) -> None:
        box = page_layout(self, "Runs", "Every run, live or finished. Select one to see its curves; select "
                                        "several (Ctrl or Shift) to compare their loss and settings.")
        self.banner = ErrorBanner("runsErrorBanner")
        box.addWidget(self.banner)
        self.table = named(QTableWidget(0, len(COLUMNS)), "runsTable", "Runs")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        # Only the Name cell is editable (double-click or F2): a run's name is the person's label.
        self.table.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.itemChanged.connect(self._on_item_changed)
        self.view = RunView(prefix="opened", empty_text="Select a run in the table to see its curves, log and "
                                                        "sample answers. Select several (Ctrl or Shift) to "
                                                        "compare them.")
        self.compare = CompareView()
        self.tabs = named(QTabWidget(), "runsTabs", "Opened run and comparison")
        self.tabs.addTab(self.view, "Opened run")
        self.tabs.addTab(self.compare, "Compare selected")
        self.table.setMinimumHeight(96)
        lower = QWidget()
        lower_box = QVBoxLayout(lower)
        lower_box.setContentsMargins(0, 6, 0, 0)
        lower_box.addLayout(self._actions())
        # The export bar has its own line: beside the run's buttons it left its own buttons a few
        # pixels each at 1024 px ("ort adapt").
        lower_box.addWidget(self.export)
        lower_box.addWidget(self.tabs, 1)
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.table)
        split.addWidget(lower)
        split.setChildrenCollapsible(False)
        split.setSizes([150, 600])
        box.addWidget(split, 1)

    def _actions(self) -> QHBoxLayout:
        self.checkpoint_combo = named(QComboBox(), "runsCheckpointCombo", "Checkpoint of the opened run")
        self.checkpoint_combo.setMinimumWidth(180)
        self.checkpoint_combo.setPlaceholderText("No checkpoint")
        self.resume_button = button("Resume", "runsResumeButton", "Resume the opened run",
                                    "Continue the opened run from the chosen checkpoint, in its own folder.")
        self.branch_button = button("Branch", "branchButton", "Branch a new run from the checkpoint",
                                    "Start a new run with the same settings from the chosen checkpoint.")
        self.stop_button = button("Stop", "runsStopButton", "Stop the opened run",
                                  "Save a checkpoint and stop the opened run.")
        self.export = ExportBar(self)
        self.view.checkpoints_changed.connect(self._fill_checkpoints)
        self.view.outcome_changed.connect(lambda _o: self._update_buttons())
        self.resume_button.clicked.connect(self.resume)
        self.branch_button.clicked.connect(self.branch)
        self.stop_button.clicked.connect(self.stop)
        row = QHBoxLayout()
        for w in (QLabel("Selected run's checkpoint:"), self.checkpoint_combo, self.resume_button, self.branch_button,
                  self.stop_button):
            row.addWidget(w)
        row.addStretch(1)
        self._update_buttons()
        return row

    # -- the table --------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the registry (runs whose worker died become failed) and redraw changed rows."""
        try:
            self.controller.registry.refresh_status()
            records = self.controller.registry.list()
        except StudioError as exc:
            self.banner.show_error(exc)
            return
        registry = self.controller.registry
        if getattr(registry, "notice", ""):  # the registry was damaged and rebuilt from the run folders
            self.banner.show_warning(registry.notice)
            registry.notice = ""
        if [(r.id, r.name, r.status, r.ended, r.final_eval_loss, r.step) for r in records] == \
                [(r.id, r.name, r.status, r.ended, r.final_eval_loss, r.step) for r in self.records] and not \
                any(r.status == "running" for r in records):
            return
        selected = set(self.selected_dirs())
        self.records = records
        self.table.blockSignals(True)
        self.table.setRowCount(len(records))
        for row, rec in enumerate(records):
            for col, text in enumerate(row_values(rec)):
                item = QTableWidgetItem(text)
                item.setToolTip(rec.error if rec.status == "failed" and rec.error else rec.run_dir)
                if col == NAME_COLUMN:
                    item.setToolTip(f"{rec.run_dir}\nDouble-click to rename.")
                else:
                    item.setFlags(item.flags() & ~Qt.ItemIsEditable)
                self.table.setItem(row, col, item)
            if rec.run_dir in selected:
                self._add_selected(row)
        self.table.blockSignals(False)

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        """A renamed run: store the new name (an empty one puts the old name back)."""
        if item.column() != NAME_COLUMN or item.row() >= len(self.records):
            return
        rec = self.records[item.row()]
        name = item.text().strip()
        if not name or name == rec.name:
            self.table.blockSignals(True)
            item.setText(rec.name)
            self.table.blockSignals(False)
            return
        try:
            self.controller.registry.update(rec.id, name=name)
        except StudioError as exc:
            self.banner.show_error(exc)
            return
        rec.name = name
        if len(self.selected_dirs()) > 1:
            self._on_selection()  # the comparison's legend names the runs

    def _add_selected(self, row: int) -> None:
        model = self.table.selectionModel()
        index = self.table.model().index(row, 0)
        model.select(index, model.SelectionFlag.Select | model.SelectionFlag.Rows)

    def selected_dirs(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.records[r].run_dir for r in rows if r < len(self.records)]

    def select_runs(self, run_dirs: list[str]) -> None:
        """Select rows by run folder (as a person would with Ctrl+click)."""
        self.table.clearSelection()
        for row, rec in enumerate(self.records):
            if rec.run_dir in run_dirs:
                self._add_selected(row)

    def _on_selection(self) -> None:
        dirs = self.selected_dirs()
        if len(dirs) == 1:
            self.open_run(dirs[0])
        if len(dirs) > 1:
            self.compare.show_runs([(self._name(d), d) for d in dirs])
            self.tabs.setCurrentWidget(self.compare)
        self.export.set_run(dirs[0] if len(dirs) == 1 else None)
        self._update_buttons()

    def _name(self, run_dir: str) -> str:
        rec = next((r for r in self.records if r.run_dir == run_dir), None)
        return rec.name if rec else Path(run_dir).name

    # -- the opened run ---------------------------------------------------------------------------

    def open_run(self, run_dir: str) -> None:
        """Show one run's curves and outcome (following it live if it is training)."""
        self.view.watch(self.controller.open_run(run_dir))
        self.tabs.setCurrentWidget(self.view)
        self.state.select_run(run_dir)
        self._fill_checkpoints(list_checkpoints(run_dir))

    def _fill_checkpoints(self, checkpoints: list[str]) -> None:
        self.checkpoint_combo.clear()
        for label, path in checkpoint_labels(checkpoints):  # newest first: the usual choice
            self.checkpoint_combo.addItem(label, path)
        self.checkpoint_combo.setCurrentIndex(0 if checkpoints else -1)  # a placeholder leaves it at -1
        self._update_buttons()

    def _update_buttons(self) -> None:
        proc = self.view.proc
        live = proc is not None and proc.is_running() and proc.is_alive()
        single = len(self.selected_dirs()) <= 1  # with several selected, which run to resume is unclear
        has_ckpt = self.checkpoint_combo.count() > 0 and proc is not None and single
        self.resume_button.setEnabled(has_ckpt and not live)
        self.branch_button.setEnabled(has_ckpt)
        self.stop_button.setEnabled(live)

    def resume(self) -> None:
        self._launch(lambda run_dir, ckpt: self.controller.resume(run_dir, ckpt))

    def branch(self) -> None:
        self._launch(lambda run_dir, ckpt: self.controller.branch(run_dir, ckpt))

    def _launch(self, action) -> None:
        proc, ckpt = self.view.proc, self.checkpoint_combo.currentData()
        if proc is None or not ckpt:
            return
        try:
            new = action(proc.run_dir, ckpt)
        except StudioError as exc:  # e.g. config.yaml edited in a way the checkpoint cannot continue with
            self.banner.show_error(exc)
            return
        except (OSError, RuntimeError) as exc:
            self.banner.show_error(f"Could not start: {exc}", "Stop the run first, or pick another checkpoint.")
            return
        self.refresh()
        self.view.watch(new)
        self._update_buttons()

    def stop(self) -> None:
        if self.view.proc is not None and self.view.proc.stop():
            self.stop_button.setEnabled(False)
