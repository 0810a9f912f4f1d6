"""Comparing runs: their loss curves overlaid and a table of the settings that differ."""

from __future__ import annotations

from pathlib import Path

import yaml
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from studio.gui.plots import OverlayPlot
from studio.gui.run_files import events_size, read_history
from studio.gui.widgets.common import named


def flatten(data: dict, prefix: str = "") -> dict[str, object]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``."""
    flat = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


def run_config(run_dir: str | Path) -> dict:
    """A run's config.yaml as a flat mapping (empty when it cannot be read)."""
    try:
        data = yaml.safe_load((Path(run_dir) / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return flatten(data) if isinstance(data, dict) else {}


def config_diff(configs: list[dict]) -> list[tuple[str, list[object]]]:
    """(setting, values per run) for every setting whose value is not the same in all runs."""
    keys = sorted(set().union(*configs)) if configs else []
    rows = []
    for key in keys:
        values = [cfg.get(key, "—") for cfg in configs]
        if any(v != values[0] for v in values[1:]):
            rows.append((key, values))
    return rows


class CompareView(QWidget):
    """Overlaid loss curves (train smoothed, eval dashed) and the config diff of selected runs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = OverlayPlot("Loss of the selected runs (train smoothed, eval dashed)", "loss")
        named(self.plot, "overlayPlot", "Loss curves of the selected runs")
        self.diff = named(QTableWidget(0, 1), "configDiffTable", "Settings that differ between the selected runs")
        self.diff.setEditTriggers(QTableWidget.NoEditTriggers)
        self.diff.verticalHeader().hide()
        self.diff.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.diff.horizontalHeader().setStretchLastSection(True)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.plot)
        split.addWidget(self.diff)
        split.setChildrenCollapsible(False)
        split.setSizes([640, 420])
        QVBoxLayout(self).addWidget(split)

    def show_runs(self, runs: list[tuple[str, str]]) -> None:
        """Show ``runs`` = [(label, run folder)]."""
        self.plot.set_runs([(label, read_history(run_dir, events_size(run_dir))) for label, run_dir in runs])
        rows = config_diff([run_config(run_dir) for _, run_dir in runs])
        self.diff.clear()
        self.diff.setColumnCount(1 + len(runs))
        self.diff.setHorizontalHeaderLabels(["Setting", *[label for label, _ in runs]])
        self.diff.setRowCount(max(len(rows), 1))
        if not rows:
            self.diff.setItem(0, 0, QTableWidgetItem("The selected runs have the same settings."))
        for r, (key, values) in enumerate(rows):
            self.diff.setItem(r, 0, QTableWidgetItem(key))
            for c, value in enumerate(values, start=1):
                self.diff.setItem(r, c, QTableWidgetItem(str(value)))
