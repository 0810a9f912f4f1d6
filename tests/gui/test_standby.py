"""Train answers within seconds: the run goes to a worker started ahead of time with its imports done."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QPushButton

from studio.core.runs import pid_alive
from studio.gui import run_controller, tasks
from studio.gui.app import build_window
from studio.gui.runner import RunsController

from real_runs import model_dir, quick_config  # noqa: F401  (fixture; tests/gui helper module)

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


def _events(run_dir: str) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "events.jsonl").read_text().splitlines() if line.strip()]


def _leave_running(qtbot, window) -> bool:
    def click():
        box = QApplication.activeModalWidget()
        qtbot.mouseClick(box.findChild(QPushButton, "leaveRunningButton"), Qt.LeftButton)

    QTimer.singleShot(200, click)
    return window.close()


@pytest.mark.slow
@pytest.mark.integration
def test_train_hands_the_run_to_the_waiting_worker_which_outlives_the_window(qtbot, model_dir, monkeypatch):
    monkeypatch.setenv("STUDIO_STANDBY", "1")
    window = build_window(quick_config(model_dir, max_steps=400))
    qtbot.addWidget(window)
    window.show()
    controller = window.runs_controller
    controller.enable_standby()
    standby = controller.standby
    qtbot.waitUntil(standby.is_ready, timeout=240_000)
    train = window.show_page("Train")
    qtbot.mouseClick(train.train_button, Qt.LeftButton)
    proc = train.view.proc
    assert proc is not None and proc.pid == standby.pid  # no new process: the waiting one took the run
    assert standby.hand_over([proc.run_dir]) is None  # never used for two runs
    qtbot.waitUntil(lambda: any(e["type"] == "step" for e in proc.history()), timeout=120_000)
    started = next(e for e in _events(proc.run_dir) if e["type"] == "started")
    assert started["startup"]["standby"] is True
    assert started["startup"]["run_received"] <= started["startup"]["imports_done"]
    assert os.getsid(proc.pid) != os.getsid(0)  # its own session: a closing window does not take it along
    assert "worker" in (Path(proc.run_dir) / "worker.log").read_text()  # its log went to the run folder
    assert controller.standby is standby  # no second standby importing beside a training run
    pid = proc.pid
    assert _leave_running(qtbot, window)
    steps = len([e for e in _events(proc.run_dir) if e["type"] == "step"])
    qtbot.waitUntil(lambda: len([e for e in _events(proc.run_dir) if e["type"] == "step"]) > steps, timeout=60_000)
    assert pid_alive(pid)
    os.kill(pid, signal.SIGTERM)
    qtbot.waitUntil(lambda: not pid_alive(pid), timeout=120_000)  # the run ended and the process with it
    assert _events(proc.run_dir)[-1]["status"] == "stopped"
    tasks.wait_idle(30)


class _FakeStandby:
    made: list["_FakeStandby"] = []

    def __init__(self) -> None:
        self.used, self.closed, self.pid = False, False, 1000 + len(self.made)
        self.made.append(self)

    def is_alive(self) -> bool:
        return not self.closed

    def hand_over(self, args):
        self.used = True
        return None  # the run starts from scratch in this test

    def close(self) -> None:
        self.closed = True


def test_a_used_standby_is_replaced_once_no_run_trains_and_sent_away_on_close(monkeypatch, tmp_path):
    monkeypatch.setattr(run_controller, "StandbyWorker", _FakeStandby)
    monkeypatch.setenv("STUDIO_STANDBY", "1")
    _FakeStandby.made.clear()
    controller = RunsController()
    controller.enable_standby()
    controller.enable_standby()
    assert len(_FakeStandby.made) == 1  # one waits, not two
    controller.standby.used = True
    monkeypatch.setattr(controller, "live_runs", lambda: ["a run"])
    controller._refill_standby()
    assert len(_FakeStandby.made) == 1  # not while a run trains
    monkeypatch.setattr(controller, "live_runs", lambda: [])
    controller._refill_standby()
    assert len(_FakeStandby.made) == 2 and controller.standby is _FakeStandby.made[1]
    controller.close_standby()
    assert controller.standby.closed
    controller._refill_standby()
    assert len(_FakeStandby.made) == 2  # the window is closing: no new one


def test_standby_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(run_controller, "StandbyWorker", _FakeStandby)
    monkeypatch.setenv("STUDIO_STANDBY", "0")
    controller = RunsController()
    controller.enable_standby()
    assert controller.standby is None
