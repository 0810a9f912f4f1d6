"""A raw-text corpus in the window the `studio` command builds: the Data and Inspect pages read it as
a stream (counts over the whole file, only the first documents and blocks held), never whole."""

from __future__ import annotations

import random
import threading
import tracemalloc
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from studio.core import text_scan
from studio.core.text_stream import open_text, split_blocks
from studio.core.tokenizer import load_tokenizer
from studio.gui import tasks
from studio.gui.pages import data_work
from studio.gui.tasks import Cancelled, TaskRunner

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "demo-model"
WORDS = "the model reads every document once and cuts the stream into blocks of tokens".split()
LINES = 40_000
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """About 2 MB of one-line documents (held whole, they take tens of MB of Python objects)."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    rng = random.Random(0)
    path.write_text("".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 15))) + "\n"
                            for _ in range(LINES)), encoding="utf-8")
    return path


@pytest.fixture
def small_limits(monkeypatch):
    """What the pages keep, scaled down with the file (the same code keeps 1000 rows and 1M tokens)."""
    monkeypatch.setattr(text_scan, "ROWS_SHOWN", 100)
    monkeypatch.setattr(text_scan, "KEPT_TOKENS", 4096)
    monkeypatch.setattr(text_scan, "BLOCKS_SHOWN", 8)


def test_the_window_reads_a_large_text_file_as_a_stream_in_bounded_memory(window, qtbot, corpus, small_limits):
    size = 64
    window.state.set_field("data", "max_length", size)
    tasks.wait_idle(60)
    tracemalloc.start()
    try:
        window.state.set_field("data", "train", str(corpus))  # the Data, Inspect and Method pages all read it
        assert tasks.wait_idle(300)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    data, inspect = window.pages["Data"], window.pages["Inspect"]
    assert data.report is not None and data.report.format == "text"
    assert data.report.usable_rows == LINES and len(data.report.examples) == 100  # counted all, holds 100
    assert data.rows_model.rowCount() == 100
    assert f"{LINES:,} usable" in data.summary.text() and data.tabs.tabText(0) == f"Rows ({LINES:,}, first 100 shown)"
    held = round(LINES * window.state.config.data.eval_fraction)
    assert data.split_label.text() == f"{LINES - held:,} rows to train on, {held:,} to evaluate on (held out)"

    d = window.state.config.data
    assert d.eval_fraction > 0 and not d.eval
    # as a run cuts it: the documents held out for evaluation are in no training block
    expected = split_blocks(open_text(corpus), load_tokenizer(DEMO), size, d.eval_fraction, d.seed)[0]
    qtbot.waitUntil(lambda: inspect.row_result is not None and inspect.batch is not None, timeout=60_000)
    blocks = inspect.sources.blocks_for(_encoder(window))
    assert (blocks.documents, blocks.tokens, blocks.count, blocks.remainder) == \
           (expected.documents, expected.tokens, expected.count, expected.remainder)
    assert len(blocks.blocks) == 8 and len(inspect.sources.report.examples) < 500
    assert [b.input_ids for b in blocks.blocks] == [b.input_ids for b in expected.blocks[:8]]
    assert f"block 1 of {expected.count:,} (the first 8 shown)" in inspect.row_info.text()
    assert "of the first" in inspect.row_spin.suffix()
    qtbot.waitUntil(lambda: inspect.stats is not None, timeout=60_000)
    kept = len(inspect.sources.report.examples)
    assert inspect.stats.sequences == kept and f"Lengths of the first {kept:,} of {LINES:,} documents" in \
        inspect.stats_note.text()
    # Held whole, 40,000 documents are tens of MB of Python objects; streamed, the pages hold a few hundred.
    assert peak < corpus.stat().st_size * 4, f"peak {peak / 1e6:.1f} MB while reading a {corpus.stat().st_size / 1e6:.1f} MB file"


def _encoder(window):
    from studio.core.encoding import Encoder
    from studio.gui.pages.inspect_work import encode_options

    return Encoder(window.pages["Inspect"].sources.tokenizer, encode_options(window.state.config))


def _until_cancelled(progress, started: threading.Event, seen: list) -> None:
    """A pass that never ends on its own: it reports progress until the progress call cancels it."""
    try:
        while True:
            progress(1, 2)
            started.set()
            threading.Event().wait(0.01)
    except Cancelled:
        seen.append("cancelled")
        raise


def test_stop_on_the_data_page_ends_the_pass_under_way(window, qtbot, corpus, monkeypatch):
    started, ended = threading.Event(), []

    def endless(d, progress):  # a file that never ends: only Stop ends this pass
        _until_cancelled(progress, started, ended)

    monkeypatch.setattr(data_work, "load", endless)
    data = window.show_page("Data")
    window.state.set_field("data", "train", str(corpus))
    assert started.wait(30)
    qtbot.waitUntil(data.busy.stop_button.isVisible, timeout=30_000)
    data.busy.stop_button.click()
    qtbot.waitUntil(lambda: bool(ended), timeout=30_000)
    qtbot.waitUntil(lambda: not data.busy.isVisible(), timeout=30_000)
    assert "Reading stopped" in data.summary.text() and data.rows_model.rowCount() == 0
    monkeypatch.undo()  # the real reader again
    assert data.read_again.isVisible()
    qtbot.mouseClick(data.read_again, Qt.LeftButton)
    assert tasks.wait_idle(120) and not data.read_again.isVisible()
    assert data.report is not None and data.report.usable_rows == LINES and not data.busy.isVisible()


def test_a_newer_request_cancels_the_pass_it_replaces(qtbot):
    runner, seen, started = TaskRunner(), [], threading.Event()

    def endless(progress):
        _until_cancelled(progress, started, seen)

    runner.submit("load", endless, lambda r: seen.append("delivered"), lambda e: seen.append("error"),
                  lambda d, t: None)
    assert started.wait(30)
    runner.submit("load", lambda progress: "second", seen.append, None, lambda d, t: None)
    qtbot.waitUntil(lambda: "second" in seen and "cancelled" in seen, timeout=30_000)
    assert tasks.wait_idle(30) and "error" not in seen and "delivered" not in seen
