"""Start the studio window: application, style, the demo preselected, first paint measured.

The window shows the demo model, the sample dataset and the demo preset so that pressing
Train works with no other click. Nothing here imports torch, transformers, trl or peft:
heavy work happens in background threads over the pure core or in worker processes, and
the window appears in well under a second.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

from studio.core import config as configmod
from studio.core.config import RunConfig
from studio.core.errors import StudioError
from studio.core.models import resolve_config_paths, resource_path
from studio.core.runs import process_age_s
from studio.gui import collector, tasks

log = logging.getLogger("studio.gui")

DEMO_PRESET = "resources/presets/demo.yaml"
STYLE = "resources/style.qss"
#: longest wait for start-up background loads before a screenshot is taken anyway
SCREENSHOT_WAIT_S = 20.0
FIRST_PAINT_FALLBACK_MS = 2000


def initial_config() -> RunConfig:
    """The demo preset with its paths made absolute; defaults if the preset is missing or bad."""
    preset = resource_path(DEMO_PRESET)
    cfg = RunConfig()
    if preset.exists():
        try:
            cfg = configmod.load(preset)
        except StudioError as exc:
            log.warning("demo preset %s not usable: %s", preset, exc)
    return resolve_config_paths(cfg)


def application() -> QApplication:
    """The QApplication with Studio's style sheet applied."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Studio")
    app.setOrganizationName("Studio")
    collector.start(app)  # garbage is collected on this thread only, never in a pool thread
    style = resource_path(STYLE)
    if style.exists():
        icons = resource_path("resources/icons").resolve().as_posix()
        app.setStyleSheet(style.read_text(encoding="utf-8").replace("@ICONS@", icons))
    return app


def _after_first_paint(window, standby: bool = True) -> None:
    window.build_remaining_pages()
    tasks.release()
    settle_heap()
    if standby and window.runs_controller is not None:
        window.runs_controller.enable_standby()  # a worker with its imports done waits for Train


def settle_heap() -> None:
    """Take what start-up built (modules, pages, widgets) out of the garbage collector's sight.

    A full collection looks at every tracked object; after PySide6 and pyqtgraph load there are
    some 70,000, and it takes 20-30 ms on a 2-core machine: a visible hitch while a run streams.
    Frozen, they are never scanned again (they live as long as the window anyway), and later
    collections look only at objects made since.
    """
    gc.collect()
    gc.freeze()


class FirstPaint(QObject):
    """Records when a widget is first painted, in seconds since the process started.

    Args:
        widget: the widget watched.
        then: called (once, from the event loop) after the first paint.
    """

    def __init__(self, widget, then=None) -> None:
        super().__init__(widget)
        self._then = then
        self.seconds: float | None = None
        self._offset = process_age_s() - time.perf_counter()
        widget.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt naming)
        if self.seconds is None and event.type() == QEvent.Paint:
            self.seconds = self._offset + time.perf_counter()
            obj.removeEventFilter(self)
            if self._then is not None:
                QTimer.singleShot(0, self._then)
            log.info("first paint %.0f ms after process start", self.seconds * 1000)
        return False


def build_window(cfg: RunConfig | None = None, defer_pages: bool = False):
    """Create the state and the main window (not shown); see MainWindow for ``defer_pages``."""
    from studio.gui.main_window import MainWindow
    from studio.gui.state import StudioState

    state = StudioState(cfg or initial_config())
    window = MainWindow(state, defer_pages=defer_pages)
    window.resize(1280, 800)
    window.restore_layout()
    return window


def save_screenshot(window, path: str | Path) -> Path:
    """Grab the window into a PNG; raises StudioError when it cannot be written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(path), "PNG"):
        raise StudioError(f"could not write the screenshot to {path}", "choose a writable path ending in .png")
    return path


def _choose_platform(screenshot: bool) -> None:
    """Render off screen for screenshots; say plainly when there is no display to open on."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform != "linux"
    if screenshot:
        # A screenshot needs no screen; offscreen also gives identical pictures everywhere.
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    elif not has_display:
        raise StudioError("there is no display to open the Studio window on (DISPLAY is not set)",
                          "run Studio on a desktop session, use `studio --screenshot out.png`, "
                          "or the headless commands such as `studio train`")


def open_window(standby: bool = True):
    """Build and show the window as ``studio`` does: first paint, then the other pages and loads.

    Args:
        standby: start a worker ahead of time for the first run (a screenshot trains nothing).

    Returns the window and its :class:`FirstPaint` probe.
    """
    # Paint first, then build the other pages and start background loads.
    tasks.hold()
    window = build_window(defer_pages=True)
    probe = FirstPaint(window, then=lambda: _after_first_paint(window, standby))
    window.show()
    # In case no paint ever arrives (a minimised start, an odd platform), go on anyway.
    QTimer.singleShot(FIRST_PAINT_FALLBACK_MS, lambda: _after_first_paint(window, standby))
    return window, probe


def main(screenshot: str | None = None) -> int:
    """Open the window; with ``screenshot``, render it after start-up to a PNG and exit 0."""
    _choose_platform(bool(screenshot))
    app = application()
    window, probe = open_window(standby=not screenshot)
    if screenshot:
        deadline = time.monotonic() + 5
        while probe.seconds is None and time.monotonic() < deadline:
            app.processEvents()
        _after_first_paint(window, standby=False)
        tasks.wait_idle(SCREENSHOT_WAIT_S)
        out = save_screenshot(window, screenshot)
        print(f"screenshot written to {out}")
        if probe.seconds is not None:
            print(f"first paint {probe.seconds * 1000:.0f} ms after process start")
        return 0
    return app.exec()
