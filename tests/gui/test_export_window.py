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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from worker_runs import build_tiny_model, make_run_dir, train_in_process

    base = tmp_path_factory.mktemp("trained")
    model = build_tiny_model(base / "model")
    run_dir = make_run_dir(base, model, {"train.max_steps": 2, "train.batch_size": 2, "data.eval_fraction": 0.0,
                                         "eval.sample_prompts": [], "data.max_length": 96}, rows=8)
    assert train_in_process(run_dir) == "completed"
    return run_dir


@pytest.fixture
def trained_run(trained):
    """The trained run, in this test's own registry."""
    run_dir = trained
    registry = Registry()
    run_id = registry.add(run_dir, configmod.load(run_dir / "config.yaml"), "gguf-demo")
    registry.update(run_id, status="completed", started=time.time() - 60, ended=time.time())
    return run_dir.resolve()


def _export_bar(qtbot, run_dir):
    """The window `studio` opens, on the Runs page, with ``run_dir`` clicked in the table."""
    window = build_window()
    qtbot.addWidget(window)
    window.show()
    page = window.show_page("Runs")
    page.refresh()
    row = next(r for r, rec in enumerate(page.records) if Path(rec.run_dir) == run_dir)
    qtbot.mouseClick(page.table.viewport(), Qt.LeftButton, pos=page.table.visualRect(page.table.model().index(row, 1)).center())
    return page.export


def test_gguf_export_from_the_runs_page_shows_progress_and_the_verdict(qtbot, trained_run, tmp_path):
    bar = _export_bar(qtbot, trained_run)
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


def test_push_to_the_hub_from_the_runs_page(qtbot, trained_run, monkeypatch):
    import sys

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QDialogButtonBox

    from studio.gui.pages.run_push import PushDialog

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
    from hub_standin import HubStandIn

    token = "hf_typedINTOtheDIALOG42"
    monkeypatch.delenv("HF_TOKEN", raising=False)
    bar = _export_bar(qtbot, trained_run)
    qtbot.waitUntil(bar.push_button.isEnabled, timeout=10000)

    def answer():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, PushDialog):
            QTimer.singleShot(50, answer)
            return
        qtbot.keyClicks(dialog.repo, "alice/travel-lora")
        qtbot.keyClicks(dialog.token, token)
        qtbot.mouseClick(dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.Ok), Qt.LeftButton)

    with HubStandIn(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        QTimer.singleShot(100, answer)
        with qtbot.waitSignal(bar.proc.finished, timeout=120000):
            qtbot.mouseClick(bar.push_button, Qt.LeftButton)
    assert bar.result.text().startswith("Pushed ") and "alice/travel-lora/commit/0123abcd" in bar.result.text(), \
        bar.result.text()
    assert {"adapter_model.safetensors", "README.md"} <= set(hub.files)
    assert "HF_TOKEN" not in bar.proc.processEnvironment().keys(), "the token stays with the push process only"
    for path in trained_run.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".jsonl", ".log", ".json"):
            assert token not in path.read_text(encoding="utf-8", errors="replace")
