"""The Inspect page: the template and padding inspector.

It shows, for a chosen row, every token the model will see: roles coloured, special tokens
highlighted, the tokens that carry loss outlined in bold, padding greyed, the truncation point
marked red. A batch tab collates several rows as the trainer does (padding or packing, with the
attention mask and position ids), and a lengths tab shows the token-length histogram, the share
truncated and the padding cost of each strategy.

Everything is computed by core encoding (``Encoder``, ``collate``) in background threads, so the
preview is what the worker trains on; the controls write the same config fields the worker reads.
"""

from __future__ import annotations

import json
import threading

from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QScrollArea, QSpinBox, QTabWidget,
                               QVBoxLayout, QWidget)

from studio.core import config as configmod
from studio.core.errors import StudioError
from studio.gui.pages import inspect_work as work
from studio.gui.state import StudioState
from studio.gui.tasks import TaskRunner
from studio.gui.widgets.banner import ErrorBanner
from studio.gui.widgets.batch_view import BatchGridWidget
from studio.gui.widgets.busy import BusyIndicator
from studio.gui.widgets.common import button, named, page_layout, role_label
from studio.gui.widgets.length_histogram import LengthHistogramWidget
from studio.gui.widgets.token_view import LegendWidget, TokenChipsWidget



def _scroll(widget: QWidget, name: str) -> QScrollArea:
    area = QScrollArea()
    area.setObjectName(name)
    area.setWidget(widget)
    area.setWidgetResizable(True)
    return area


class InspectPage(QWidget):
    """Token chips for one row, a collated batch, and length statistics, from core encoding."""

    def __init__(self, state: StudioState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        self.sources: work.Sources | None = None
        self.row_result: work.RowResult | None = None
        self.batch = None
        self.stats = None
        self._sources_key = None
        self._view_key = None
        self._stats_cancel = threading.Event()  # set: the statistics being measured are no longer wanted
        self._stats_running = False
        self._tasks = TaskRunner(self)
        layout = page_layout(self, "Inspect", "Exactly what the model is trained on: the chat template, which "
                             "tokens carry loss, padding and truncation. Hover a token for its id and label.")
        self.banner = ErrorBanner("inspectBanner", self)
        layout.addWidget(self.banner)
        layout.addLayout(self._controls())
        layout.addWidget(LegendWidget(self))
        layout.addWidget(self._tabs(), 1)
        self._tasks.busy_changed.connect(lambda b: self.busy.set_busy(b, "Encoding…"))
        state.config_changed.connect(self._on_config)
        self._on_config()

    # --- building ---------------------------------------------------------------------------

    def _controls(self) -> QGridLayout:
        grid = QGridLayout()
        self.row_spin = named(QSpinBox(self), "rowSpin", "Row to inspect", "Which usable row of the dataset")
        self.row_spin.setRange(1, 1)
        self.row_spin.valueChanged.connect(lambda _: self.refresh_views())
        self.side_combo = named(QComboBox(self), "pairSideCombo", "Chosen or rejected",
                                "For preference rows: which of the two sequences to show")
        self.side_combo.addItems(["chosen", "rejected"])
        self.side_combo.currentTextChanged.connect(lambda _: self.refresh_row())
        self.template = self._combo("templateCombo", "Chat template", "model", "template", _choices("model", "template"))
        self.loss = self._combo("lossCombo", "Loss on", "data", "loss", configmod.LOSS_OPTIONS)
        self.max_length = self._spin("maxLengthSpin", "Max length", "data", "max_length", 8, 1_048_576)
        self.trunc_side = self._combo("truncationSideCombo", "Truncation side", "data", "truncation_side",
                                      ("right", "left"))
        self.padding = self._combo("paddingCombo", "Padding", "data", "padding", configmod.PADDING)
        self._padding_help = self.padding.toolTip()
        self._loss_help = self.loss.toolTip()
        self.multiple = self._spin("multipleOfSpin", "Pad to a multiple of", "data", "pad_to_multiple_of", 1, 4096)
        self.pad_side = self._combo("paddingSideCombo", "Padding side", "data", "padding_side", ("right", "left"))
        self.reasoning = self._combo("reasoningHistoryCombo", "Earlier reasoning", "data", "reasoning_history",
                                     _choices("data", "reasoning_history"))
        self.system_message = self._combo("systemMessageCombo", "System message", "data", "system_message",
                                          _choices("data", "system_message"))
        self.batch_size = self._spin("batchSizeSpin", "Batch size", "train", "batch_size", 1, 512)
        self.busy = BusyIndicator("inspectBusy", self, stoppable=True)
        self.busy.stop_requested.connect(self._stop)
        # The sequence choice comes last: it is hidden for data without preference pairs.
        cells = [("Row", self.row_spin), ("Template", self.template), ("Loss on", self.loss),
                 ("Max length", self.max_length), ("Cut from", self.trunc_side), ("Padding", self.padding),
                 ("Multiple of", self.multiple), ("Pad side", self.pad_side), ("Batch size", self.batch_size),
                 ("System message", self.system_message), ("Earlier reasoning", self.reasoning),
                 ("Sequence", self.side_combo)]
        self.labels = {}
        for i, (label, widget) in enumerate(cells):
            self.labels[widget] = QLabel(label)
            grid.addWidget(self.labels[widget], i // 5 * 2, i % 5)
            grid.addWidget(widget, i // 5 * 2 + 1, i % 5)
        grid.addWidget(self.busy, (len(cells) + 4) // 5 * 2, 0, 1, 5)
        return grid

    def _combo(self, name: str, accessible: str, section: str, field: str, choices) -> QComboBox:
        combo = named(QComboBox(self), name, accessible, _help(section, field))
        combo.addItems(list(choices))
        combo.currentTextChanged.connect(lambda text: self.state.set_field(section, field, text))
        return combo

    def _spin(self, name: str, accessible: str, section: str, field: str, lo: int, hi: int) -> QSpinBox:
        spin = named(QSpinBox(self), name, accessible, _help(section, field))
        spin.setRange(lo, hi)
        spin.setKeyboardTracking(False)
        spin.valueChanged.connect(lambda v: self.state.set_field(section, field, v))
        return spin

    def _tabs(self) -> QTabWidget:
        self.tabs = named(QTabWidget(self), "inspectTabs", "Row, batch and lengths")
        row_tab = QWidget(self)
        col = QVBoxLayout(row_tab)
        self.row_info = named(role_label("", "value", row_tab), "rowInfoLabel", "About this row")
        self.row_info.setWordWrap(True)
        self.token_view = TokenChipsWidget("tokenView", row_tab)
        col.addWidget(self.row_info)
        col.addWidget(_scroll(self.token_view, "tokenScroll"), 1)
        batch_tab = QWidget(self)
        col = QVBoxLayout(batch_tab)
        self.batch_info = named(role_label("", "value", batch_tab), "batchInfoLabel", "About this batch")
        self.batch_info.setWordWrap(True)
        self.batch_view = BatchGridWidget(batch_tab)
        col.addWidget(self.batch_info)
        col.addWidget(role_label("Each strip is one sequence fed to the model; under it the attention mask (dark: "
                                 "attended, light: masked) and the position ids. A red line marks where a packed "
                                 "row restarts its positions.", "muted", batch_tab))
        col.addWidget(_scroll(self.batch_view, "batchScroll"), 1)
        self.tabs.addTab(row_tab, "Row")
        self.tabs.addTab(batch_tab, "Batch")
        self.tabs.addTab(self._lengths_tab(), "Lengths")
        return self.tabs

    def _lengths_tab(self) -> QWidget:
        """The statistics, with the progress of measuring them and a button to stop (or start again)."""
        tab = QWidget(self)
        col = QVBoxLayout(tab)
        row = QHBoxLayout()
        self.stats_busy = BusyIndicator("statsBusy", tab)
        self.stats_note = named(role_label("", "muted", tab), "statsNoteLabel", "About the length statistics")
        self.stats_button = button("Cancel", "statsCancelButton", "Cancel measuring the lengths",
                                   "Stop measuring every row's length; the other tabs keep working")
        self.stats_button.clicked.connect(self._stats_button_clicked)
        self.stats_button.hide()
        row.addWidget(self.stats_busy, 1)
        row.addWidget(self.stats_note, 1)
        row.addWidget(self.stats_button)
        col.addLayout(row)
        self.lengths = LengthHistogramWidget(tab)
        col.addWidget(self.lengths, 1)
        return tab

    # --- state -> view ----------------------------------------------------------------------

    def _on_config(self) -> None:
        cfg = self.state.config
        self._show_settings(cfg)
        # The template and data.system_message decide which rows are usable (a refused system message).
        # Raw text: the documents held out for evaluation are in no training block.
        key = (cfg.model.path, cfg.data.train, cfg.data.format, json.dumps(cfg.data.columns, sort_keys=True),
               cfg.data.pad_token, cfg.model.template, cfg.data.system_message, cfg.data.text_split,
               cfg.data.eval_fraction, cfg.data.seed, cfg.data.eval)
        d = cfg.data
        view_key = (cfg.model.template, d.loss, d.max_length, d.truncation_side, d.padding, d.pad_to_multiple_of,
                    d.padding_side, cfg.train.batch_size, cfg.train.objective, d.reasoning_history)
        if key != self._sources_key:
            self._sources_key, self._view_key = key, view_key
            self.sources = None
            self._stats_cancel.set()  # the rows being measured are no longer the page's
            self._tasks.discard("stats")
            self._stats_idle("")
            self._tasks.submit("sources", lambda progress: work.load_sources(cfg, progress), self._sources_loaded,
                               self._sources_failed, self._progress)
        elif self.sources is not None and view_key != self._view_key:
            # Only settings the encoder or collator reads change what this page shows.
            self._view_key = view_key
            self.refresh_views()

    def _show_settings(self, cfg) -> None:
        values = {self.template: cfg.model.template, self.loss: cfg.data.loss, self.trunc_side: cfg.data.truncation_side,
                  self.system_message: cfg.data.system_message, self.reasoning: cfg.data.reasoning_history,
                  self.padding: cfg.data.padding, self.pad_side: cfg.data.padding_side,
                  self.max_length: cfg.data.max_length, self.multiple: cfg.data.pad_to_multiple_of,
                  self.batch_size: cfg.train.batch_size}
        for widget, value in values.items():
            widget.blockSignals(True)
            if isinstance(widget, QComboBox):
                widget.setCurrentText(str(value))
            else:
                widget.setValue(int(value))
            widget.blockSignals(False)
        # Other objectives than SFT are batched by TRL's collators (preference pairs: right padding
        # to the longest; GRPO's prompts: left padding for generation), and their loss is set by
        # the objective, so those controls do not apply.
        objective = cfg.train.objective
        side = work.trl_padding_side(objective)
        trl_batches = side is not None
        self.padding.setEnabled(not trl_batches)
        where = "on the left, for generation" if side == "left" else "on the right"
        self.padding.setToolTip(f"{objective.upper()} batches are padded by TRL: every sequence to the longest of "
                                f"its batch, {where}." if trl_batches else self._padding_help)
        self.loss.setEnabled(objective == "sft")
        self.loss.setToolTip(self._loss_help if objective == "sft" else
                             f"{objective.upper()} decides what is trained: "
                             + ("nothing of the data (it trains on its own sampled answers)." if objective == "grpo"
                                else "the answers after the prompt."))
        self.multiple.setEnabled(cfg.data.padding == "multiple" and not trl_batches)
        self.pad_side.setEnabled(cfg.data.padding != "packing" and not trl_batches)

    def _progress(self, done: int, total: int) -> None:
        share = f" {done / total:.0%}" if total else ""
        self.busy.progress(done, total, f"Reading and tokenizing the dataset…{share}")

    def _reading_done(self) -> None:
        """The data is read: other work may keep the bar busy, but Stop has nothing left to stop."""
        if self._tasks.busy:
            self.busy.start("Encoding…")

    def _stop(self) -> None:
        """Stop reading the data: nothing is shown until a setting that reads it again changes."""
        self._tasks.discard("sources")
        self._sources_key = None
        self._sources_failed(StudioError("reading the training data was stopped",
                                         "change a data or model setting to read it again"))

    def _sources_loaded(self, sources: work.Sources) -> None:
        self._reading_done()
        self.sources = sources
        count = len(sources.report.examples)
        self.row_spin.blockSignals(True)
        self.row_spin.setRange(1, max(count, 1))
        whole = sources.report.usable_rows
        self.row_spin.setSuffix(f" of {count}" if count == whole else f" of the first {count:,} (of {whole:,})")
        self.row_spin.blockSignals(False)
        # Only preference rows have two sequences to choose from.
        pairs = bool(count) and sources.report.examples[0].chosen is not None
        self.side_combo.setVisible(pairs)
        self.labels[self.side_combo].setVisible(pairs)
        self.refresh_views()

    def show_row(self, index: int) -> None:
        """Show a usable row (0-based index) on the Row tab."""
        self.tabs.setCurrentIndex(0)
        self.row_spin.setValue(index + 1)

    def refresh_views(self) -> None:
        """Re-encode the row, the batch and the statistics with the current settings."""
        if self.sources is None:
            return
        self.banner.clear()
        self.refresh_row()
        cfg, src, index = self.state.config, self.sources, self.row_spin.value() - 1
        self._tasks.submit("batch", lambda: work.encode_batch(src, cfg, index), self._batch_done, self._failed)
        self.measure_lengths()

    def measure_lengths(self) -> None:
        """Measure every row for the Lengths tab, in the background, with progress; an earlier
        measurement still running is stopped (its answer would be stale)."""
        if self.sources is None:
            return
        self._stats_cancel.set()
        cancel = self._stats_cancel = threading.Event()
        self._stats_running = True
        cfg, src = self.state.config, self.sources
        self.stats_busy.start("Measuring every row's length…")
        self.stats_note.setText("")
        self.stats_button.setText("Cancel")
        self.stats_button.setAccessibleName("Cancel measuring the lengths")
        self.stats_button.show()
        self._tasks.submit("stats", lambda progress: work.length_stats(src, cfg, progress, cancel.is_set),
                           self._stats_done, self._stats_failed, self._stats_progress)

    def _stats_progress(self, done: int, total: int) -> None:
        self.stats_busy.progress(done, total, f"Measuring lengths: {done:,} of {total:,} rows")

    def _stats_button_clicked(self) -> None:
        if not self._stats_running:
            self.measure_lengths()  # "Measure again" after a cancel
        else:
            self._stats_cancel.set()
            self.stats_button.setEnabled(False)  # until the measuring has stopped

    def refresh_row(self) -> None:
        if self.sources is None:
            return
        cfg, src, index, side = self.state.config, self.sources, self.row_spin.value() - 1, self.side_combo.currentText()
        self._tasks.submit("row", lambda: work.encode_row(src, cfg, index, side), self._row_done, self._failed)

    def _row_done(self, result: work.RowResult) -> None:
        self.row_result = result
        view = result.view
        self.token_view.set_tokens(view.chips, view.cut_after, view.cut_note)
        enc = view.encoded
        real = len(enc.input_ids)
        loss = sum(label != -100 for label in enc.labels)
        pads = sum(c.pad for c in view.chips)
        text = (f"File row {enc.row}: {real} tokens, {loss} carry loss, {pads} padding · template "
                f"{result.template} · pad token {self.sources.pad.token!r} (id {self.sources.pad.id})")
        if enc.truncated:
            text += f"\nTruncated: {enc.original_length} tokens cut to {real}; {enc.lost_loss_tokens} loss token(s) lost."
        elif view.cut_note:
            text += "\n" + view.cut_note  # a reward-model pair too long to train on
        if view.note:
            text += "\n" + view.note
        for note in result.template_notes:  # how this template is trained (TRL's variant, a merged system message)
            text += "\nTemplate: " + note
        self.row_info.setText(text)
        notes = result.encoder_warnings + view.warnings
        if notes:
            self.banner.show_warning(" ".join(dict.fromkeys(notes)))

    def _batch_done(self, batch) -> None:
        self.batch = batch
        self.batch_view.set_rows(batch.rows)
        self.batch_info.setText(batch.summary)

    def _stats_done(self, stats) -> None:
        self.stats = stats
        scan = self.sources.scan if self.sources is not None else None
        self._stats_idle("" if scan is None or scan.complete else
                         f"Lengths of the first {len(scan.examples):,} of {scan.documents:,} documents: the file is read "
                         "as a stream and only those are kept (the Row tab's block counts cover the whole file).")
        self.lengths.set_stats(stats, self.state.config.data.padding)

    def _stats_failed(self, exc: BaseException) -> None:
        from studio.core.measuring import Cancelled

        if isinstance(exc, Cancelled):
            self.stats = None
            self.lengths.clear()
            self._stats_idle("Measuring was cancelled, so there are no length statistics for these settings.",
                             "Measure again")
        else:
            self._stats_idle("")
            self._failed(exc)

    def _stats_idle(self, note: str, again: str = "") -> None:
        self._stats_running = False
        self.stats_busy.stop()
        self.stats_note.setText(note)
        self.stats_button.setEnabled(True)
        self.stats_button.setVisible(bool(again))
        if again:
            self.stats_button.setText(again)
            self.stats_button.setAccessibleName("Measure the lengths again")

    def _failed(self, exc: BaseException) -> None:
        self.banner.show_error(exc)

    def _sources_failed(self, exc: BaseException) -> None:
        self._reading_done()
        # Never leave the tokens of the previous model or file on screen: they would not be trained.
        self.row_result = self.batch = self.stats = None
        self.token_view.set_tokens([])
        self.batch_view.set_rows([])
        self.row_info.setText("Nothing to show until the model and the data can be read (see the message above).")
        self.batch_info.setText("")
        self._failed(exc)


def _help(section: str, field: str) -> str:
    return _meta(section, field).get("help", "")


def _choices(section: str, field: str) -> tuple:
    return tuple(_meta(section, field).get("choices", ()))


def _meta(section: str, field: str) -> dict:
    cfg = configmod.RunConfig()
    for sec, name, f, _ in configmod.field_info(cfg):
        if (sec, name) == (section, field):
            return dict(f.metadata)
    return {}
