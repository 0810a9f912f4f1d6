"""What every desktop app has: a menu bar, platform shortcuts, Help/About, a remembered layout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Qt, QTimer, Slot
from PySide6.QtGui import QDesktopServices, QKeySequence
from PySide6.QtWidgets import QApplication

import studio
from studio.core.runs import runs_root
from studio.gui import about, tasks
from studio.gui.app import build_window

from real_runs import replaying_worker  # noqa: F401  (fixture; tests/gui helper module)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.fixture
def window(qtbot):
    w = build_window()
    qtbot.addWidget(w)
    w.show()
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)
    yield w
    tasks.wait_idle(30)


def test_no_two_actions_share_a_key(window):
    from PySide6.QtGui import QAction

    keys = [k.toString() for a in window.findChildren(QAction) for k in a.shortcuts() if not k.isEmpty()]
    keys += [b.shortcut().toString() for b in window.findChildren(__import__("PySide6.QtWidgets").QtWidgets.QAbstractButton)
             if not b.shortcut().isEmpty()]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


def test_the_menu_bar_has_file_go_training_and_help_with_the_platforms_keys(window):
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles == ["&File", "&Go", "&Training", "&Help"]
    actions = window.actions_by_name
    quit_keys = QKeySequence.keyBindings(QKeySequence.StandardKey.Quit) or [QKeySequence("Ctrl+Q")]
    assert actions["quitAction"].shortcuts() == quit_keys
    assert QKeySequence(QKeySequence.StandardKey.HelpContents) in actions["helpAction"].shortcuts()
    assert actions["aboutAction"].menuRole() == actions["aboutAction"].MenuRole.AboutRole


def test_ctrl_and_a_number_switches_pages_and_ctrl_q_closes(window, qtbot):
    qtbot.keyClick(window, Qt.Key_3, Qt.ControlModifier)
    assert window.stack.currentWidget() is window.pages["Method"]
    qtbot.keyClick(window, Qt.Key_6, Qt.ControlModifier)
    assert window.stack.currentWidget() is window.pages["Runs"]
    qtbot.keyClick(window, Qt.Key_Q, Qt.ControlModifier)
    assert not window.isVisible()


class _UrlCatcher(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.urls = []

    @Slot("QUrl")
    def open(self, url) -> None:
        self.urls.append(url)


def test_f1_opens_the_documentation(window, qtbot):
    catcher = _UrlCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "open")
    try:
        qtbot.keyClick(window, Qt.Key_F1)
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert [Path(u.toLocalFile()) for u in catcher.urls] == [ROOT / "README.md"]


def test_keys_start_and_stop_training_from_any_page(window, qtbot, replaying_worker):
    window.show_page("Data")
    qtbot.keyClick(window, Qt.Key_F5)
    train = window.pages["Train"]
    assert window.stack.currentWidget() is train
    proc = train.view.proc
    assert proc is not None and proc.is_running()
    qtbot.waitUntil(lambda: any(e["type"] == "step" for e in proc.history()), timeout=20_000)
    window.show_page("Runs")
    qtbot.keyClick(window, Qt.Key_F5, Qt.ShiftModifier)
    qtbot.waitUntil(lambda: not proc.is_running(), timeout=20_000)
    assert proc.outcome().status == "stopped"


def _close_when_shown(found: list, name: str) -> None:
    def look():
        dialog = QApplication.activeModalWidget()
        if dialog is None or dialog.objectName() != name:
            QTimer.singleShot(50, look)
            return
        found.append(dialog.findChild(QObject, "aboutText").text())
        dialog.reject()

    QTimer.singleShot(50, look)


def test_about_shows_version_libraries_folders_and_docs(window, qtbot):
    found: list[str] = []
    _close_when_shown(found, "aboutDialog")
    window.actions_by_name["aboutAction"].trigger()
    text = found[0]
    assert f"Studio {studio.__version__}" in text
    for library in ("PySide6", "torch", "transformers", "peft", "trl"):
        assert f"<td>{library}</td>" in text
    assert str(runs_root()) in text and "worker.log" in text and "README.md" in text
    # Other tests of this session import torch; a fresh interpreter shows what About itself imports.
    probe = ("import sys; from studio.gui.about import about_html; about_html(); "
             "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.strip() == "False", done.stderr[-2000:]


def test_check_installation_says_plainly_when_the_self_test_is_missing(window, qtbot, monkeypatch):
    monkeypatch.setattr(about, "self_test_available", lambda: False)
    dialog = window.check_installation()
    assert "not available in this build" in dialog.verdict.text()
    assert dialog.proc.state() == dialog.proc.ProcessState.NotRunning
    dialog.close()


def test_check_installation_runs_in_the_background_and_shows_the_verdict(window, qtbot):
    script = ("import time; print('  ok    PyTorch: 2.13.0', flush=True); time.sleep(0.3); "
              "print('  FAIL  training: out of memory'); print('Studio is NOT ready: training failed.'); "
              "raise SystemExit(1)")
    dialog = about.SelfTestDialog(window, command=["-c", script], available=True)
    assert "Checking this installation" in dialog.verdict.text()  # the window is not blocked meanwhile
    with qtbot.waitSignal(dialog.proc.finished, timeout=20_000):
        pass
    assert dialog.verdict.text().startswith("✗ Studio is NOT ready: training failed.")
    assert "PyTorch: 2.13.0" in dialog.output.toPlainText()
    dialog.close()


@pytest.mark.slow
@pytest.mark.skipif(not about.self_test_available(), reason="studio --self-test is not in this build yet")
def test_check_installation_runs_the_installers_self_test(window, qtbot):
    dialog = window.check_installation()
    with qtbot.waitSignal(dialog.proc.finished, timeout=300_000):
        pass
    assert dialog.verdict.text().startswith(("✓", "✗"))
    assert "Studio" in dialog.verdict.text()
    dialog.close()


def test_size_position_and_page_are_remembered(qtbot):
    first = build_window()
    qtbot.addWidget(first)
    first.show()
    first.resize(1100, 720)
    first.show_page("Runs")
    assert first.close()
    second = build_window()
    qtbot.addWidget(second)
    assert (second.width(), second.height()) == (1100, 720)
    assert second.stack.currentWidget() is second.pages["Runs"]
    tasks.wait_idle(30)
