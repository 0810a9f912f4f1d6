"""The Data page: pick the training file, check how it was read, fix the column mapping.

The file is read in a background thread by :func:`studio.gui.pages.data_work.load` (the same
readers the worker uses; a raw-text corpus is read as a stream, its counts shown with progress and
its first documents listed, so a file larger than memory never is loaded whole). The page shows the detected format, lets the person correct it
with a format combo and one combo per field, lists bad rows with their reasons (select one
to see the raw row), shows the usable rows in a table, and sets how evaluation rows are
chosen (a held-out fraction or an eval file).
"""

from __future__ import annotations

import json

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView,
                               QLabel, QListWidget, QListWidgetItem, QPlainTextEdit, QSplitter, QTableView,
                               QTabWidget, QVBoxLayout, QWidget)

from studio.core import data as datamod
from studio.core.data_files import read_table
from studio.gui.pages import data_work
from studio.gui.state import StudioState
from studio.gui.tasks import TaskRunner
from studio.gui.widgets.banner import ErrorBanner
from studio.gui.widgets.busy import BusyIndicator
from studio.gui.widgets.common import button, named, page_layout, role_label
from studio.gui.widgets.config_form import ConfigForm, camel, mark_invalid
from studio.gui.widgets.examples_model import ExamplesTableModel
from studio.gui.widgets.path_picker import PathPicker

#: data fields edited here that have no control of their own (the Inspect page has the encoding ones)
MORE_FIELDS = {"data.pad_token", "data.skip_bad_rows", "data.seed", "data.general_eval", "data.text_split", "data.text_attention",
               "data.max_skipped"}
DATA_FILTER = "Datasets (*.jsonl *.json *.csv *.tsv *.parquet *.txt);;All files (*)"
NONE = "(none)"


class DataPage(QWidget):
    """Training data: file, format and column mapping, validation report, rows, eval split.

    Signals:
        inspect_requested(int): the person double-clicked a row (index into the usable rows)
            to see its tokens on the Inspect page.
    """

    inspect_requested = Signal(int)

    def __init__(self, state: StudioState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        self.report: datamod.DataReport | None = None
        self._bad: list = []
        self._loaded_key: tuple | None = None
        self._tasks = TaskRunner(self)
        layout = page_layout(self, "Data", "The conversations the model learns from. Studio reads JSONL, JSON, "
                             "CSV, Parquet, .txt and saved dataset folders in the OpenAI messages, ShareGPT, Alpaca, "
                             "prompt/completion and preference-pair shapes, with tool calls, desirability labels "
                             "(KTO) and per-turn loss switches, and raw text for continued pre-training "
                             "(docs/data.md).")
        self.banner = ErrorBanner("dataBanner", self)
        layout.addWidget(self.banner)
        layout.addLayout(self._file_row())
        layout.addLayout(self._settings_row())
        self.summary = named(role_label("", "value", self), "dataSummaryLabel", "Validation summary")
        layout.addWidget(self.summary)
        layout.addWidget(self._tabs(), 1)
        self._tasks.busy_changed.connect(lambda b: self.busy.set_busy(b, "Reading the dataset…"))
        state.config_changed.connect(self._on_config)
        self._on_config()

    # --- building ---------------------------------------------------------------------------

    def _file_row(self) -> QHBoxLayout:
        self.picker = PathPicker("dataPathEdit", "Training data file", file_filter=DATA_FILTER,
                                 placeholder="a .jsonl, .json, .csv, .parquet or .txt file, or a saved dataset folder",
                                 folder_too="A dataset saved with the datasets library's save_to_disk "
                                            "(a Dataset or a DatasetDict; its train split is used)", parent=self)
        self.picker.chosen.connect(self._file_chosen)
        self.format_combo = named(QComboBox(self), "formatCombo", "Dataset format",
                                  "How rows are read; 'auto' detects it from the columns")
        self.format_combo.addItem("auto (detect)", "auto")
        for name, label, shape in datamod.describe_formats():
            self.format_combo.addItem(label, name)
            self.format_combo.setItemData(self.format_combo.count() - 1, shape, Qt.ToolTipRole)
        self.format_combo.currentIndexChanged.connect(self._format_chosen)
        self.detected = named(role_label("", "muted", self), "detectedFormatLabel", "Detected format")
        self.busy = BusyIndicator("dataBusy", self, stoppable=True)
        self.busy.stop_requested.connect(self._stop)
        self.read_again = button("Read again", "dataReadAgainButton", "Read the training file again",
                                 "Reading was stopped: read the file again")
        self.read_again.clicked.connect(self.reload)
        self.read_again.hide()
        row = QHBoxLayout()
        row.addWidget(QLabel("Training file"))
        row.addWidget(self.picker, 3)
        row.addWidget(QLabel("Format"))
        row.addWidget(self.format_combo, 1)
        row.addWidget(self.busy)
        row.addWidget(self.read_again)
        return row

    def _settings_row(self) -> QHBoxLayout:
        mapping = QGroupBox("Columns used", self)
        outer = QVBoxLayout(mapping)
        outer.addWidget(self.detected)
        self.mapping_form = QFormLayout()
        outer.addLayout(self.mapping_form)
        self.column_combos: dict[str, QComboBox] = {}
        split_box = QGroupBox("Evaluation rows", self)
        form = QFormLayout(split_box)
        self.fraction = named(QDoubleSpinBox(self), "evalFractionSpin", "Evaluation fraction",
                              "Share of training rows held out for evaluation when no eval file is given")
        self.fraction.setRange(0.0, 0.5)
        self.fraction.setSingleStep(0.05)
        self.fraction.setDecimals(2)
        self.fraction.valueChanged.connect(lambda v: self._set("eval_fraction", round(v, 4)))
        self.eval_picker = PathPicker("evalFileEdit", "Evaluation file", file_filter=DATA_FILTER,
                                      placeholder="optional: a separate eval file", parent=self)
        self.eval_picker.chosen.connect(lambda p: self._set("eval", p))
        self.split_label = named(role_label("", "muted", self), "splitSummaryLabel", "Split summary")
        form.addRow("Hold out", self.fraction)
        form.addRow("or eval file", self.eval_picker)
        form.addRow(self.split_label)
        more = ConfigForm(self.state, ["data"], only=MORE_FIELDS, titles={"data": "More data settings"}, parent=self)
        more.editor("data.pad_token").setPlaceholderText("automatic (see the Model page)")
        more.editor("data.general_eval").setPlaceholderText("optional: text to watch for forgetting")
        row = QHBoxLayout()
        row.addWidget(mapping, 1)
        row.addWidget(split_box, 1)
        row.addWidget(more, 1)
        return row

    def _tabs(self) -> QTabWidget:
        self.tabs = named(QTabWidget(self), "dataTabs", "Rows and bad rows")
        self.rows_model = ExamplesTableModel(self)
        self.table = named(QTableView(self), "rowsTable", "Usable rows")
        self.table.setModel(self.rows_model)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QTableView.SelectRows)
        self.table.verticalHeader().hide()
        self.table.setToolTip("Double-click a row to see its tokens on the Inspect page")
        self.table.doubleClicked.connect(lambda index: self.inspect_requested.emit(index.row()))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(True)
        for col, width in enumerate((60, 90, 50, 180, 320)):
            self.table.setColumnWidth(col, width)
        self.tabs.addTab(self.table, "Rows")
        self.tabs.addTab(self._bad_rows_view(), "Bad rows")
        return self.tabs

    def _bad_rows_view(self) -> QSplitter:
        self.bad_list = named(QListWidget(self), "badRowsList", "Bad rows")
        self.bad_detail = named(QPlainTextEdit(self), "badRowDetail", "Selected bad row")
        self.bad_detail.setReadOnly(True)
        self.bad_detail.setPlaceholderText("Select a bad row to see what was read and why it cannot be used.")
        self.bad_list.currentRowChanged.connect(self._show_bad_row)
        split = QSplitter(Qt.Horizontal, self)
        split.addWidget(self.bad_list)
        split.addWidget(self.bad_detail)
        split.setSizes([400, 600])
        return split

    # --- state -> view ----------------------------------------------------------------------

    def _set(self, name: str, value) -> None:
        self.state.set_field("data", name, value)

    def _file_chosen(self, path: str) -> None:
        """Another training file starts from detection: a format and mapping belong to the file they were made for."""
        cfg = self.state.config
        if path == cfg.data.train:
            return
        cfg.data.train, cfg.data.format, cfg.data.columns = path, "auto", {}
        self.state.set_config(cfg)

    def _on_config(self) -> None:
        d = self.state.config.data
        self.picker.set_path(d.train)
        self.eval_picker.set_path(d.eval)
        self.fraction.blockSignals(True)
        self.fraction.setValue(d.eval_fraction)
        self.fraction.blockSignals(False)
        self.fraction.setEnabled(not d.eval)
        index = self.format_combo.findData(d.format)
        self.format_combo.blockSignals(True)
        self.format_combo.setCurrentIndex(max(index, 0))
        self.format_combo.blockSignals(False)
        key = (d.train, d.format, json.dumps(d.columns, sort_keys=True), d.eval_fraction, d.seed, d.eval,
               d.text_split)
        if key != self._loaded_key:
            self._loaded_key = key
            self.reload()

    def reload(self) -> None:
        """Read the configured file again in the background."""
        d = self.state.config.data
        self.read_again.hide()
        if not d.train:
            self.banner.show_warning("No training file chosen.", "Pick a file with Browse…")
            return
        self._tasks.submit("load", lambda progress: data_work.load(d, progress), self._loaded, self._failed,
                           self._progress)

    def _progress(self, done: int, total: int) -> None:
        share = f" {done / total:.0%}" if total else ""
        self.busy.progress(done, total, f"Reading the dataset…{share}")

    def _stop(self) -> None:
        """Stop reading: the pass under way ends at its next chunk, and nothing of it is shown."""
        self._tasks.discard("load")
        self.report = None
        self.rows_model.set_examples([])
        self.summary.setText("Reading stopped: nothing is shown until the file is read again (Read again).")
        self.read_again.show()

    def _loaded(self, loaded: data_work.Loaded) -> None:
        self.banner.clear()
        mark_invalid(self.picker.edit, "")
        report = self.report = loaded.report
        self.rows_model.set_examples(report.examples)
        self.summary.setText(f"{report.total_rows:,} rows read, {report.usable_rows:,} usable, "
                             f"{report.bad_total:,} bad" + "".join(f" · {n}" for n in report.notes))
        label = datamod.FORMATS[report.format].label
        self.detected.setText(f"Read as {label} ({datamod.FORMATS[report.format].shape}).")
        self._fill_mapping(report)
        self._fill_bad_rows(report.bad_rows)
        self.split_label.setText(f"{loaded.train:,} rows to train on, {loaded.eval:,} to evaluate on"
                                 + (" (from the eval file)" if loaded.eval_file else " (held out)"))
        shown = len(report.examples)
        self.tabs.setTabText(0, f"Rows ({report.usable_rows:,}" + (f", first {shown:,} shown)" if shown <
                                                                     report.usable_rows else ")"))
        listed = f", first {len(report.bad_rows)} listed" if len(report.bad_rows) < report.bad_total else ""
        self.tabs.setTabText(1, f"Bad rows ({report.bad_total:,}{listed})")
        if report.bad_rows:
            self.banner.show_warning(f"{report.bad_total:,} row(s) cannot be used and will be skipped.",
                                     "open the Bad rows tab to see each row and why")

    def _failed(self, exc: BaseException) -> None:
        self.report = None
        self.rows_model.set_examples([])
        bad = list(getattr(exc, "bad_rows", None) or [])
        self._fill_bad_rows(bad)
        self.summary.setText("No usable rows.")
        self.split_label.setText("")
        self.tabs.setTabText(0, "Rows (0)")
        self.tabs.setTabText(1, f"Bad rows ({len(bad)})" if bad else "Bad rows")
        self.banner.show_error(exc)
        mark_invalid(self.picker.edit, getattr(exc, "message", str(exc)))
        # Offer the file's columns anyway: a wrong guess is fixed by mapping them.
        path = self.state.config.data.train
        self._tasks.submit("columns", lambda: read_table(path).columns, self._offer_columns, lambda e: None)

    def _offer_columns(self, columns: list[str]) -> None:
        chosen = self.state.config.data.format
        fmt = chosen if chosen in datamod.FORMATS else "messages"
        mapping = {f: c for f, c in self.state.config.data.columns.items()}
        self.detected.setText("The format could not be read from the columns: choose a format above, then "
                              "say which column holds each field." if chosen == "auto" else
                              f"Say which column holds each field of the {datamod.FORMATS[fmt].label} format.")
        self._fill_mapping_for(fmt, columns, mapping)

    def _fill_bad_rows(self, bad_rows) -> None:
        self._bad = list(bad_rows)
        self.bad_list.clear()
        for b in self._bad:
            item = QListWidgetItem(f"Row {b.row}: {b.reason}")
            item.setToolTip(b.reason)
            self.bad_list.addItem(item)
        self.bad_detail.clear()

    def _show_bad_row(self, index: int) -> None:
        if not 0 <= index < len(self._bad):
            self.bad_detail.clear()
            return
        b = self._bad[index]
        raw = b.raw if isinstance(b.raw, str) else json.dumps(b.raw, indent=2, ensure_ascii=False, default=str)
        self.bad_detail.setPlainText(f"Row {b.row}\nWhy it cannot be used: {b.reason}\n\nAs read:\n{raw}")

    # --- column mapping ---------------------------------------------------------------------

    def _fill_mapping(self, report: datamod.DataReport) -> None:
        self._fill_mapping_for(report.format, report.columns, report.mapping)

    def _fill_mapping_for(self, fmt: str, columns: list[str], mapping: dict) -> None:
        """One combo per field of ``fmt``, listing the file's ``columns``."""
        while self.mapping_form.rowCount():
            self.mapping_form.removeRow(0)
        self.column_combos = {}
        spec = datamod.FORMATS[fmt]
        for field in spec.required + spec.optional:
            combo = named(QComboBox(self), camel("column", field, "combo"), f"Column for {field}",
                          f"Which column of the file holds '{field}'"
                          + ("" if field in spec.required else " (optional)"))
            if field not in spec.required:
                combo.addItem(NONE)
            combo.addItems(columns)
            chosen = mapping.get(field, NONE if field not in spec.required else "")
            combo.setCurrentIndex(combo.findText(chosen))  # -1 (empty) when the file has no such column
            if field in mapping and chosen not in columns:
                combo.setPlaceholderText(f"{chosen} (not in this file)")
            combo.currentTextChanged.connect(lambda text, f=field: self._column_chosen(f, text))
            self.column_combos[field] = combo
            self.mapping_form.addRow(field + ("" if field in spec.required else " (optional)"), combo)

    def _column_chosen(self, field: str, column: str) -> None:
        columns = dict(self.state.config.data.columns)
        if column in (NONE, field):
            columns.pop(field, None)
        else:
            columns[field] = column
        self._set("columns", columns)

    def _format_chosen(self, index: int) -> None:
        # A mapping made for one format rarely fits another: start the new format from detection.
        self.state.set_field("data", "columns", {})
        self._set("format", self.format_combo.itemData(index))
