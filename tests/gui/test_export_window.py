"""From the window `studio` opens: export a trained run as GGUF on the Runs page and see the check's verdict."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from studio.core import config as configmod
from studio.core.runs import Registry
from studio.gui import tasks
from studio.gui.app import build_window

from test_runs_page import answer_folder_dialog

pytestmark = [pytest.mark.integration, pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]


@pytest.fixture
def trained_run(tmp_path):
    from worker_runs import build_tiny_model, make_run_dir, train_in_process

    model = build_tiny_model(tmp_path / "model")
    run_dir = make_run_dir(tmp_path, model, {"train.max_steps": 2, "train.batch_size": 2, "data.eval_fraction": 0.0,
                                             "eval.sample_prompts": [], "data.max_length": 96}, rows=8)
    assert train_in_process(run_dir) == "completed"
    registry = Registry()
    run_id = registry.add(run_dir, configmod.load(run_dir / "config.yaml"), "gguf-demo")
    registry.update(run_id, status="completed", started=time.time() - 60, ended=time.time())
    return run_dir.resolve()


def test_gguf_export_from_the_runs_page_shows_progress_and_the_verdict(qtbot, trained_run, tmp_path):
    window = build_window()
    qtbot.addWidget(window)
    window.show()
    page = window.show_page("Runs")
    page.refresh()
    row = next(r for r, rec in enumerate(page.records) if Path(rec.run_dir) == trained_run)
    qtbot.mouseClick(page.table.viewport(), Qt.LeftButton, pos=page.table.visualRect(page.table.model().index(row, 1)).center())
    bar = page.export
    qtbot.waitUntil(bar.gguf_button.isEnabled, timeout=10000)
    bar.quant_combo.setCurrentText("q8_0")
    seen = []
    bar.progress.valueChanged.connect(seen.append)
    out = tmp_path / "exports" / "demo-q8"
    answer_folder_dialog(qtbot, out)
    with qtbot.waitSignal(bar.proc.finished, timeout=300000):
        qtbot.mouseClick(bar.gguf_button, Qt.LeftButton)
        qtbot.waitUntil(lambda: not bar.gguf_button.isEnabled(), timeout=5000)
    text = bar.result.text()
    assert "Check passed" in text and f"ollama create test -f {out / 'Modelfile'}" in text, text
    assert seen and max(seen) == 20 and not bar.progress.isVisible()
    assert json.loads((out / "gguf-check.json").read_text())["quant"] == "q8_0"
    tasks.wait_idle(30)
