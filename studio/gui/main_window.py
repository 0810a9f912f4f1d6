"""The studio window: a sidebar of steps and the page for the chosen step.

Pages, in the order a person sets up and watches a run: Model, Data, Method, Inspect
(template and padding inspector), Train, Runs, Chat. The window owns the runs controller
(which owns the training processes) and asks, on close, what to do with runs still training:
they outlive the window unless the person stops them.
"""

from __future__ import annotations

import importlib
import logging

from PySide6.QtCore import QPoint, QSettings, QSize, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QMainWindow, QMessageBox, QStackedWidget,
                               QVBoxLayout, QWidget)

from studio.core.errors import StudioError
from studio.core.runs import studio_home
from studio.gui.menus import install_menus
from studio.gui.setting_links import find_control, reveal
from studio.gui.state import StudioState
from studio.gui.widgets.common import page_layout
from studio.gui.widgets.wheel import guard_wheel

log = logging.getLogger("studio.gui")

#: (sidebar label, module, class, needs the runs controller, tooltip)
PAGES = (
    ("Model", "studio.gui.pages.model_page", "ModelPage", False, "Pick the model to fine-tune"),
    ("Data", "studio.gui.pages.data_page", "DataPage", False, "Pick and check the training data"),
    ("Method", "studio.gui.pages.method_page", "MethodPage", False, "Choose the method and its settings"),
    ("Inspect", "studio.gui.pages.inspect_page", "InspectPage", False,
     "See exactly which tokens the model is trained on: template, loss mask, padding"),
    ("Train", "studio.gui.pages.train_page", "TrainPage", True, "Start a run and watch it live"),
    ("Runs", "studio.gui.pages.runs_page", "RunsPage", True, "Every run, live or finished; compare and resume"),
    ("Chat", "studio.gui.pages.chat_page", "ChatPage", True, "Talk to a trained model and export it"),
)


def window_settings() -> QSettings:
    """The window's remembered layout, beside the run registry (so STUDIO_HOME moves it too)."""
    return QSettings(str(studio_home() / "window.ini"), QSettings.IniFormat)


class MissingPage(QWidget):
    """Stands in for a page whose module could not be loaded, saying so plainly."""

    def __init__(self, title: str, reason: str, parent=None) -> None:
        super().__init__(parent)
        layout = page_layout(self, title, f"This page is not available in this build: {reason}")
        layout.addStretch(1)


def _make_runs_controller(window):
    try:
        from studio.gui.runner import RunsController
    except ImportError as exc:
        log.warning("runs controller unavailable: %s", exc)
        return None
    return RunsController(parent=window)


class MainWindow(QMainWindow):
    """Sidebar (objectName ``nav``) plus a stack of pages (objectName ``pages``)."""

    def __init__(self, state: StudioState, parent=None, defer_pages: bool = False) -> None:
        """Build the window; with ``defer_pages`` only the first page is built now.

        The rest are built by :meth:`build_remaining_pages`, which ``studio`` calls right after the
        first paint so the window appears at once.
        """
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle("Studio — fine-tune language models")
        # An explicit minimum keeps the window's size steady while pages fill in (otherwise
        # every longer label would change it) and keeps the pages usable at the smallest size.
        self.setMinimumSize(960, 640)
        guard_wheel()  # the wheel scrolls pages instead of changing the box under the pointer
        self.state = state
        self.runs_controller = _make_runs_controller(self)
        self.nav = QListWidget()
        self.nav.setObjectName("nav")
        self.nav.setAccessibleName("Steps")
        self.nav.setFixedWidth(170)
        self.stack = QStackedWidget()
        self.stack.setObjectName("pages")
        self.pages: dict[str, QWidget] = {}
        self._deferred = defer_pages
        for i, (label, module, cls, needs_runs, tip) in enumerate(PAGES):
            page = QWidget() if defer_pages and i else self._build_page(label, module, cls, needs_runs)
            self._add_page(label, page, tip)
        if not defer_pages:
            self._connect_pages()
        self.nav.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.nav.setCurrentRow(0)
        self.setCentralWidget(self._layout())
        self.actions_by_name = install_menus(self)
        if self.runs_controller is not None and hasattr(self.runs_controller, "reattach"):
            try:
                self.runs_controller.reattach()
            except StudioError as exc:  # an unusable registry: the window opens, the Runs page says why
                log.warning("could not follow running runs: %s", exc)

    def _layout(self) -> QWidget:
        side = QWidget()
        side.setObjectName("sidebar")
        side.setStyleSheet("QWidget#sidebar { background: #1f2933; }")
        col = QVBoxLayout(side)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        title = QLabel("Studio")
        title.setObjectName("appTitle")
        col.addWidget(title)
        col.addWidget(self.nav, 1)
        host = QWidget()
        row = QHBoxLayout(host)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(side)
        row.addWidget(self.stack, 1)
        return host

    def _build_page(self, label: str, module: str, cls: str, needs_runs: bool) -> QWidget:
        try:
            page_cls = getattr(importlib.import_module(module), cls)
            if needs_runs:
                if self.runs_controller is None:
                    return MissingPage(label, "the runs controller could not be loaded")
                return page_cls(self.state, self.runs_controller)
            return page_cls(self.state)
        except (ImportError, AttributeError) as exc:
            log.warning("page %s unavailable: %s", label, exc)
            return MissingPage(label, str(exc))

    def _connect_pages(self) -> None:
        """Links between pages (only where both pages are built)."""
        data, inspect = self.pages.get("Data"), self.pages.get("Inspect")
        if hasattr(data, "inspect_requested") and hasattr(inspect, "show_row"):
            data.inspect_requested.connect(lambda row: (self.show_page("Inspect"), inspect.show_row(row)))
        method = self.pages.get("Method")
        if hasattr(method, "setting_requested"):
            method.setting_requested.connect(self.go_to_setting)

    def build_remaining_pages(self) -> None:
        """Replace the placeholders left by ``defer_pages`` with the real pages (idempotent)."""
        if not self._deferred:
            return
        self._deferred = False
        current = self.stack.currentIndex()
        for i, (label, module, cls, needs_runs, _) in enumerate(PAGES[1:], start=1):
            placeholder = self.stack.widget(i)
            page = self._build_page(label, module, cls, needs_runs)
            self.stack.insertWidget(i, page)
            self.stack.removeWidget(placeholder)
            placeholder.deleteLater()
            self.pages[label] = page
        self.stack.setCurrentIndex(current)
        self._connect_pages()

    def _add_page(self, label: str, page: QWidget, tooltip: str) -> None:
        self.pages[label] = page
        self.stack.addWidget(page)
        self.nav.addItem(label)
        item = self.nav.item(self.nav.count() - 1)
        item.setToolTip(tooltip)
        item.setData(Qt.AccessibleTextRole, label)

    def show_page(self, label: str) -> QWidget:
        """Switch to a page by its sidebar label and return it."""
        self.build_remaining_pages()
        self.nav.setCurrentRow(list(self.pages).index(label))
        return self.pages[label]

    def go_to_setting(self, path: str) -> bool:
        """Show the control of a dotted setting (``data.max_length``) with the focus on it."""
        self.build_remaining_pages()
        found = find_control(self.pages, path)
        if found is None:
            return False
        label, control = found
        self.show_page(label)
        reveal(control)
        return True

    # -- menu actions ----------------------------------------------------------------------------

    def start_training(self) -> None:
        """Training > Start: the Train page's Train button, if it may be pressed now."""
        train = self.show_page("Train")
        if getattr(train, "train_button", None) is not None and train.train_button.isEnabled():
            train.start()

    def stop_training(self) -> None:
        """Training > Stop: save a checkpoint and stop the run the Train page shows."""
        train = self.show_page("Train")
        if getattr(train, "stop_button", None) is not None and train.stop_button.isEnabled():
            train.stop()

    def show_about(self) -> None:
        from studio.gui.about import AboutDialog

        AboutDialog(self).exec()

    def check_installation(self):
        """Help > Check installation: the self-test in a background process, in a dialog."""
        from studio.gui.about import SelfTestDialog

        dialog = SelfTestDialog(self)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.show()
        return dialog

    # -- remembered between sessions -------------------------------------------------------------

    def restore_layout(self) -> None:
        """Size, position and page of the last session (kept in STUDIO_HOME/window.ini)."""
        settings = window_settings()
        size, pos = settings.value("size"), settings.value("pos")
        if isinstance(size, QSize) and size.isValid():
            self.resize(size)
        if isinstance(pos, QPoint) and QGuiApplication.screenAt(pos) is not None:  # a screen still there
            self.move(pos)
        if settings.value("maximized", False, bool):
            self.setWindowState(self.windowState() | Qt.WindowMaximized)
        page = settings.value("page", "", str)
        if page in self.pages:
            self.nav.setCurrentRow(list(self.pages).index(page))

    def save_layout(self) -> None:
        settings = window_settings()
        maximized = self.isMaximized()
        settings.setValue("maximized", maximized)
        if not maximized:  # the size to come back to is the normal one
            settings.setValue("size", self.size())
            settings.setValue("pos", self.pos())
        settings.setValue("page", list(self.pages)[max(self.nav.currentRow(), 0)])
        settings.sync()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        if self._confirm_close():
            if hasattr(self.runs_controller, "close_standby"):
                self.runs_controller.close_standby()
            self.save_layout()
            event.accept()
        else:
            event.ignore()

    def _confirm_close(self) -> bool:
        """Ask what to do with live runs; True when the window may close."""
        live = list(self.runs_controller.live_runs()) if self.runs_controller is not None else []
        if not live:
            return True
        box = QMessageBox(QMessageBox.Question, "Runs still training",
                          f"{len(live)} run(s) are still training. They keep running in the background "
                          "and reappear here when you open Studio again, unless you stop them now "
                          "(stopping saves a checkpoint you can resume from).", parent=self)
        box.setObjectName("closeRunsDialog")
        leave = box.addButton("Leave running", QMessageBox.AcceptRole)
        leave.setObjectName("leaveRunningButton")
        stop = box.addButton("Stop them", QMessageBox.DestructiveRole)
        stop.setObjectName("stopRunsButton")
        box.addButton(QMessageBox.Cancel)
        box.setDefaultButton(leave)
        box.exec()
        if box.clickedButton() is stop:
            self.runs_controller.stop_all()
        elif box.clickedButton() is leave and hasattr(self.runs_controller, "detach_all"):
            self.runs_controller.detach_all()
        return box.clickedButton() in (leave, stop)
