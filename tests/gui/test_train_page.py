"""The Train page: recorded worker streams replayed by a real child process, and real runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from studio.gui.pages.train_page import TrainPage
from studio.gui.runner import RunProcess, RunsController
from studio.gui.state import StudioState

from real_runs import model_dir, quick_config  # noqa: F401  (fixture; tests/gui helper module)
from worker_runs import read_events

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
    assert "180,224 of " in view.summary_label.text() and "parameters train (" in view.summary_label.text()
    assert page.train_button.isEnabled() and not page.stop_button.isEnabled()
    assert not view.banner.isVisible()


def test_recorded_real_worker_stream_replays_to_completed(qtbot, page, tmp_path):
    proc = replay(qtbot, page, tmp_path, "recorded_worker_completed")
    with qtbot.waitSignal(proc.finished, timeout=15000) as done:
        pass
    assert done.args[0].status == "completed" and done.args[0].final_event["final_dir"]
    assert page.view.panel.loss.point_count("train") == 30
    assert page.view.panel.loss.point_count("eval") == 3
    assert page.view.status_label.text() == "Completed"
    assert "Lisbon" in page.view.sample_view.toPlainText()


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


def test_overfitting_and_forgetting_warnings_are_visible_notices_with_hints(page):
    page.view.add_events([
        {"v": 1, "type": "warning", "time": 1.0, "code": "overfitting",
         "message": "eval loss rose 3 evaluations in a row while train loss fell", "hint": "stop at checkpoint-20"},
        {"v": 1, "type": "warning", "time": 2.0, "code": "forgetting",
         "message": "loss on the general text climbed from 3.9 to 4.3"},
    ])
    texts = [page.view.notices.item(i).text() for i in range(page.view.notices.count())]
    assert page.view.notices.isVisible()
    assert texts[0].startswith("⚠ Overfitting: eval loss rose") and "What to do: stop at checkpoint-20" in texts[0]
    assert texts[1].startswith("⚠ Forgetting: loss on the general text")


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


def test_the_next_run_can_be_named_and_follows_a_loaded_config(qtbot, page):
    assert page.name_edit.text() == ""
    assert page.name_edit.placeholderText() == f"{Path(page.state.config.model.path).name or 'model'}-lora-sft (automatic)"
    qtbot.keyClicks(page.name_edit, "  short answers  ")
    qtbot.keyClick(page.name_edit, Qt.Key_Return)
    assert page.state.config.name == "short answers"
    cfg = page.state.config
    cfg.name, cfg.method.name = "from a preset", "dora"
    page.state.set_config(cfg)
    assert page.name_edit.text() == "from a preset"
    assert page.name_edit.placeholderText().endswith("-dora-sft (automatic)")


# -- real worker runs -----------------------------------------------------------------------

def click_train(qtbot, page, cfg, name: str = "") -> RunProcess:
    page.state.set_config(cfg)
    if name:
        page.name_edit.clear()
        qtbot.keyClicks(page.name_edit, name)
    with qtbot.waitSignal(page.controller.run_started, timeout=10000) as started:
        qtbot.mouseClick(page.train_button, Qt.LeftButton)
    return started.args[0]


def wait_finished(qtbot, proc: RunProcess, timeout_s: int = 400):
    with qtbot.waitSignal(proc.finished, timeout=timeout_s * 1000) as done:
        pass
    return done.args[0]


@pytest.mark.integration
@pytest.mark.slow
def test_click_train_stop_then_resume_to_completion(qtbot, page, model_dir):
    proc = click_train(qtbot, page, quick_config(model_dir, max_steps=20), name="first try")
    assert Path(proc.run_dir).name.startswith("first-try-")  # typed, not confirmed: still used
    assert page.controller.registry.find(proc.run_dir).name == "first try"
    qtbot.waitUntil(lambda: page.view.panel.loss.point_count("train") >= 2, timeout=300000)
    assert page.view.status_label.text() == "Training" and page.stop_button.isEnabled()
    qtbot.mouseClick(page.stop_button, Qt.LeftButton)
    outcome = wait_finished(qtbot, proc)
    assert outcome.status == "stopped", outcome.error + "\n" + outcome.log_tail
    stopped_at = page.view.progress.step
    assert 2 <= stopped_at < 20
    assert page.checkpoint_combo.count() >= 1 and page.resume_button.isEnabled()
    assert page.controller.registry.find(proc.run_dir).status == "stopped"

    with qtbot.waitSignal(page.controller.run_started, timeout=10000) as resumed:
        qtbot.mouseClick(page.resume_button, Qt.LeftButton)
    outcome = wait_finished(qtbot, resumed.args[0])
    assert outcome.status == "completed", outcome.error + "\n" + outcome.log_tail
    assert page.view.status_label.text() == "Completed"
    steps = page.view.panel.loss.series["train"].x
    assert steps.max() == 20 and page.view.panel.loss.point_count("eval") >= 1
    rec = page.controller.registry.find(proc.run_dir)
    assert rec.status == "completed" and rec.best_eval_loss is not None
    # the row keeps the first start and counts the part trained before the stop
    assert rec.first_started < rec.started and 0 < rec.trained_s < rec.started - rec.first_started
    assert rec.duration_s() == pytest.approx(rec.trained_s + rec.ended - rec.started)


@pytest.mark.integration
@pytest.mark.slow
def test_data_file_deleted_after_start_shows_the_workers_error(qtbot, page, model_dir, tmp_path):
    data = tmp_path / "my_chats.jsonl"
    shutil.copy(ROOT / "resources" / "datasets" / "travel_chat.jsonl", data)
    proc = click_train(qtbot, page, quick_config(model_dir, max_steps=5, data=data))
    data.unlink()  # gone before the worker (still importing torch) reads it
    outcome = wait_finished(qtbot, proc)
    assert outcome.status == "failed" and outcome.final_event is not None  # the worker said so itself
    assert page.view.status_label.text() == "Failed"
    assert "my_chats.jsonl" in page.view.banner.text
    assert page.controller.registry.find(proc.run_dir).status == "failed"


@pytest.mark.integration
@pytest.mark.slow
def test_two_fsdp_processes_on_a_cpu_machine_stop_resume_and_report_once(qtbot, page, model_dir):
    """FSDP with 2 processes and device auto on a machine without GPUs: CPU processes shard
    the model; Stop saves a checkpoint, Resume continues on 2 processes, one curve point a step."""
    cfg = quick_config(model_dir, max_steps=40)
    cfg.distributed.strategy = "fsdp"
    assert cfg.train.device == "auto"
    page.processes_spin.setValue(2)
    proc = click_train(qtbot, page, cfg)
    qtbot.waitUntil(lambda: page.view.panel.loss.point_count("train") >= 2, timeout=300000)
    qtbot.mouseClick(page.stop_button, Qt.LeftButton)
    outcome = wait_finished(qtbot, proc)
    assert outcome.status == "stopped", outcome.error + "\n" + outcome.log_tail
    run_dir = Path(proc.run_dir)
    assert (run_dir / "worker.rank1.log").exists()
    assert "the model sharded over 2 processes" in (run_dir / "worker.log").read_text(encoding="utf-8")

    with qtbot.waitSignal(page.controller.run_started, timeout=10000) as resumed:
        qtbot.mouseClick(page.resume_button, Qt.LeftButton)
    outcome = wait_finished(qtbot, resumed.args[0])
    assert outcome.status == "completed", outcome.error + "\n" + outcome.log_tail
    started = [e for e in read_events(run_dir) if e["type"] == "started"]
    assert [e["world_size"] for e in started] == [2, 2]
    # Only the main process writes events: one curve point per step, not one per process.
    assert list(page.view.panel.loss.series["train"].x) == list(range(1, 41))