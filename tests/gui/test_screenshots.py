"""Every page at 1024x700 and 1400x900: saved as PNGs, no button text cut, and what read badly fixed."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QLabel, QWidget

from studio.core import config as configmod
from studio.core.runs import Registry, runs_root
from studio.gui import tasks
from studio.gui.app import application, build_window
from studio.gui.screenshots import SIZES, clipped_buttons, save_pages
from studio.gui.widgets.token_view import ROLE_COLOURS

ROOT = Path(__file__).resolve().parents[2]
STREAM = ROOT / "tests" / "fixtures" / "streams" / "recorded_worker_completed.jsonl"
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@pytest.fixture
def window(qtbot):
    """The window with a finished run opened on the Train and Runs pages (as after a first run)."""
    run_dir = runs_root() / "demo-lora-20261129-120000"
    run_dir.mkdir(parents=True)
    configmod.save(configmod.load(ROOT / "resources" / "presets" / "demo.yaml"), run_dir / "config.yaml")
    shutil.copy(STREAM, run_dir / "events.jsonl")
    (run_dir / "worker.log").write_text("INFO " + "a long library warning that must wrap in the log pane " * 4)
    registry = Registry()
    registry.update(registry.add(run_dir, None, "demo-lora"), status="completed", started=time.time() - 60,
                    ended=time.time())
    app = application()  # Studio's style sheet, as `studio` has it: padding decides what fits
    w = build_window()
    qtbot.addWidget(w)
    w.show()
    runs = w.show_page("Runs")
    runs.refresh()
    runs.select_runs([str(run_dir.resolve())])
    w.pages["Train"].watch(w.runs_controller.open_run(str(run_dir.resolve())))
    qtbot.waitUntil(lambda: runs.view.status_label.text() == "Completed", timeout=20_000)
    yield w
    tasks.wait_idle(30)
    app.setStyleSheet("")  # other tests run with Qt's own style


def test_every_page_at_both_sizes_keeps_its_button_text_whole(window, qtbot, tmp_path):
    saved = save_pages(window, tmp_path)
    assert len(saved) == len(SIZES) * len(window.pages)
    print(f"\nscreenshots in {tmp_path}")
    problems = []
    for width, height in SIZES:
        window.resize(width, height)
        for name, page in window.pages.items():
            window.show_page(name)
            qtbot.wait(20)
            problems += [f"{width}x{height} {name}: {p}" for p in clipped_buttons(page)]
    assert problems == [], "\n".join(problems)
    image = QImage(str(saved[0]))
    assert (image.width(), image.height()) == SIZES[0]


def test_what_read_badly_at_1024x700_reads_well(window, qtbot):
    window.resize(1024, 700)
    runs = window.show_page("Runs")
    qtbot.wait(50)
    loss = runs.view.panel.loss
    assert loss.height() >= 150  # it was 70 px
    legend, box = loss._legend.sceneBoundingRect(), loss.getViewBox().sceneBoundingRect()
    assert legend.bottom() <= box.top() + 2  # above the curves, not over them
    assert runs.view.log_view.lineWrapMode() == runs.view.log_view.LineWrapMode.WidgetWidth
    assert "checkpoint saved" not in runs.view.progress_bar.format()
    legend_labels = window.pages["Inspect"].findChild(QWidget, "tokenLegend").findChildren(QLabel)
    window.show_page("Inspect")
    qtbot.wait(50)
    assert [lb.text() for lb in legend_labels if lb.width() < lb.sizeHint().width()] == []
    method = window.show_page("Method")
    window.state.set_field("method", "name", "full")
    note = method.form.findChild(QLabel, "methodNote")
    assert note.isVisible() and "Nothing to set" in note.text()


def test_system_and_user_chips_differ_in_hue():
    system, user = QColor(ROLE_COLOURS["system"]), QColor(ROLE_COLOURS["user"])
    gap = abs(system.hslHue() - user.hslHue())
    assert min(gap, 360 - gap) >= 60
