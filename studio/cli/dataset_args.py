"""The model/data arguments `studio preview` and `studio inspect` share, and their loading.

Both commands take a model (or tokenizer-only) folder and a data file, load them with the core
loaders and stop with a :class:`~studio.core.errors.StudioError` (printed as message + hint by
``studio.cli.main``, exit 2) when either is unusable. Heavy work stays inside functions so
``studio --help`` starts at once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataclasses import fields

from studio.core.config import LOSS_OPTIONS, DataConfig
from studio.core.errors import DataError

#: the formats a run config accepts (one list for the config, the window and these commands)
FORMATS = next(f.metadata["choices"] for f in fields(DataConfig) if f.name == "format")
#: bad rows listed one by one before the rest are only counted
BAD_ROWS_SHOWN = 20


def add_dataset_arguments(parser) -> None:
    """``--model``, ``--data``, ``--format``, ``--columns``, ``--template``, ``--loss``, ``--max-length``,
    ``--truncation-side``."""
    parser.add_argument("--model", required=True, metavar="PATH",
                        help="model folder, or a folder holding only the tokenizer files (tokenizer.json ...)")
    parser.add_argument("--data", required=True, metavar="FILE",
                        help="dataset file (JSONL, JSON, CSV, Parquet, TXT) or a saved Hugging Face dataset folder")
    parser.add_argument("--format", default="auto", choices=FORMATS, help="dataset format (default: detect it)")
    parser.add_argument("--columns", default=None, type=column_mapping, metavar="FIELD=COLUMN,...",
                        help="use the file's own column names, e.g. messages=dialog, instruction=question,output=answer, "
                             "label=kto_tag (unpaired KTO), tools=functions or text=content (raw text)")
    parser.add_argument("--text-split", default="line", choices=("line", "paragraph", "file"),
                        help="how a .txt file is cut into documents (default: each non-empty line)")
    parser.add_argument("--template", default="auto", metavar="NAME",
                        help="chat template: auto (the model's own) or a built-in: llama3, llama3.1, chatml, "
                             "mistral, qwen2.5, qwen3, gemma, gemma3, phi3, deepseek, deepseek-r1")
    parser.add_argument("--loss", default="assistant", choices=LOSS_OPTIONS,
                        help="which tokens carry loss (default: every assistant turn)")
    parser.add_argument("--max-length", type=positive, default=None, metavar="N",
                        help="longest sequence in tokens; longer rows are truncated")
    parser.add_argument("--truncation-side", default="right", choices=("right", "left"),
                        help="which end of an over-long row is cut (default: right)")
    parser.add_argument("--system-message", default="merge", choices=("merge", "skip"),
                        help="for a template that refuses system messages (Gemma): merge them into the first "
                             "user turn (default), or skip such rows as bad rows")
    parser.add_argument("--reasoning-history", default="keep", choices=("keep", "drop"),
                        help="for a template that drops earlier reasoning (Qwen3): keep every turn's <think> block "
                             "and train it (default, as TRL), or drop it and train only the final answer")


def column_mapping(text: str) -> dict[str, str]:
    """An argparse type: ``field=column,field=column`` -> ``{field: column}``."""
    import argparse

    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise argparse.ArgumentTypeError(f"expected FIELD=COLUMN pairs separated by commas, got {text!r}")
    return {k.strip(): v.strip() for k, v in pairs}


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of tokens, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


@dataclass
class Inputs:
    """A loaded tokenizer and dataset report, and the encoder (template, options) for them."""

    tokenizer: Any
    report: Any
    encoder: Any
    model_path: Path
    scan: Any = None  # raw text read as a stream: the :class:`~studio.core.text_scan.TextScan`

    @property
    def template(self):
        """The resolved chat template."""
        return self.encoder.template

    @property
    def options(self):
        """The encode options."""
        return self.encoder.options


def load_inputs(args, max_length: int | None = None, load_data: bool = True) -> Inputs:
    """Load ``args.model`` and ``args.data`` and resolve ``args.template``.

    Args:
        args: parsed arguments from :func:`add_dataset_arguments`.
        max_length: the encode ``max_length`` (``None`` encodes untruncated).
        load_data: load the data file; otherwise only check that it exists
            (``report`` is then ``None``). Raw text that can be read as a stream is read once and not
            kept: ``scan`` holds its counts and first documents, ``report`` those documents
            (:mod:`studio.core.text_scan`).

    Raises:
        ModelError: no tokenizer in the model folder.
        DataError: the data file is missing, unreadable or has no usable row.
        TemplateError: the template is unknown or the model has none.
    """
    from studio.core.data import load_examples
    from studio.core.encoding import EncodeOptions, Encoder
    from studio.core.models import resource_path
    from studio.core.tokenizer import load_tokenizer

    model_path = resource_path(args.model)
    tokenizer = load_tokenizer(model_path)
    encoder = Encoder(tokenizer, EncodeOptions(template=args.template, loss=args.loss, max_length=max_length,
                                               truncation_side=args.truncation_side,
                                               system_message=args.system_message,
                                               reasoning_history=args.reasoning_history))
    data = data_path(args.data)
    if not load_data:
        return Inputs(tokenizer, None, encoder, Path(model_path))
    found = scan_text(args, data, tokenizer)
    if found is not None:
        return Inputs(tokenizer, found.report(), encoder, Path(model_path), found)
    report = encoder.screen_report(load_examples(data, format=args.format, columns=args.columns,
                                                 text_split=args.text_split))
    if not report.examples:
        warn_bad_rows(report)
        raise DataError(f"{report.path}: none of its {report.total_rows} rows is usable",
                        "fix the rows listed above (or pick the right --format) and try again")
    return Inputs(tokenizer, report, encoder, Path(model_path))


def scan_text(args, data: Path, tokenizer):
    """``data`` read once as a stream when it is raw text that can be (counts of the whole file, its
    first documents kept), else ``None``."""
    from studio.core.text_scan import scan
    from studio.core.text_stream import open_text

    source = open_text(data, args.format, args.columns, args.text_split)
    return scan(source, tokenizer) if source is not None else None


def data_path(text: str) -> Path:
    """The data file named by ``--data``.

    Raises:
        DataError: it does not exist.
    """
    from studio.core.models import resource_path

    path = resource_path(text)
    if not path.exists():
        raise DataError(f"data file {text} does not exist", "check the --data path (it is read from the current folder)")
    return path


def bad_row_lines(report, limit: int = BAD_ROWS_SHOWN) -> list[str]:
    """``row N: reason`` for the first ``limit`` bad rows, then a count of the rest."""
    lines = [f"row {bad.row}: {bad.reason}" for bad in report.bad_rows[:limit]]
    count = getattr(report, "bad_total", len(report.bad_rows))  # a file read as a stream lists only the first
    if count > min(limit, len(report.bad_rows)):
        lines.append(f"... and {count - min(limit, len(report.bad_rows))} more bad rows")
    return lines


def warn_bad_rows(report, stream=None) -> None:
    """Report skipped bad rows on ``stream`` (stderr), one line each."""
    stream = stream or sys.stderr
    for line in bad_row_lines(report):
        print(f"skipped {line}", file=stream)
