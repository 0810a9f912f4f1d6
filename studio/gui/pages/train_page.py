"""The Train page: launch the configured run, watch it live, stop it, resume it from a checkpoint."""

from __future__ import annotations

import logging

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QSpinBox, QWidget

from studio.core.errors import StudioError
from studio.core.launch import cpu_processes
from studio.gui.run_view import RunView, checkpoint_labels
from studio.gui.run_controller import default_run_name
from studio.gui.runner import RunOutcome, RunProcess, RunsController
from studio.gui.widgets.common import button, named, page_layout, role_label

log = logging.getLogger("studio.gui.train")


class TrainPage(QWidget):
    """Train / Stop / Resume buttons above a live :class:`RunView` of the current run.

    The page shows whichever run the controller started or reattached last; it owns no run
    data: the run is the controller's, the config is the state's.
    """

    def __init__(self, state, runs_controller: RunsController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.controller = runs_controller
        self.view = RunView(empty_text="No run yet. Press Train to start one with the settings of the Model, "
                                       "Data and Method pages: its loss, learning rate, log and sample answers "
                                       "appear here as it trains.")
        self._build()
        self.controller.run_started.connect(self.watch)
        self.state.config_changed.connect(self._show_name)
        self.state.config_changed.connect(self._update_buttons)
        self.state.preflight_changed.connect(self._update_buttons)
        self._show_name()
        self.view.checkpoints_changed.connect(self._fill_checkpoints)
        self.view.outcome_changed.connect(self._on_outcome)
        self._update_buttons()
        live = self.controller.live_runs()
        if live:  # a run reattached before this page was built (the window builds it after first paint)
            self.watch(live[-1])

    def _build(self) -> None:
        box = page_layout(self, "Train", "Start a run with the settings from the previous pages and watch it "
                                         "live. Runs keep training if you close the window.")
        self.run_label = named(role_label("", "muted"), "runNameLabel", "Current run")
        self.run_label.hide()
        self.name_edit = named(QLineEdit(), "runNameEdit", "Name of the next run")
        self.name_edit.setMinimumWidth(220)
        self.name_edit.setToolTip("How the run is listed on the Runs page; its folder is this name and the "
                                  "start time. Leave empty for a name made of the model, method and objective.")
        self.name_edit.editingFinished.connect(self._take_name)
        self.train_button = button("Train", "trainButton", "Start training",
                                   "Start a run with the current model, data and method settings.", primary=True)
        self.stop_button = button("Stop", "stopButton", "Stop training",
                                  "Save a checkpoint and stop; the run can be resumed later.")
        self.checkpoint_combo = named(QComboBox(), "checkpointCombo", "Checkpoint to resume from")
        self.checkpoint_combo.setMinimumWidth(150)  # at 1024 px wide, 200 cut the Resume button's text
        self.checkpoint_combo.setPlaceholderText("No checkpoint yet")
        self._chosen_checkpoint: str | None = None  # picked by the person (activated), kept while listed
        self.checkpoint_combo.activated.connect(
            lambda index: setattr(self, "_chosen_checkpoint", self.checkpoint_combo.itemData(index)))
        self.resume_button = button("Resume from checkpoint", "resumeButton", "Resume from checkpoint",
                                    "Continue this run from the chosen checkpoint, in the same run folder.")
        self.blocked_label = named(role_label("", "blocked"), "trainBlockedLabel", "Why Train is off")
        self.blocked_label.setWordWrap(True)
        self.blocked_label.hide()
        self.processes_spin = named(QSpinBox(), "processesSpin", "Training processes")
        self.processes_spin.setRange(1, 64)
        self.processes_spin.setToolTip("Training processes: one per GPU (with train.device cpu, CPU processes). "
                                       "More than one launches the run with accelerate "
                                       "(DDP, FSDP or DeepSpeed as set under distributed).")
        self.train_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.resume_button.clicked.connect(self.resume)
        self.name_edit.setMaximumWidth(420)
        name_row = QHBoxLayout()
        name_row.addWidget(QLabel("Name of the run:"))
        name_row.addWidget(self.name_edit, 1)
        name_row.addStretch(1)
        box.addLayout(name_row)
        bar = QHBoxLayout()
        for widget in (self.train_button, self.stop_button):
            bar.addWidget(widget)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Processes:"))
        bar.addWidget(self.processes_spin)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Checkpoint:"))
        bar.addWidget(self.checkpoint_combo)
        bar.addWidget(self.resume_button)
        bar.addStretch(1)
        box.addLayout(bar)
        box.addWidget(self.blocked_label)
        box.addWidget(self.run_label)
        box.addWidget(self.view, 1)

    # -- actions ------------------------------------------------------------------------------

    def _take_name(self) -> None:
        self.state.set_name(self.name_edit.text())
        self.name_edit.setModified(False)
        self._show_name()

    def _show_name(self) -> None:
        """The config's name in the field, unless the person is typing one."""
        cfg = self.state.config
        if not self.name_edit.isModified() and self.name_edit.text() != cfg.name:
            self.name_edit.setText(cfg.name)
        self.name_edit.setPlaceholderText(f"{default_run_name(cfg)} (automatic)")

    def start(self) -> RunProcess | None:
        """Launch a run with the state's config; problems are shown on the page, not raised."""
        self._take_name()  # typed but not yet confirmed with Enter
        if self.state.preflight_errors():
            return None  # the button is off and says why (a shortcut can still get here)
        problems = self.state.problems()
        if problems:
            lines = "\n".join(f"• {path}: {reason}" for path, reason in problems)
            self.view.banner.show_error(f"These settings need fixing before training:\n{lines}",
                                        "Change them on the Model, Data or Method page.")
            return None
        try:
            if not self.state.preflight_known():  # pressed before preflight answered for these settings
                _check_before_a_run_folder(self.state.config)
            proc = self.controller.start_run(self.state.config, processes=self.processes_spin.value(),
                                             cpu=cpu_processes(self.state.config))
        except StudioError as exc:
            self.view.banner.show_error(exc)
            return None
        except OSError as exc:
            self.view.banner.show_error(f"Could not start the training process: {exc}",
                                        "Check that the Studio data folder is writable and has free space.")
            return None
        self.state.run_started.emit(proc.run_dir)
        return proc

    def stop(self) -> None:
        proc = self.view.proc
        if proc is not None and proc.stop():
            self.stop_button.setEnabled(False)
            self.view.progress_bar.setFormat(f"Stopping: saving a checkpoint… · {self.view.progress.text()}")

    def resume(self) -> None:
        proc = self.view.proc
        checkpoint = self.checkpoint_combo.currentData()
        if proc is None or not checkpoint:
            return
        try:
            self.controller.resume(proc.run_dir, checkpoint)
        except StudioError as exc:  # e.g. config.yaml edited in a way the checkpoint cannot continue with
            self.view.banner.show_error(exc)
        except (OSError, RuntimeError) as exc:
            self.view.banner.show_error(f"Could not resume: {exc}", "Wait until the run has stopped, then try again.")

    # -- reacting -------------------------------------------------------------------------------

    def watch(self, proc: RunProcess) -> None:
        """Show ``proc`` (a run the controller just launched, resumed or reattached)."""
        self._chosen_checkpoint = None
        self.view.watch(proc)
        self.run_label.setText(f"Run folder: {proc.run_dir}")
        self.run_label.show()
        self._fill_checkpoints(self.view.checkpoints())
        self._update_buttons()

    def _on_outcome(self, outcome: RunOutcome) -> None:
        self._update_buttons()

    def _fill_checkpoints(self, checkpoints: list[str]) -> None:
        """Newest first and selected, unless the person picked another one of this run."""
        chosen = self._chosen_checkpoint
        self.checkpoint_combo.clear()
        for label, path in checkpoint_labels(checkpoints):
            self.checkpoint_combo.addItem(label, path)
        index = self.checkpoint_combo.findData(chosen) if chosen else -1
        self.checkpoint_combo.setCurrentIndex(max(index, 0) if checkpoints else -1)
        self._update_buttons()

    def _update_buttons(self) -> None:
        proc = self.view.proc
        live = proc is not None and proc.is_running()
        blocked = self.state.preflight_errors()
        reason = "\n".join(f"• {lint['message']}. What to do: {lint['hint']}." for lint in blocked)
        self.blocked_label.setText(f"Train is off until the Method page's preflight errors are fixed:\n{reason}")
        self.blocked_label.setVisible(bool(blocked))
        self.train_button.setEnabled(not live and not blocked)
        self.train_button.setToolTip(self.blocked_label.text() if blocked else
                                     "Start a run with the current model, data and method settings.")
        self.stop_button.setEnabled(live)
        has_checkpoint = self.checkpoint_combo.count() > 0
        self.resume_button.setEnabled(not live and has_checkpoint)
        self.checkpoint_combo.setEnabled(not live and has_checkpoint)



def _check_before_a_run_folder(cfg) -> None:
    """What ``studio train`` checks before it makes a run folder: the objective against the data, the
    device against this machine. Raises StudioError naming the problem."""
    from studio.core.data_fit import check_config
    from studio.core.machine import device_problem, this_machine

    check_config(cfg)
    problem = device_problem(cfg.train.device, this_machine())
    if problem:
        raise StudioError(*problem)
