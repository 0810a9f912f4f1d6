"""The window's menu bar and keyboard shortcuts: File, Go, Training and Help.

Shortcuts are the platform's own where Qt knows one (``QKeySequence.StandardKey``: Open, Save,
Quit, HelpContents...), so Ctrl+Q is Cmd+Q on macOS and F1 opens the help everywhere. Pages are
one keystroke away (Ctrl+1 to Ctrl+7), and so are starting and stopping training (F5, Shift+F5).
"""

from __future__ import annotations

import importlib.util

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence

from studio.core.models import REPO_ROOT

#: The documentation a person reads first: the project's README next to docs/.
HELP_FILE = REPO_ROOT / "README.md"
#: F5 / Shift+F5 start and stop, as in IDEs (Ctrl+Enter is the Chat page's Send).
START_KEYS = ("F5",)
STOP_KEYS = ("Shift+F5",)


def _action(window, menu, text: str, name: str, slot, keys=(), tip: str = "", role=None) -> QAction:
    action = QAction(text, window)
    action.setObjectName(name)
    sequences = []
    for key in keys:
        sequences += QKeySequence.keyBindings(key) if isinstance(key, QKeySequence.StandardKey) else [QKeySequence(key)]
    action.setShortcuts(sequences)
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(tip)
    if role is not None:
        action.setMenuRole(role)
    action.triggered.connect(slot)
    menu.addAction(action)
    window.addAction(action)  # shortcuts work whichever page has the focus
    return action


def install_menus(window) -> dict[str, QAction]:
    """Build the menu bar of ``window`` (a MainWindow); returns the actions by objectName."""
    bar = window.menuBar()
    actions: dict[str, QAction] = {}

    def add(menu, *args, **kwargs):
        action = _action(window, menu, *args, **kwargs)
        actions[action.objectName()] = action

    file_menu = bar.addMenu("&File")
    add(file_menu, "&Open config…", "openConfigAction", lambda: window.show_page("Method")._load_dialog(),
        (QKeySequence.StandardKey.Open,), "Load a run configuration (YAML)")
    add(file_menu, "&Save config…", "saveConfigAction", lambda: window.show_page("Method")._save_dialog(),
        (QKeySequence.StandardKey.Save,), "Save the current settings as a YAML file")
    file_menu.addSeparator()
    # Windows has no standard Quit key; Ctrl+Q is what people expect there too.
    quit_keys = QKeySequence.keyBindings(QKeySequence.StandardKey.Quit) or [QKeySequence("Ctrl+Q")]
    add(file_menu, "&Quit", "quitAction", window.close, quit_keys, "Close Studio (runs keep training)",
        role=QAction.MenuRole.QuitRole)

    go_menu = bar.addMenu("&Go")
    for number, label in enumerate(window.pages, start=1):
        add(go_menu, f"&{number} {label}", f"go{label}Action", lambda _=False, p=label: window.show_page(p),
            (f"Ctrl+{number}",), f"Show the {label} page")

    train_menu = bar.addMenu("&Training")
    add(train_menu, "&Start training", "startTrainingAction", window.start_training, START_KEYS,
        "Start a run with the current settings")
    add(train_menu, "S&top training", "stopTrainingAction", window.stop_training, STOP_KEYS,
        "Save a checkpoint and stop the run on the Train page")

    help_menu = bar.addMenu("&Help")
    add(help_menu, "Studio &help", "helpAction", open_help, (QKeySequence.StandardKey.HelpContents,),
        "Open Studio's documentation")
    add(help_menu, "&Check installation…", "checkInstallationAction", window.check_installation, (),
        "Run Studio's self-test: PyTorch, the GPU, a window and two training steps")
    help_menu.addSeparator()
    add(help_menu, "&About Studio", "aboutAction", window.show_about, (), "Version, libraries and folders",
        role=QAction.MenuRole.AboutRole)
    return actions


def open_help() -> bool:
    """Open the documentation in the system's viewer for Markdown files (or the browser)."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(HELP_FILE)))


def self_test_available() -> bool:
    """Whether this build has ``studio --self-test`` (the installer's check of the installation)."""
    return importlib.util.find_spec("studio.cli.selftest") is not None
