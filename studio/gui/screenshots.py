"""Save every page of the window as a 1280x800 PNG: ``python -m studio.gui.screenshots OUTDIR``.

Used to look at what we build: the window starts with the demo preselected, background
loads are awaited, then each page is shown in turn and grabbed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from studio.gui import tasks

#: seconds to wait for a page's background work before grabbing it anyway
PAGE_WAIT_S = 30.0


def save_pages(window, outdir: str | Path) -> list[Path]:
    """Show each page of ``window`` and save it as ``NN-name.png`` in ``outdir``."""
    from studio.gui.app import save_screenshot

    outdir = Path(outdir)
    saved = []
    for number, name in enumerate(window.pages, start=1):
        window.show_page(name)
        tasks.wait_idle(PAGE_WAIT_S)
        saved.append(save_screenshot(window, outdir / f"{number:02d}-{name.lower()}.png"))
    return saved


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m studio.gui.screenshots OUTDIR", file=sys.stderr)
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from studio.gui.app import application, build_window

    app = application()  # noqa: F841 (kept alive while pages are grabbed)
    window = build_window()
    window.show()
    for path in save_pages(window, argv[0]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
