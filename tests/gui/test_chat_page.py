"""The Chat page driving a real studio.worker.chat child on a tiny adapter run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from studio.core import config as configmod
from studio.core.runs import Registry
from studio.gui.pages.chat_page import ChatPage
from studio.gui.state import StudioState

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.fixture
def page(qtbot):
    widget = ChatPage(StudioState())
    qtbot.addWidget(widget)
    widget.resize(1280, 800)
    widget.show()
    yield widget
    widget.shutdown()


def register(run_dir: Path, name: str) -> None:
    registry = Registry()
    registry.update(registry.add(run_dir, configmod.RunConfig(name=name), name), status="completed")


def test_a_run_without_a_model_is_not_offered_and_a_broken_one_shows_why(qtbot, tmp_path):
    empty = tmp_path / "stopped-run"
    empty.mkdir()
    register(empty, "stopped-run")
    broken = tmp_path / "broken-run"
    (broken / "final").mkdir(parents=True)
    (broken / "final" / "studio.json").write_text('{"kind": "adapter", "base_model": "/nowhere/at/all"}')
    register(broken, "broken-run")
    scorer = tmp_path / "reward-run"  # a reward model scores answers: nothing to chat with
    (scorer / "final").mkdir(parents=True)
    (scorer / "final" / "studio.json").write_text('{"kind": "adapter", "task": "reward", "base_model": "x"}')
    register(scorer, "reward-run")
    page = ChatPage(StudioState())
    qtbot.addWidget(page)
    page.show()
    assert page.run_combo.count() == 1 and page.run_combo.currentData() == str(broken.resolve())
    assert not page.send_button.isEnabled()
    with qtbot.waitSignal(page.proc.finished, timeout=120000):
        qtbot.mouseClick(page.load_button, Qt.LeftButton)
    assert page.banner.isVisible()
    assert "/nowhere/at/all" in page.banner.text
    assert not page.send_button.isEnabled()


@pytest.mark.slow
@pytest.mark.integration
def test_chat_with_a_run_beside_its_base_model(qtbot, page, tmp_path):
    subprocess.run([sys.executable, str(ROOT / "tests" / "fixtures" / "make_chat_run.py"), str(tmp_path)],
                   check=True, capture_output=True, timeout=300)
    register(tmp_path / "run", "chat-fixture")
    page.refresh_runs()
    assert page.run_combo.count() == 1
    qtbot.mouseClick(page.load_button, Qt.LeftButton)
    assert page.busy.isVisible()
    qtbot.waitUntil(lambda: page.send_button.isEnabled(), timeout=180000)
    assert "adapter" in page.titles["tuned"].text()
    page.max_tokens.setValue(6)
    qtbot.keyClicks(page.prompt_edit, "Where should I stay in Porto?")
    qtbot.mouseClick(page.send_button, Qt.LeftButton)
    assert not page.send_button.isEnabled() and page.busy.isVisible()
    qtbot.waitUntil(lambda: len(page.history["tuned"]) == 2 and len(page.history["base"]) == 2, timeout=120000)
    qtbot.waitUntil(lambda: page.send_button.isEnabled(), timeout=5000)
    assert not page.busy.isVisible()
    tuned, base = page.history["tuned"][1]["content"], page.history["base"][1]["content"]
    assert tuned != base  # the adapter changes the answer: two different models answered
    for side in ("tuned", "base"):
        text = page.views[side].toPlainText()
        assert "Where should I stay in Porto?" in text and "6 tokens" in text
    assert not page.banner.isVisible()


def test_a_tool_call_answer_is_shown_as_a_call(page):
    """A recorded answer message from the chat process, as a model tuned for tool calling writes it."""
    page._on_message({"type": "answer", "which": "tuned", "id": 1, "tokens": 19, "seconds": 0.4,
                      "text": '{"name": "get_weather", "parameters": {"city": "Lisbon"}}'})
    shown = page.views["tuned"].toPlainText()
    assert 'Calls get_weather(city="Lisbon")' in shown and "(raw: {" in shown
    assert page.history["tuned"][-1]["content"].startswith('{"name"')  # the model's own text stays in the history
