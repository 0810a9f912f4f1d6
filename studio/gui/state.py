"""The window's shared model: the run configuration being edited and the run being watched."""

from __future__ import annotations

import copy

from PySide6.QtCore import QObject, Signal

from studio.core import config as configmod
from studio.core.config import RunConfig


class StudioState(QObject):
    """What every page looks at: the config being edited and the selected run.

    Pages take the state in their constructor, read it, write it through the setters and
    react to its signals; no page owns the data.

    Signals:
        config_changed(): any field of the config changed (pages re-read what they show).
        run_selected(str): the run folder the person is looking at changed.
        run_started(str): a new run was launched in this folder.
        preflight_changed(): a preflight report arrived (see :meth:`preflight_errors`).
    """

    config_changed = Signal()
    run_selected = Signal(str)
    run_started = Signal(str)
    preflight_changed = Signal()

    def __init__(self, cfg: RunConfig | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._config = cfg or RunConfig()
        self.current_run: str = ""
        self._preflight: tuple[RunConfig, dict] | None = None

    @property
    def config(self) -> RunConfig:
        """A copy of the current config (edit through set_config / set_field)."""
        return copy.deepcopy(self._config)

    def set_config(self, cfg: RunConfig) -> None:
        self._config = copy.deepcopy(cfg)
        self.config_changed.emit()

    def set_field(self, section: str, name: str, value) -> None:
        """Set one leaf field (e.g. ``("train", "learning_rate", 1e-4)``) and notify pages."""
        if getattr(getattr(self._config, section), name) == value:
            return
        setattr(getattr(self._config, section), name, value)
        self.config_changed.emit()

    def set_name(self, name: str) -> None:
        """Name the next run (empty: derived from the model, method and objective)."""
        name = name.strip()
        if self._config.name != name:
            self._config.name = name
            self.config_changed.emit()

    def problems(self) -> list[tuple[str, str]]:
        """Every (dotted field, reason) wrong with the current config."""
        return configmod.validate(self._config)

    def select_run(self, run_dir: str) -> None:
        self.current_run = run_dir
        self.run_selected.emit(run_dir)

    def set_preflight(self, cfg: RunConfig, report: dict) -> None:
        """The preflight report (``PreflightReport.to_dict()``) for ``cfg``."""
        self._preflight = (copy.deepcopy(cfg), report)
        self.preflight_changed.emit()

    def preflight_known(self) -> bool:
        """Whether a preflight report for exactly the current config has arrived."""
        return self._preflight is not None and self._preflight[0] == self._config

    def preflight_errors(self) -> list[dict]:
        """Preflight's errors (lints with severity ``error``) for the current config.

        Empty while no report for exactly this config has arrived: a report about other settings
        says nothing about these.
        """
        if not self.preflight_known():
            return []
        return [lint for lint in self._preflight[1].get("lints", []) if lint.get("severity") == "error"]
