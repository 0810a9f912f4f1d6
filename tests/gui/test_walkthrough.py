"""A new user's walk through the window the `studio` command builds: what misled them must not."""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QScrollArea

from studio.gui import tasks
from studio.gui.app import build_window

ROOT = Path(__file__).resolve().parents[2]
# The offscreen platform says this when a top-level window is shown; it is not about our code.
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.fixture
def window(qtbot):
    w = build_window()  # closed here, not by qtbot (which closes before fixtures end)
    w.resize(1024, 700)
    w.show()
    tasks.wait_idle(60)
    yield w
    tasks.wait_idle(30)
    kill_live_runs(w)  # a check that failed must not leave a run training, or a close dialog waiting
    w.close()
    w.deleteLater()


def kill_live_runs(window) -> None:
    """Kill the runs the window follows and wait until they are gone."""
    live = window.runs_controller.live_runs()
    for proc in live:
        os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(proc.is_alive() for proc in live) and time.monotonic() < deadline:
        time.sleep(0.05)


def wheel(widget, notches: int = 3) -> None:
    """Turn the mouse wheel down over the middle of ``widget``, ``notches`` clicks."""
    centre = widget.rect().center()
    for _ in range(notches):
        event = QWheelEvent(QPointF(centre), QPointF(widget.mapToGlobal(centre)), QPoint(0, 0), QPoint(0, -120),
                            Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
        QApplication.sendEvent(widget, event)


# -- 1. the wheel scrolls the page; it changes only the box the person clicked into ------------------

def test_the_wheel_over_unfocused_boxes_scrolls_the_method_page_and_changes_nothing(window, qtbot):
    page = window.show_page("Method")
    area = page.findChild(QScrollArea, "settingsArea")
    bar = area.verticalScrollBar()
    steps, device = page.form.editor("train.max_steps"), page.form.editor("train.device")
    before = (steps.value(), device.currentText())
    for box in (device, steps):
        area.ensureWidgetVisible(box)
        top = bar.value()
        assert top < bar.maximum()  # room to scroll down
        wheel(box)
        assert bar.value() > top, f"the page did not scroll under {box.objectName()}"
    assert (steps.value(), device.currentText()) == before
    assert window.state.config.train.max_steps == before[0] and window.state.config.train.device == before[1]
    assert steps.focusPolicy() == Qt.StrongFocus and device.focusPolicy() == Qt.StrongFocus

    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    steps.setFocus()
    qtbot.waitUntil(steps.hasFocus, timeout=5000)
    wheel(steps, 1)  # clicked into: the wheel edits it, as in every desktop app
    assert steps.value() == before[0] - 1


def wait_preflight(qtbot, window) -> None:
    """Until the Method page's preflight has answered for the current settings."""
    page = window.pages["Method"]
    page.run_preflight()
    qtbot.waitUntil(lambda: page.lint_list.isEnabled() and window.state._preflight is not None
                    and window.state._preflight[0] == window.state.config, timeout=60_000)


def set_train_file(qtbot, window, path) -> None:
    """Type a path into the Data page's file box and press Enter, as a person does."""
    data = window.show_page("Data")
    data.picker.edit.clear()
    qtbot.keyClicks(data.picker.edit, str(path))
    qtbot.keyClick(data.picker.edit, Qt.Key_Return)
    tasks.wait_idle(60)


# -- 3. a column mapping belongs to the file it was made for -------------------------------------------

def test_another_file_starts_from_detection_not_from_the_last_files_mapping(window, qtbot, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps({"question": f"q{i}", "good": f"yes {i}", "bad": f"no {i}"})
                               for i in range(5)))
    set_train_file(qtbot, window, pairs)
    data = window.pages["Data"]
    data.format_combo.setCurrentIndex(data.format_combo.findData("preference"))
    tasks.wait_idle(60)
    for field, column in (("chosen", "good"), ("rejected", "bad"), ("prompt", "question")):
        data.column_combos[field].setCurrentText(column)
        tasks.wait_idle(60)
    picked = {f: data.column_combos[f].currentText() for f in ("chosen", "rejected", "prompt")}
    assert picked == {"chosen": "good", "rejected": "bad", "prompt": "question"}  # none cleared another
    assert data.report is not None and data.report.usable_rows == 5

    set_train_file(qtbot, window, ROOT / "resources" / "datasets" / "travel_chat.jsonl")
    assert (window.state.config.data.format, window.state.config.data.columns) == ("auto", {})
    assert data.report is not None and data.report.usable_rows == 300 and data.report.format == "messages"
    assert not data.banner.isVisible(), data.banner.text


# -- 4. the Chat page's runs follow the registry ------------------------------------------------------

def test_the_chat_list_follows_the_registry_without_refresh(window, qtbot, tmp_path):
    from studio.core import config as configmod

    chat = window.show_page("Chat")
    assert chat.run_combo.count() == 0
    run_dir = tmp_path / "finished"
    (run_dir / "final").mkdir(parents=True)
    (run_dir / "final" / "studio.json").write_text('{"task": "causal_lm"}')
    registry = window.runs_controller.registry
    registry.update(registry.add(run_dir, configmod.RunConfig(name="finished"), "finished"), status="completed")
    window.runs_controller.runs_changed.emit()  # what the controller says when a followed run ends
    assert chat.run_combo.count() == 1 and chat.run_combo.currentData() == str(run_dir.resolve())
    assert chat.load_button.isEnabled()


def test_the_chat_list_is_fresh_when_the_page_is_opened(window, qtbot, tmp_path):
    from studio.core import config as configmod
    from studio.core.runs import Registry

    window.show_page("Chat")
    window.show_page("Runs")
    run_dir = tmp_path / "from-a-terminal"
    (run_dir / "final").mkdir(parents=True)
    (run_dir / "final" / "studio.json").write_text('{"task": "causal_lm"}')
    registry = Registry()  # `studio train` in a terminal, not this window
    registry.update(registry.add(run_dir, configmod.RunConfig(name="t"), "t"), status="completed")
    assert window.show_page("Chat").run_combo.count() == 1


# -- 5. preflight checks the device and the objective against the data; Train says why it is off ------

@pytest.mark.parametrize("field, value, words", [
    ("device", "mps", "train.device is mps, but this machine has no Apple GPU"),
    ("objective", "dpo", "preference"),
])
def test_a_preflight_error_is_shown_and_turns_train_off_with_the_reason(window, qtbot, field, value, words):
    if field == "device" and "mps" in __import__("studio.core.machine").core.machine.this_machine().devices:
        pytest.skip("this machine has an Apple GPU")
    method = window.show_page("Method")
    window.state.set_field("train", field, value)
    wait_preflight(qtbot, window)
    lints = [method.lint_list.item(i).text() for i in range(method.lint_list.count())]
    assert any(text.startswith("Must fix") and words in text for text in lints), lints
    train = window.show_page("Train")
    assert not train.train_button.isEnabled()
    assert train.blocked_label.isVisible() and words in train.blocked_label.text()
    assert words in train.train_button.toolTip()
    window.state.set_field("train", field, "auto" if field == "device" else "sft")
    assert train.train_button.isEnabled() and not train.blocked_label.isVisible()  # a report on other settings


# -- 6. no stale text ---------------------------------------------------------------------------------

def test_a_file_with_only_bad_rows_leaves_no_stale_counts(window, qtbot, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(json.dumps({"messages": "oops"}) for _ in range(7)))
    data = window.show_page("Data")
    assert data.tabs.tabText(0) == "Rows (300)"
    set_train_file(qtbot, window, bad)
    assert data.banner.isVisible() and "no usable rows" in data.banner.text
    assert [data.tabs.tabText(i) for i in (0, 1)] == ["Rows (0)", "Bad rows (7)"]
    assert data.bad_list.count() == 7


def test_the_pad_row_forgets_an_earlier_paths_error(window, qtbot, tmp_path):
    model = window.show_page("Model")
    model.picker.edit.clear()
    qtbot.keyClicks(model.picker.edit, str(tmp_path / "no-such-model"))
    qtbot.keyClick(model.picker.edit, Qt.Key_Return)
    tasks.wait_idle(60)
    pad = model.facts["padChoiceLabel"]
    assert "no-such-model" in pad.text() or pad.text() == "—"
    model.picker.edit.clear()
    qtbot.keyClicks(model.picker.edit, "someone/some-model")
    qtbot.keyClick(model.picker.edit, Qt.Key_Return)
    tasks.wait_idle(60)
    assert pad.text() == "—"


def test_a_run_says_starting_until_the_worker_has_started(window, qtbot, tmp_path):
    from studio.gui.runner import RunProcess

    train = window.show_page("Train")
    proc = RunProcess(tmp_path)  # a worker still importing: alive, nothing in its event log yet
    proc.follow(os.getpid())
    train.watch(proc)
    assert train.view.status_label.text() == "Starting"
    assert train.view.progress_bar.format().startswith("Starting")
    train.view.add_events([{"v": 1, "type": "started", "time": 1.0, "max_steps": 30, "params_total": 10,
                            "params_trainable": 1, "device": "cpu"}])
    train.view._flush_log()
    assert train.view.status_label.text() == "Training" and train.view.progress_bar.format() == "Step 0 of 30"
    proc.detach()
    proc.pid = None  # no longer alive for the close dialog


def test_no_final_eval_loss_while_a_run_trains():
    from studio.core.runs import RunRecord
    from studio.gui.pages.runs_page import COLUMNS, row_values

    rec = RunRecord(id="1", name="r", run_dir="/r", status="running", started=100.0, final_eval_loss=1.5,
                    best_eval_loss=1.4)
    cells = dict(zip(COLUMNS, row_values(rec)))
    assert cells["Final eval loss"] == "" and cells["Best eval loss"] == "1.4000"
    rec.status = "completed"
    assert dict(zip(COLUMNS, row_values(rec)))["Final eval loss"] == "1.5000"


# -- 7. the newest checkpoint is selected ----------------------------------------------------------

def _checkpoints(run_dir: Path, steps: list[int], best: int) -> list[str]:
    paths = []
    for step in steps:
        folder = run_dir / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "state.json").write_text(json.dumps({"step": step, "best_eval_step": best}))
        paths.append(str(folder))
    return paths


def test_the_newest_checkpoint_is_selected_as_they_arrive_unless_one_was_picked(window, qtbot, tmp_path):
    train = window.show_page("Train")
    train.view.checkpoints_changed.emit(_checkpoints(tmp_path, [15], best=15))
    assert train.checkpoint_combo.currentText().startswith("checkpoint-15")
    train.view.checkpoints_changed.emit(_checkpoints(tmp_path, [15, 30], best=30))
    assert train.checkpoint_combo.currentText() == "checkpoint-30 · best eval"
    train.checkpoint_combo.activated.emit(1)  # the person picks step 15
    train.checkpoint_combo.setCurrentIndex(1)
    train.view.checkpoints_changed.emit(_checkpoints(tmp_path, [15, 30, 45], best=30))
    assert train.checkpoint_combo.currentText() == "checkpoint-15"


# -- 8. a resumed run's row counts from its first start -------------------------------------------------

def test_a_resumed_runs_row_shows_its_first_start_and_all_the_time_trained(window, qtbot, tmp_path, monkeypatch):
    from studio.core import config as configmod
    from studio.gui.pages.runs_page import COLUMNS
    from studio.worker import main as worker_main

    run_dir = tmp_path / "resumed"
    run_dir.mkdir()
    configmod.save(configmod.RunConfig(name="resumed"), run_dir / "config.yaml")
    clock = [time.mktime((2026, 11, 29, 19, 1, 34, 0, 0, -1))]
    monkeypatch.setattr(worker_main.time, "time", lambda: clock[0])
    registry, run_id = worker_main._register(run_dir, True)  # the first start
    clock[0] += 22
    registry.update(run_id, status="stopped", ended=clock[0])  # stopped after 22 s
    clock[0] += 5
    window.runs_controller._record_start(run_dir, None)  # Resume pressed
    clock[0] += 3
    registry, run_id = worker_main._register(run_dir, True)  # the worker starts
    clock[0] += 19
    registry.update(run_id, status="completed", ended=clock[0])  # trained 19 s more
    runs = window.show_page("Runs")
    runs.refresh()
    row = next(i for i, rec in enumerate(runs.records) if rec.run_dir == str(run_dir.resolve()))
    cells = {name: runs.table.item(row, col).text() for col, name in enumerate(COLUMNS)}
    assert cells["Started"].endswith("19:01") and cells["Duration"] == "0:41"


# -- 9. Copy as command copies only trainable settings, with an absolute path ---------------------------

def test_copy_as_command_refuses_invalid_settings_and_names_the_preset_absolutely(window, qtbot, tmp_path,
                                                                                  monkeypatch):
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QPushButton

    method = window.show_page("Method")
    copy = method.findChild(QPushButton, "copyCommandButton")
    QGuiApplication.clipboard().setText("before")
    window.state.set_field("train", "learning_rate", -1.0)
    qtbot.mouseClick(copy, Qt.LeftButton)
    assert QGuiApplication.clipboard().text() == "before"
    assert method.banner.isVisible() and "train.learning_rate" in method.banner.text

    window.state.set_field("train", "learning_rate", 3e-4)
    qtbot.mouseClick(copy, Qt.LeftButton)
    command = QGuiApplication.clipboard().text()
    preset = shlex.split(command)[2]
    assert Path(preset).is_absolute() and Path(preset).exists(), command
    monkeypatch.chdir(tmp_path)  # the command works from another folder
    from studio.core import config as configmod

    assert configmod.load(preset, shlex.split(command)[3:]).train.learning_rate == 3e-4


# -- 10. one source for each number ---------------------------------------------------------------------

def test_the_method_page_states_the_share_as_the_train_page_does_and_no_gpu_count(window, qtbot):
    from PySide6.QtWidgets import QLabel

    from studio.core.memory import trainable_text

    method = window.show_page("Method")
    wait_preflight(qtbot, window)
    estimate = method.preflight["estimate"]
    assert trainable_text(estimate["params_trainable"], estimate["params_total"]) in method.memory.text()
    train = window.show_page("Train")
    labels = [label.text() for label in train.findChildren(QLabel)]
    assert "Processes:" in labels and "GPUs:" not in labels


def test_train_pressed_before_preflight_answers_refuses_data_the_objective_cannot_train(window, qtbot):
    """DPO on chat rows once failed 11 s into the run and left a failed run behind; now no run is made."""
    train = window.show_page("Train")
    window.state.set_field("train", "objective", "dpo")
    assert not window.state.preflight_known()
    started = []
    window.runs_controller.run_started.connect(started.append)
    qtbot.mouseClick(train.train_button, Qt.LeftButton)
    assert started == [] and window.runs_controller.registry.list() == []
    assert train.view.banner.isVisible() and "preference" in train.view.banner.text
