"""Everything about one run as it trains or after it ended: status, progress with ETA, curves,
log, sample generations, warnings, and a failed run's error, hint and worker.log tail.

The Train page shows the run it launched in a :class:`RunView`; the Runs page shows the run
opened from the registry in another. A view takes a :class:`~studio.gui.runner.RunProcess` and
reacts to its signals; it never owns the run.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPlainTextEdit,
                               QProgressBar, QSplitter, QTabWidget, QVBoxLayout, QWidget)

from studio.core.memory import trainable_text
from studio.gui.plots import REDRAW_MS, MetricsPanel, prefixed
from studio.gui.run_files import read_span
from studio.gui.runner import CATCH_UP_MS, MAX_READ, RunOutcome, RunProcess
from studio.gui.widgets.banner import ErrorBanner

MAX_LOG_LINES = 5000
STATUS_TEXT = {"running": "Training", "completed": "Completed", "stopped": "Stopped (checkpoint saved)",
               "failed": "Failed", "": "No run yet"}
STATUS_COLOURS = {"running": "#1d4ed8", "completed": "#15803d", "stopped": "#92400e", "failed": "#b91c1c"}
WARNING_TITLES = {"overfitting": "Overfitting", "forgetting": "Forgetting", "no_pad_token": "Padding",
                  "bad_rows": "Bad rows", "no_loss_tokens": "No loss tokens", "too_long": "Too long",
                  "early_stop": "Stopped early", "template": "Chat template",
                  "learning_rate": "Learning rate"}


def format_duration(seconds: float) -> str:
    """``3725`` -> ``1:02:05``; ``65`` -> ``1:05``."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Step progress and time left, from event timestamps (so a replayed log reads the same)."""

    def __init__(self) -> None:
        self.max_steps = 0
        self.step = 0
        self._t0: float | None = None
        self._t_last: float | None = None
        self._step0 = 0

    def started(self, event: dict) -> None:
        self.max_steps = int(event.get("max_steps") or 0)
        self._t0, self._step0 = event.get("time"), self.step

    def stepped(self, event: dict) -> None:
        self.step = int(event.get("step", self.step))
        self._t_last = event.get("time")

    def eta_seconds(self) -> float | None:
        done = self.step - self._step0
        if not (self._t0 and self._t_last and done > 0 and self.max_steps > self.step):
            return None
        return (self._t_last - self._t0) / done * (self.max_steps - self.step)

    def text(self, with_eta: bool = True) -> str:
        if not self.max_steps:
            return f"Step {self.step}"
        eta = self.eta_seconds() if with_eta else None
        left = f" · about {format_duration(eta)} left" if eta is not None else ""
        return f"Step {self.step} of {self.max_steps}{left}"


class RunView(QWidget):
    """Shows one followed run. ``prefix`` keeps object names unique when a window has two views.

    Signals:
        checkpoints_changed(list): the run's checkpoint folders (newest last) after a change.
        outcome_changed(object): the :class:`RunOutcome` when the run ends.
    """

    checkpoints_changed = Signal(list)
    outcome_changed = Signal(object)

    def __init__(self, prefix: str = "", parent: QWidget | None = None,
                 empty_text: str = "No run yet.") -> None:
        super().__init__(parent)
        self._prefix = prefix
        self._empty_text = empty_text
        self.proc: RunProcess | None = None
        self._connected = False
        self._replay: list | None = None
        self._replay_timer = QTimer(self)
        self._replay_timer.setObjectName("replayTimer")
        self._replay_timer.setSingleShot(True)
        self._replay_timer.setInterval(CATCH_UP_MS)
        self._replay_timer.timeout.connect(self._replay_slice)
        self.progress = Progress()
        self.status = ""
        self.samples: list[dict] = []
        self._pending_log: list[str] = []
        self._progress_dirty = False
        self._build()
        self._flush_timer = QTimer(self)
        self._flush_timer.setObjectName("logFlushTimer")
        self._flush_timer.setInterval(REDRAW_MS)
        self._flush_timer.timeout.connect(self._flush_log)
        self._flush_timer.start()

    def _name(self, widget: QWidget, name: str, accessible: str) -> QWidget:
        widget.setObjectName(prefixed(self._prefix, name))
        widget.setAccessibleName(accessible)
        return widget

    def _build(self) -> None:
        self.status_label = self._name(QLabel(STATUS_TEXT[""]), "runStatusLabel", "Run status")
        self.status_label.setProperty("status", "")
        self.summary_label = self._name(QLabel(""), "runSummaryLabel", "Run summary")
        self.summary_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.progress_bar = self._name(QProgressBar(), "runProgress", "Training progress")
        self.progress_bar.setFormat("No run yet")
        self.progress_bar.setTextVisible(True)
        self.banner = ErrorBanner(prefixed(self._prefix, "runErrorBanner"))
        self.banner.setAccessibleName("Run error")
        self.log_tail = self._name(QPlainTextEdit(), "logTailView", "Last lines of worker.log")
        self.log_tail.setReadOnly(True)
        self.log_tail.setMaximumHeight(96)
        self.log_tail.setLineWrapMode(QPlainTextEdit.WidgetWidth)
        self.tail_box = QWidget()
        tail_layout = QVBoxLayout(self.tail_box)
        tail_layout.setContentsMargins(0, 0, 0, 0)
        tail_layout.setSpacing(2)
        tail_layout.addWidget(QLabel("Last lines of worker.log (the run folder has the whole file):"))
        tail_layout.addWidget(self.log_tail)
        self.tail_box.hide()
        self.notices = self._name(QListWidget(), "noticeList", "Warnings about this run")
        self.notices.setMaximumHeight(84)
        self.notices.setWordWrap(True)
        self.notices.hide()
        self.panel = MetricsPanel(self._prefix)
        self.log_view = self._name(QPlainTextEdit(), "logView", "Run log")
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(MAX_LOG_LINES)
        self.log_view.setLineWrapMode(QPlainTextEdit.WidgetWidth)  # long paths and messages wrap
        self.sample_view = self._name(QPlainTextEdit(), "sampleView", "Sample generations")
        self.sample_view.setReadOnly(True)
        self.sample_view.setPlaceholderText("Sample answers appear here when the run generates them "
                                            "(eval.sample_every_steps, and always at the end).")
        self._layout()

    def _layout(self) -> None:
        top = QHBoxLayout()
        top.addWidget(self.status_label)
        top.addWidget(self.progress_bar, 1)
        tabs = self._name(QTabWidget(), "runDetailTabs", "Log and samples")
        tabs.addTab(self.log_view, "Log")
        tabs.addTab(self.sample_view, "Samples")
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.panel)
        split.addWidget(tabs)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        tabs.setMinimumWidth(280)
        split.setSizes([900, 340])
        # Until there is a run to show, one sentence says what will appear here, instead of
        # empty axes from 0 to 1.
        self.content = QWidget()
        box = QVBoxLayout(self.content)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(top)
        box.addWidget(self.summary_label)
        box.addWidget(self.tail_box)
        box.addWidget(self.notices)
        box.addWidget(split, 1)
        self.empty_label = self._name(QLabel(self._empty_text), "runEmptyLabel", "No run shown")
        self.empty_label.setAlignment(Qt.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setProperty("role", "muted")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.banner)  # also for errors before any run (settings to fix)
        outer.addWidget(self.content, 1)
        outer.addWidget(self.empty_label, 1)
        self._show_content(False)

    def _show_content(self, shown: bool) -> None:
        self.content.setVisible(shown)
        self.empty_label.setVisible(not shown)

    # -- following a run ----------------------------------------------------------------------

    def watch(self, proc: RunProcess | None) -> None:
        """Show ``proc``'s run from its first event on; ``None`` empties the view.

        What the process has already read is replayed from the log in slices (a long run's
        history does not freeze the window); live events arriving meanwhile wait their turn.
        """
        if self.proc is not None and self._connected:
            self.proc.events.disconnect(self._on_live_events)
            self.proc.finished.disconnect(self._on_live_finished)
        self._connected = False
        self._replay_timer.stop()
        self.clear()
        self.proc = proc
        self._show_content(proc is not None)
        if proc is None:
            return
        self._replay = [0, proc.offset, [], None]  # offset, end, queued live events, outcome
        if proc.is_running():
            proc.events.connect(self._on_live_events)
            proc.finished.connect(self._on_live_finished)
            self._connected = True
            self._set_status("running")
            # Until the worker's started event: it is loading libraries, the model and the data.
            self.status_label.setText("Starting")
            self.progress_bar.setFormat("Starting: loading the model and the data…")
        else:
            self._replay[3] = proc.outcome()
        self._replay_slice()

    def _replay_slice(self) -> None:
        offset, end, queued, outcome = self._replay
        events, self._replay[0] = read_span(self.proc.run_dir, offset, min(MAX_READ, end - offset))
        self.add_events(events)
        if events and self._replay[0] < end:
            self._replay_timer.start()
            return
        self._replay = None
        self.add_events(queued)
        if outcome is not None:
            self.show_outcome(outcome)

    def _on_live_events(self, events: list[dict]) -> None:
        if self._replay is not None:
            self._replay[2].extend(events)
        else:
            self.add_events(events)

    def _on_live_finished(self, outcome: RunOutcome) -> None:
        if self._replay is not None:
            self._replay[3] = outcome
        else:
            self.show_outcome(outcome)

    def clear(self) -> None:
        self.panel.clear()
        self.progress = Progress()
        self.samples.clear()
        self._pending_log.clear()
        self.log_view.clear()
        self.sample_view.clear()
        self.notices.clear()
        self.notices.hide()
        self.banner.clear()
        self.tail_box.hide()
        self.summary_label.clear()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("No run yet")
        self._set_status("")

    def add_events(self, events: list[dict]) -> None:
        """Take a slice of protocol events (curves are redrawn by a timer, not here)."""
        if events and not self.content.isVisibleTo(self):
            self._show_content(True)
        self.panel.add_events(events)
        for event in events:
            self._handle(event)

    def add_event(self, event: dict) -> None:
        self.add_events([event])

    def _handle(self, event: dict) -> None:
        handler = getattr(self, f"_on_{event.get('type')}", None)
        if handler is not None:
            handler(event)

    def _on_started(self, event: dict) -> None:
        self.progress.started(event)
        self._set_status("running")
        trainable, total = event.get("params_trainable", 0), event.get("params_total", 0)
        self.summary_label.setText(
            f"Device: {event.get('device', '?')} · {trainable_text(trainable, total)} · "
            f"{event.get('train_rows', 0):,} training rows, {event.get('eval_rows', 0):,} eval rows")
        self._update_progress()

    def _on_step(self, event: dict) -> None:
        self.progress.stepped(event)
        self._progress_dirty = True  # the bar is redrawn by the flush timer, not per step

    def _on_log(self, event: dict) -> None:
        self._pending_log.append(event.get("text", ""))

    def _on_checkpoint(self, event: dict) -> None:
        self._pending_log.append(f"Checkpoint saved at step {event.get('step')}: {event.get('path')}")
        self.checkpoints_changed.emit(self.checkpoints())

    def _on_eval(self, event: dict) -> None:
        metrics = " ".join(f"{k}={_fmt(v)}" for k, v in _flat_metrics(event.get("metrics") or {}))
        general = f" general-text loss {_fmt(event['general_loss'])}" if event.get("general_loss") is not None else ""
        ppl = f" perplexity {_fmt(event['perplexity'])}" if event.get("perplexity") is not None else ""
        self._pending_log.append(f"Eval at step {event.get('step')}: loss {_fmt(event.get('eval_loss'))}"
                                 f"{ppl}{general} {metrics}".rstrip())

    def _on_warning(self, event: dict) -> None:
        code = event.get("code", "")
        title = WARNING_TITLES.get(code, code.replace("_", " ").capitalize() or "Warning")
        hint = f" What to do: {event['hint']}" if event.get("hint") else ""
        item = QListWidgetItem(f"⚠ {title}: {event.get('message', '')}{hint}")
        item.setToolTip(event.get("message", "") + hint)
        self.notices.addItem(item)
        self.notices.show()
        self._fit_notices()
        self._pending_log.append(f"Warning ({code}): {event.get('message', '')}")

    def _fit_notices(self) -> None:
        """As tall as its rows (one notice is one line), at most about four rows."""
        rows = sum(self.notices.sizeHintForRow(i) for i in range(self.notices.count()))
        self.notices.setFixedHeight(min(rows + 2 * self.notices.frameWidth() + 4, 96))

    def _on_sample(self, event: dict) -> None:
        self.samples.append(event)
        self.sample_view.appendPlainText(f"── step {event.get('step')} ──\nPrompt: {event.get('prompt', '')}\n"
                                         f"Answer: {event.get('text', '')}\n")

    def _update_progress(self) -> None:
        self._progress_dirty = False
        total = max(self.progress.max_steps, self.progress.step, 1)
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(min(self.progress.step, total))
        self.progress_bar.setFormat(self.progress.text())

    def _flush_log(self) -> None:
        if self._progress_dirty:
            self._update_progress()
        if self._pending_log:
            lines, self._pending_log = self._pending_log[-MAX_LOG_LINES:], []
            self.log_view.appendPlainText("\n".join(lines))

    # -- the end ------------------------------------------------------------------------------

    def show_outcome(self, outcome: RunOutcome) -> None:
        """Show how the run ended: a failed run's error, hint and log tail go to the top."""
        self._flush_log()
        self.panel.timer.redraw()
        self._set_status(outcome.status)
        if outcome.status == "failed":
            self.banner.show_error(outcome.error or "The run failed.", outcome.hint)
            self.log_tail.setPlainText(outcome.log_tail or "(worker.log is empty)")
            self.tail_box.show()
        elif outcome.status == "stopped":
            self.banner.show_info("Stopped on request; the last checkpoint can be resumed.")
        if outcome.status != "running":
            # One word here: the status label beside the bar already says "(checkpoint saved)".
            self.progress_bar.setFormat(f"{outcome.status.capitalize()} · "
                                        f"{self.progress.text(with_eta=False)}")
        self.checkpoints_changed.emit(self.checkpoints())
        self.outcome_changed.emit(outcome)

    def _set_status(self, status: str) -> None:
        self.status = status
        self.status_label.setText(STATUS_TEXT.get(status, status.capitalize()))
        self.status_label.setProperty("status", status)
        colour = STATUS_COLOURS.get(status, "#333333")
        self.status_label.setStyleSheet(f"font-weight: 600; color: {colour};")

    def checkpoints(self) -> list[str]:
        return list_checkpoints(self.proc.run_dir) if self.proc else []


def list_checkpoints(run_dir: str | Path) -> list[str]:
    """Complete checkpoint folders of a run, oldest first (by the step number in their names).

    A checkpoint is complete once the worker has written its ``state.json`` (it writes into a
    hidden temporary folder and renames it, so a half-written one is never listed).
    """
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "state.json").exists()]
    return [str(p) for p in sorted(found, key=lambda p: (_step_of(p.name), p.name))]


def checkpoint_labels(checkpoints: list[str]) -> list[tuple[str, str]]:
    """(label, path) per checkpoint, newest first; the one at the best evaluation says so.

    The best evaluation's step is read from the newest checkpoint's ``state.json``.
    """
    best = None
    if checkpoints:
        try:
            state = json.loads((Path(checkpoints[-1]) / "state.json").read_text(encoding="utf-8"))
            best = state.get("best_eval_step")
        except (OSError, ValueError):
            pass
    return [(Path(path).name + (" · best eval" if best is not None and _step_of(Path(path).name) == best else ""),
             path) for path in reversed(checkpoints)]


def _step_of(name: str) -> int:
    digits = "".join(ch if ch.isdigit() else " " for ch in name).split()
    return int(digits[-1]) if digits else -1


def _flat_metrics(metrics: dict, prefix: str = "") -> list[tuple[str, object]]:
    """``{"qa": {"f1": 0.5}}`` -> ``[("qa.f1", 0.5)]`` (task metrics come nested per task)."""
    flat = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        flat += _flat_metrics(value, f"{name}.") if isinstance(value, dict) else [(name, value)]
    return flat


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)

