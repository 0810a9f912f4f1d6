"""The Train page: recorded worker streams replayed by a real child process, and real runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from studio.core import config as configmod
from studio.gui.pages.train_page import TrainPage
from studio.gui.runner import RunProcess, RunsController
from studio.gui.state import StudioState

ROOT = Path(__file__).resolve().parents[2]
STREAMS = ROOT / "tests" / "fixtures" / "streams"
FAKE = str(ROOT / "tests" / "fixtures" / "fake_worker.py")
# The offscreen platform says this when any top-level window is shown; it is not about our code.
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.fixture
def page(qtbot):
    state = StudioState()
    widget = TrainPage(state, RunsController())
    qtbot.addWidget(widget)
    widget.resize(1280, 800)
    widget.show()
    return widget


def replay(qtbot, page, run_dir: Path, stream: str, *extra: str) -> RunProcess:
    """Follow a child that writes ``stream`` into ``run_dir`` in 23-byte pieces, as the page would."""
    proc = RunProcess(run_dir)
    page.watch(proc)
    proc.launch([FAKE, str(run_dir), str(STREAMS / f"{stream}.jsonl"), "--chunk", "23", *extra])
    return proc


def test_replayed_completed_run_fills_plots_progress_samples_and_notices(qtbot, page, tmp_path):
    proc = replay(qtbot, page, tmp_path, "completed")
    assert not page.train_button.isEnabled() and page.stop_button.isEnabled()
    with qtbot.waitSignal(proc.finished, timeout=15000):
        pass
    view = page.view
    assert view.panel.loss.point_count("train") == 40
    assert view.panel.loss.point_count("eval") == 4
    assert view.panel.loss.point_count("general text (forgetting)") == 4
    assert view.panel.lr.point_count("learning rate") == 40
    assert view.status_label.text() == "Completed"
    assert view.progress_bar.value() == 40 and view.progress_bar.maximum() == 40
    assert "Completed" in view.progress_bar.format()
    assert "Lisbon" in view.sample_view.toPlainText()
    assert view.notices.count() == 1 and "pad token" in view.notices.item(0).text()
    assert "trainable parameters 180,224" in view.summary_label.text()
    assert page.train_button.isEnabled() and not page.stop_button.isEnabled()
    assert not view.banner.isVisible()


def test_replayed_failure_shows_error_hint_and_log_tail_at_the_top(qtbot, page, tmp_path):
    proc = replay(qtbot, page, tmp_path, "failed", "--exit", "1", "--stderr", "torch.OutOfMemoryError: CPU out of memory")
    with qtbot.waitSignal(proc.finished, timeout=15000):
        pass
    view = page.view
    assert view.status_label.text() == "Failed"
    assert view.banner.isVisible()
    assert "Out of memory at step 7" in view.banner.text
    assert "gradient_checkpointing" in view.banner.text
    assert view.tail_box.isVisible() and "CPU out of memory" in view.log_tail.toPlainText()
    assert view.panel.loss.point_count("train") == 6


def test_dead_worker_without_final_event_is_failed_never_running(qtbot, page, tmp_path):
    proc = replay(qtbot, page, tmp_path, "crashed", "--exit", "-9")
    with qtbot.waitSignal(proc.finished, timeout=15000):
        pass
    assert page.view.status_label.text() == "Failed"
    assert "ended without reporting" in page.view.banner.text


def test_stop_button_stops_and_offers_the_checkpoint_for_resume(qtbot, page, tmp_path):
    proc = replay(qtbot, page, tmp_path, "crashed", "--hang")
    qtbot.waitUntil(lambda: page.view.panel.loss.point_count("train") == 5, timeout=10000)
    assert page.view.status_label.text() == "Training"
    with qtbot.waitSignal(proc.finished, timeout=10000):
        qtbot.mouseClick(page.stop_button, Qt.LeftButton)
    assert page.view.status_label.text().startswith("Stopped")
    assert page.checkpoint_combo.currentText() == "checkpoint-99"
    assert page.resume_button.isEnabled()


def test_train_with_invalid_settings_shows_them_and_starts_nothing(qtbot, page):
    cfg = page.state.config
    cfg.train.learning_rate = -1.0
    page.state.set_config(cfg)
    started = []
    page.controller.run_started.connect(started.append)
    qtbot.mouseClick(page.train_button, Qt.LeftButton)
    assert page.view.banner.isVisible()
    assert "train.learning_rate" in page.view.banner.text
    assert started == []


DEMO_WEIGHTS = ROOT / "resources" / "demo-model" / "model.safetensors"
needs_demo = pytest.mark.skipif(not DEMO_WEIGHTS.exists(), reason="the demo model weights are not built yet")


def demo_config(**train) -> configmod.RunConfig:
    cfg = configmod.load(ROOT / "resources" / "presets" / "demo.yaml")
    cfg.model.path = str(ROOT / "resources" / "demo-model")
    cfg.data.train = str(ROOT / "resources" / "datasets" / "travel_chat.jsonl")
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


@needs_demo
@pytest.mark.integration
@pytest.mark.slow
def test_click_train_runs_the_demo_to_completion(qtbot, page):
    page.state.set_config(demo_config())
    with qtbot.waitSignal(page.controller.run_started, timeout=10000) as started:
        qtbot.mouseClick(page.train_button, Qt.LeftButton)
    proc = started.args[0]
    qtbot.waitUntil(lambda: page.view.panel.loss.point_count("train") > 0, timeout=120000)
    with qtbot.waitSignal(proc.finished, timeout=240000) as done:
        pass
    assert done.args[0].status == "completed", done.args[0].error + "\n" + done.args[0].log_tail
    assert page.view.status_label.text() == "Completed"
    assert page.view.panel.loss.point_count("train") == 30
    rec = page.controller.registry.find(proc.run_dir)
    assert rec.status == "completed" and rec.best_eval_loss is not None
