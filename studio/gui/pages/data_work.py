"""The Data page's background work: the training file (and eval file) read as the worker reads them.

A raw-text file that can be read as a stream (:func:`studio.core.text_stream.open_text`) is never
loaded whole: one pass counts its rows, documents and bad rows and keeps the first documents to
show (:func:`studio.core.text_scan.scan`), reporting how far it is through the file. Every other
file is loaded by :func:`studio.core.data.load_split`, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from studio.core import data as datamod


@dataclass
class Loaded:
    """What the page shows of the training data.

    Attributes:
        report: the training file's report (for raw text read as a stream: its first documents and
            the counts of the whole file).
        train: rows to train on.
        eval: rows to evaluate on.
        eval_file: the evaluation rows come from an eval file (not held out).
    """

    report: datamod.DataReport
    train: int
    eval: int
    eval_file: bool


def load(d, progress: Callable[[int, int], None] | None = None) -> Loaded:
    """Read ``d`` (the config's data section) as the worker will read it."""
    from studio.core.text_scan import scan
    from studio.core.text_stream import open_text

    source = open_text(d.train, d.format, dict(d.columns) or None, d.text_split)
    if source is None:
        split = datamod.load_split(d.train, d.eval or None, d.eval_fraction, d.seed, d.format, dict(d.columns),
                                   text_split=d.text_split)
        return Loaded(split.train_report, len(split.train), len(split.eval), split.eval_report is not None)
    report = scan(source, progress=progress).report()
    if d.eval:
        return Loaded(report, report.usable_rows, _count(d, progress), True)
    held = datamod.held_count(report.usable_rows, d.eval_fraction)
    return Loaded(report, report.usable_rows - held, held, False)


def _count(d, progress) -> int:
    """Usable rows of the eval file, counted as a stream when it is raw text."""
    from studio.core.text_scan import scan
    from studio.core.text_stream import open_text

    source = open_text(d.eval, d.format, dict(d.columns) or None, d.text_split)
    if source is None:
        return len(datamod.load_examples(d.eval, d.format, dict(d.columns) or None, d.text_split).examples)
    return scan(source, rows=0, progress=progress).documents
