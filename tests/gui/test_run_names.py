"""Two runs of the same preset get distinct names that say what differs, down to the comparison."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from studio.core import config as configmod
from studio.gui import tasks
from studio.gui.app import build_window
from studio.gui.run_controller import distinct_name
from studio.gui.runner import RunProcess

from real_runs import replaying_worker  # noqa: F401  (fixture; tests/gui helper module)

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


def _train_once(qtbot, window) -> RunProcess:
    train = window.show_page("Train")
    qtbot.waitUntil(train.train_button.isEnabled, timeout=60_000)  # after the Method page's preflight
    qtbot.mouseClick(train.train_button, Qt.LeftButton)
    proc = train.view.proc
    assert proc is not None, train.view.banner.text
    qtbot.waitUntil(lambda: any(e["type"] == "step" for e in proc.history()), timeout=30_000)
    qtbot.mouseClick(train.stop_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not proc.is_running(), timeout=30_000)
    return proc


def test_the_demo_trained_with_sft_then_grpo_gets_two_names_and_two_compare_columns(qtbot, replaying_worker):
    window = build_window()
    qtbot.addWidget(window)
    window.show()
    first = _train_once(qtbot, window)
    method = window.show_page("Method")
    method.objective.setCurrentText("grpo")  # an objective the demo's chat rows can train (preflight blocks dpo)
    second = _train_once(qtbot, window)
    third = _train_once(qtbot, window)  # the same settings once more
    registry = window.runs_controller.registry
    names = [registry.find(p.run_dir).name for p in (first, second, third)]
    assert names == ["demo-lora", "demo-lora (objective grpo)", "demo-lora #2"]
    assert configmod.load(Path(second.run_dir) / "config.yaml").name == names[1]  # the worker sees it too
    runs = window.show_page("Runs")
    runs.refresh()
    runs.select_runs([first.run_dir, second.run_dir])
    headers = [runs.compare.diff.horizontalHeaderItem(c).text() for c in range(runs.compare.diff.columnCount())]
    assert headers == ["Setting", "demo-lora (objective grpo)", "demo-lora"]
    tasks.wait_idle(30)


def test_a_name_lists_at_most_two_differences_objective_and_method_first(tmp_path):
    old = configmod.RunConfig(name="mine")
    configmod.save(old, tmp_path / "config.yaml")
    new = configmod.RunConfig(name="mine")
    new.train.learning_rate, new.method.name, new.train.objective, new.data.train = 0.5, "dora", "kto", "/d/x.jsonl"
    assert distinct_name(new, [("mine", str(tmp_path))]) == "mine (objective kto, method dora, +2 more)"
    assert distinct_name(new, [("other", str(tmp_path))]) == "mine"
