"""``python -m studio.gui.selftest``: Qt can open and paint a window (offscreen), as one JSON line."""

from __future__ import annotations

import json


def open_window() -> dict:
    from PySide6 import __version__ as pyside_version
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication([])
    label = QLabel("Studio self-test")
    label.resize(320, 80)
    label.show()
    app.processEvents()
    painted = not label.grab().isNull()
    label.close()
    return {"ok": painted and label.width() > 0, "qt": pyside_version, "platform": app.platformName()}


if __name__ == "__main__":
    print(json.dumps(open_window()), flush=True)
