"""The window opens fast with the demo preselected, renders to a PNG, and never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from studio.gui import tasks
from studio.gui.app import build_window, initial_config, open_window
from studio.gui.main_window import PAGES

from real_runs import model_dir, quick_config  # noqa: F401  (fixture; tests/gui helper module)

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "trl", "peft")


@pytest.fixture
def window(qtbot):
    w = build_window()
    qtbot.addWidget(w)
    w.show()
    yield w
    tasks.wait_idle(30)


def test_demo_is_preselected_on_the_model_and_data_pages(window):
    cfg = window.state.config
    assert Path(cfg.model.path) == (ROOT / "resources" / "demo-model").resolve()
    assert Path(cfg.data.train) == (ROOT / "resources" / "datasets" / "travel_chat.jsonl").resolve()
    assert window.pages["Model"].picker.edit.text() == cfg.model.path
    assert window.pages["Data"].picker.edit.text() == cfg.data.train
    assert window.state.problems() == []


def test_sidebar_lists_the_pages_in_order(window, qtbot):
    labels = [window.nav.item(i).text() for i in range(window.nav.count())]
    assert labels == [p[0] for p in PAGES] == ["Model", "Data", "Method", "Inspect", "Train", "Runs", "Chat"]
    rect = window.nav.visualItemRect(window.nav.item(3))
    qtbot.mouseClick(window.nav.viewport(), __import__("PySide6.QtCore").QtCore.Qt.LeftButton, pos=rect.center())
    assert window.stack.currentWidget() is window.pages["Inspect"]


def test_demo_preset_paths_are_made_absolute():
    cfg = initial_config()
    assert Path(cfg.model.path).is_absolute() and Path(cfg.data.train).is_absolute()


def _run_screenshot(tmp_path) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "window.png"
    proc = subprocess.run([sys.executable, "-m", "studio", "--screenshot", str(out)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120, env={**__import__("os").environ,
                                                                    "QT_QPA_PLATFORM": "offscreen"})
    return proc, out


def test_screenshot_command_writes_a_png_and_reports_first_paint(tmp_path):
    from PySide6.QtGui import QImage

    proc, out = _run_screenshot(tmp_path)
    assert proc.returncode == 0, proc.stderr
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1280, 800)
    first_paint = [line for line in proc.stdout.splitlines() if line.startswith("first paint")]
    assert first_paint, proc.stdout
    ms = int(first_paint[0].split()[2])
    print(f"\nstudio --screenshot: {first_paint[0]}")
    # A time, not a verdict: the under-a-second target is measured by benchmarks/startup.py
    # against a baseline in the same run (a wall-clock limit here failed on a busy machine).
    assert ms > 0


def test_gui_process_never_imports_torch_even_after_pages_load():
    code = (
        "import json, os, sys\n"
        "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "from studio.gui.app import application, build_window\n"
        "from studio.gui import tasks\n"
        "app = application(); w = build_window(); w.show()\n"
        "for name in w.pages:\n"
        "    w.show_page(name); tasks.wait_idle(60)\n"
        "w.pages['Method'].run_preflight(); tasks.wait_idle(60)\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


class _Controller:
    """Stands in for the runs controller's answer to 'which runs are live' (the dialog is under test)."""

    def __init__(self, live):
        self.live, self.calls = live, []

    def live_runs(self):
        return self.live

    def stop_all(self):
        self.calls.append("stop_all")

    def detach_all(self):
        self.calls.append("detach_all")


def _answer_close_dialog(qtbot, window, button_name):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QPushButton

    def click():
        box = QApplication.activeModalWidget()
        qtbot.mouseClick(box.findChild(QPushButton, button_name), __import__("PySide6.QtCore").QtCore.Qt.LeftButton)

    QTimer.singleShot(200, click)
    return window.close()


# QMessageBox fixes its own size when shown; the offscreen platform has no window manager to
# pass that to and says so. That message is about the test platform, not about Studio.
@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
@pytest.mark.parametrize("button, call", [("stopRunsButton", "stop_all"), ("leaveRunningButton", "detach_all")])
def test_closing_with_live_runs_asks_what_to_do(window, qtbot, button, call):
    controller = _Controller(live=["run-1"])
    window.runs_controller = controller
    assert _answer_close_dialog(qtbot, window, button)
    assert controller.calls == [call]


def test_closing_without_live_runs_asks_nothing(window):
    window.runs_controller = _Controller(live=[])
    assert window.close()


def test_no_display_is_a_plain_error(monkeypatch):
    from studio.core.errors import StudioError
    from studio.gui import app

    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(app.sys, "platform", "linux")
    with pytest.raises(StudioError) as exc:
        app._choose_platform(screenshot=False)
    assert "display" in exc.value.message and "--screenshot" in exc.value.hint
    app._choose_platform(screenshot=True)
    assert app.os.environ["QT_QPA_PLATFORM"] == "offscreen"


def test_double_clicking_a_data_row_opens_it_in_the_inspector(window, qtbot):
    from PySide6.QtCore import Qt

    data = window.show_page("Data")
    tasks.wait_idle(30)
    table = data.table
    rect = table.visualRect(table.model().index(4, 1))
    # A real double-click starts with a press; QTest's double-click event alone carries none.
    qtbot.mouseClick(table.viewport(), Qt.LeftButton, pos=rect.center())
    qtbot.mouseDClick(table.viewport(), Qt.LeftButton, pos=rect.center())
    inspect = window.pages["Inspect"]
    assert window.stack.currentWidget() is inspect
    assert inspect.row_spin.value() == 5
    qtbot.waitUntil(lambda: inspect.row_result is not None and inspect.row_result.view.encoded.row == 5,
                    timeout=30_000)


@pytest.mark.slow
@pytest.mark.integration
def test_train_works_with_no_other_click(window, qtbot):
    """The preselected demo trains from one click on Train: a real worker logs falling steps."""
    from PySide6.QtCore import Qt

    train = window.show_page("Train")
    if not hasattr(train, "train_button"):
        pytest.skip("the Train page is not in this build")
    qtbot.mouseClick(train.train_button, Qt.LeftButton)
    proc = train.view.proc
    assert proc is not None, train.view.banner.text
    steps = lambda: [e for e in proc.history() if e.get("type") == "step"]  # noqa: E731
    qtbot.waitUntil(lambda: len(steps()) >= 2 or not proc.is_running(), timeout=240_000)
    assert len(steps()) >= 2, proc.outcome()
    assert all(isinstance(e.get("loss"), float) for e in steps())
    qtbot.mouseClick(train.stop_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not proc.is_running(), timeout=120_000)
    assert proc.outcome().status in ("stopped", "completed"), proc.outcome()


def test_closed_page_does_not_leave_background_work_pending(qtbot):
    import threading

    from PySide6.QtWidgets import QWidget

    from studio.gui.tasks import TaskRunner

    gate = threading.Event()
    owner = QWidget()
    runner = TaskRunner(owner)
    runner.submit("slow", lambda: gate.wait(5), lambda _: None)
    assert tasks.pending() == 1
    owner.deleteLater()
    qtbot.waitUntil(lambda: tasks.pending() == 0, timeout=5_000)  # the page went away with its relay
    gate.set()
    assert tasks.wait_idle(5)


def studio_window(qtbot):
    """The window as the `studio` command opens it: pages after the first paint, then reattach."""
    window, _ = open_window()
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: not window._deferred, timeout=10_000)
    return window


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
@pytest.mark.slow
@pytest.mark.integration
def test_reopened_window_shows_the_live_run_on_the_train_page_then_sees_it_killed(qtbot, model_dir):
    import os
    import signal

    from PySide6.QtCore import Qt

    first = studio_window(qtbot)
    first.state.set_config(quick_config(model_dir, max_steps=400))
    standby = first.runs_controller.standby  # the worker started ahead of time takes the run, as for a person
    qtbot.waitUntil(lambda: standby is None or standby.is_ready(), timeout=300_000)
    train = first.show_page("Train")
    qtbot.mouseClick(train.train_button, Qt.LeftButton)
    proc = train.view.proc
    assert proc is not None, train.view.banner.text
    try:
        qtbot.waitUntil(lambda: any(e["type"] == "step" for e in proc.history()), timeout=300_000)
        assert _answer_close_dialog(qtbot, first, "leaveRunningButton")
        assert proc.is_alive()

        again = studio_window(qtbot)
        train = again.pages["Train"]
        assert train.view.proc is not None and train.view.proc.run_dir == proc.run_dir
        qtbot.waitUntil(lambda: train.view.panel.loss.point_count("train") >= 1, timeout=10_000)
        assert train.view.status_label.text() == "Training" and train.stop_button.isEnabled()
        assert not train.train_button.isEnabled()
        before = train.view.panel.loss.point_count("train")
        qtbot.waitUntil(lambda: train.view.panel.loss.point_count("train") > before, timeout=120_000)  # live

        with qtbot.waitSignal(train.view.proc.finished, timeout=30_000) as done:
            os.kill(proc.pid, signal.SIGKILL)  # the machine's out-of-memory killer, say
        assert done.args[0].status == "failed" and done.args[0].final_event is None
        assert train.view.status_label.text() == "Failed"
        assert "ended without reporting" in train.view.banner.text
        assert again.runs_controller.registry.find(proc.run_dir).status == "failed"
    finally:  # never leave a worker training (nor a close dialog waiting) behind a failed check
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
        qtbot.waitUntil(lambda: not proc.is_alive(), timeout=30_000)
