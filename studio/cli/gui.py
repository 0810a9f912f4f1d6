"""`studio` / `studio gui`: open the window; `studio --screenshot PATH` renders it to a PNG."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--screenshot", metavar="PATH",
                        help="render the window after start-up (background loads finished) to a PNG and exit")


def run(args) -> int:
    # Imported here so `studio train --help` and friends never load Qt.
    from studio.gui.app import main

    return main(screenshot=getattr(args, "screenshot", None))
