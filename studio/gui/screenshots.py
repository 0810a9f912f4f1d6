"""Save every page of the window as PNGs at the sizes people use, and find clipped button text.

``python -m studio.gui.screenshots OUTDIR [--size 1024x700 --size 1400x900]``

Used to look at what we build: the window starts with the demo preselected, background
loads are awaited, then each page is shown in turn and grabbed, at each size. A button whose
text is wider than the button (Qt cuts it, e.g. "ort adapt" for "Export adapter…") is listed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from studio.gui import tasks

#: seconds to wait for a page's background work before grabbing it anyway
PAGE_WAIT_S = 30.0
SIZES = ((1024, 700), (1400, 900))


def clipped_buttons(widget) -> list[str]:
    """Visible buttons under ``widget`` whose text is wider (QFontMetrics) than the part of the
    button the style draws the text in (inside its border and padding)."""
    from PySide6.QtWidgets import QPushButton, QStyle, QStyleOptionButton

    out = []
    for button in widget.findChildren(QPushButton):
        if not button.isVisibleTo(widget) or not button.text():
            continue
        option = QStyleOptionButton()
        button.initStyleOption(option)
        room = button.style().subElementRect(QStyle.SubElement.SE_PushButtonContents, option, button).width()
        needed = button.fontMetrics().horizontalAdvance(button.text().replace("&", ""))
        if not button.icon().isNull():
            needed += button.iconSize().width() + 4
        if needed > room:
            out.append(f"{button.objectName() or button.text()!r}: {button.text()!r} needs {needed} px, has {room}")
    return out


def save_pages(window, outdir: str | Path, sizes=SIZES) -> list[Path]:
    """Show each page of ``window`` at each size and save it as ``WxH-NN-name.png`` in ``outdir``."""
    from studio.gui.app import save_screenshot

    outdir = Path(outdir)
    saved = []
    for width, height in sizes:
        window.resize(width, height)
        for number, name in enumerate(window.pages, start=1):
            window.show_page(name)
            tasks.wait_idle(PAGE_WAIT_S)
            saved.append(save_screenshot(window, outdir / f"{width}x{height}-{number:02d}-{name.lower()}.png"))
    return saved


def _size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.gui.screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--size", type=_size, action="append", help="WIDTHxHEIGHT (default: 1024x700 and 1400x900)")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from studio.gui.app import application, build_window

    app = application()  # noqa: F841 (kept alive while pages are grabbed)
    window = build_window()
    window.show()
    for path in save_pages(window, args.outdir, args.size or SIZES):
        print(path)
    for width, height in args.size or SIZES:
        window.resize(width, height)
        for name, page in window.pages.items():
            window.show_page(name)
            for problem in clipped_buttons(page):
                print(f"{width}x{height} {name}: {problem}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
