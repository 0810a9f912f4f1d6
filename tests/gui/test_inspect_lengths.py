"""The Lengths tab measures a dataset in the background: progress shown, the window answering, cancel possible."""

from __future__ import annotations

import json
import threading

import pytest
from PySide6.QtCore import Qt

from studio.core import measuring

# The offscreen platform says this when a top-level window is shown; it is not about our code.
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
ROWS = 1200


@pytest.fixture
def gate(monkeypatch):
    """Measuring in chunks of 100 rows that holds before the test file's second chunk until the test
    opens the gate (the first chunk's progress has been sent by then)."""
    monkeypatch.setattr(measuring, "CHUNK", 100)
    opened, held = threading.Event(), threading.Event()
    record = measuring._Recorder.record_all

    def gated(self, layouts, future):
        if "Question 100?" in layouts[0].text:
            held.set()
            opened.wait(60)
        return record(self, layouts, future)

    monkeypatch.setattr(measuring._Recorder, "record_all", gated)
    return opened, held


def chat_file(path, rows: int = ROWS):
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            turns = [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]
            fh.write(json.dumps({"messages": turns}) + "\n")
    return path


def open_lengths(qtbot, window, path):
    data = window.show_page("Data")
    data.picker.edit.clear()
    qtbot.keyClicks(data.picker.edit, str(path))
    qtbot.keyClick(data.picker.edit, Qt.Key_Return)
    page = window.show_page("Inspect")
    page.tabs.setCurrentIndex(2)
    return page


def test_measuring_shows_progress_and_cancel_stops_it_while_the_window_answers(window, qtbot, tmp_path, gate,
                                                                             studio_home):
    opened, held = gate
    entries = lambda: set((studio_home / "cache" / "stats").glob("*.json"))  # noqa: E731
    before = entries()
    page = open_lengths(qtbot, window, chat_file(tmp_path / "chats.jsonl"))
    bar = page.stats_busy.findChild(type(page.stats_busy._bar), "statsBusyBar")
    qtbot.waitUntil(lambda: held.is_set(), timeout=60_000)  # the worker thread holds in the second chunk
    qtbot.waitUntil(lambda: bar.maximum() == ROWS and bar.value() == 100, timeout=10_000)
    assert page.stats_busy.isVisible() and "100 of 1,200 rows" in page.stats_busy._label.text()
    # The window answers while the rows are measured: the Row tab shows a row, the button is clickable.
    page.tabs.setCurrentIndex(0)
    qtbot.mouseClick(page.row_spin, Qt.LeftButton)
    page.row_spin.setValue(7)
    qtbot.waitUntil(lambda: page.row_result is not None and page.row_result.view.encoded.row == 7, timeout=30_000)
    page.tabs.setCurrentIndex(2)
    assert page.stats_button.isVisible() and page.stats_button.text() == "Cancel"
    qtbot.mouseClick(page.stats_button, Qt.LeftButton)
    opened.set()
    qtbot.waitUntil(lambda: page.stats_button.text() == "Measure again" and page.stats_button.isEnabled(),
                    timeout=30_000)
    assert page.stats is None and not page.stats_busy.isVisible() and "cancelled" in page.stats_note.text()
    assert entries() == before  # nothing half-measured is kept
    qtbot.mouseClick(page.stats_button, Qt.LeftButton)  # measure again, to the end
    qtbot.waitUntil(lambda: page.stats is not None, timeout=60_000)
    assert page.stats.sequences == ROWS and not page.stats_button.isVisible()
