"""Loading datasets: read a file, detect its format, normalise every row, report bad rows.

Supported files: JSONL, JSON (an array, or an object holding the array under one key), CSV,
TSV, Parquet, and folders written by ``datasets``' ``save_to_disk`` (a DatasetDict gives its
``train`` split). Supported formats, detected from the columns:

- ``messages``: OpenAI messages, ``{"messages": [{"role": ..., "content": ...}, ...]}``, with
  optional ``tools`` (JSON schemas) and ``label`` (desirability, for unpaired KTO)
- ``sharegpt``: ``{"conversations": [{"from": "human"|"gpt"|"system"|"function_call"|"observation",
  "value": ...}, ...]}``, with the same optional columns
- ``alpaca``: ``instruction``, optional ``input``, ``output``, optional ``system`` and
  ``history`` (``[[question, answer], ...]``)
- ``prompt_completion``: ``prompt`` and ``completion``, each text or a list of turns
- ``preference``: ``chosen`` and ``rejected`` (text, one message or turns) with a ``prompt``
  (or ``messages``/``conversations`` turns), or, without a prompt, two full conversations whose
  shared opening turns become the prompt
- ``text``: plain ``text`` rows or a ``.txt`` file: documents for continued pre-training

Turns are read by :mod:`studio.core.data_turns` (content parts, loss switches, tool calls and
results). See docs/data.md for every shape with an example and its encoding.

Every row becomes a :class:`~studio.core.conversation.Example`; a row that cannot be used
becomes a :class:`BadRow` with its 1-based number and a reason naming the field. Other scalar
columns (ids, labels...) are kept in ``Example.extra``; ``task`` and ``reference`` always are,
under those names even when mapped from other columns. An evaluation row whose conversation
ends with a user turn and has a ``reference`` becomes a prompt/completion example whose
completion is the reference.

Typical use::

    report = load_examples("chats.jsonl")
    print(report.summary())
    train, held_out = split(report.examples, eval_fraction=0.1, seed=42)
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from studio.core import data_rows, data_turns
from studio.core.conversation import Example
from studio.core.data_files import TOO_DEEP, BadRow, RawTable
from studio.core.errors import DataError

__all__ = ["BadRow", "DataReport", "DataSplit", "FORMATS", "FIELDS", "load_examples", "load_split", "split"]


@dataclass(frozen=True)
class FormatSpec:
    """One dataset format: the fields it needs, may use, and how a row is read."""

    label: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    shape: str
    read_row: data_rows.RowFn


# In detection order: preference first (it may also carry prompt or messages-like columns).
FORMATS: dict[str, FormatSpec] = {
    "preference": FormatSpec("preference pairs", ("chosen", "rejected"),
                             ("prompt", "messages", "conversations", "system", "tools"),
                             "chosen + rejected (text, one message or turns), after a prompt (text, messages or "
                             "ShareGPT turns) or sharing their first turns", data_rows.preference_row),
    "messages": FormatSpec("OpenAI messages", ("messages",), ("system", "tools", "label"),
                           "messages = [{role, content}, ...], optional tools and a KTO label",
                           data_rows.chat_row),
    "sharegpt": FormatSpec("ShareGPT", ("conversations",), ("system", "tools", "label"),
                           "conversations = [{from, value}, ...], optional tools and a KTO label",
                           data_rows.chat_row),
    "prompt_completion": FormatSpec("prompt/completion", ("prompt", "completion"), ("system", "label"),
                                    "prompt + completion (text or turns), optional KTO label",
                                    data_rows.prompt_completion_row),
    "alpaca": FormatSpec("Alpaca", ("instruction", "output"), ("input", "system", "history"),
                         "instruction + output (optional input, system, history)", data_rows.alpaca_row),
    "text": FormatSpec("plain text", ("text",), (),
                       "text: one document per row, or a .txt file (continued pre-training, no chat template)",
                       data_rows.text_row),
}
# Evaluation columns every format keeps in Example.extra under these names (even when mapped).
EVAL_FIELDS = ("task", "reference")
# Studio's field names, the keys a column mapping may use.
FIELDS = tuple(dict.fromkeys([f for spec in FORMATS.values() for f in spec.required + spec.optional]
                             + list(EVAL_FIELDS)))
_SHAPES = "; ".join(f"{name}: {spec.shape}" for name, spec in FORMATS.items())
_BAD_ROWS_SHOWN = 20
_EXTRA_TYPES = (str, int, float, bool)


@dataclass
class DataReport:
    """What loading one dataset file gave.

    Attributes:
        path: the file or folder read.
        format: the format used (a key of :data:`FORMATS`).
        examples: every usable row, normalised, in file order.
        bad_rows: every unusable row with its number and reason, in file order.
        total_rows: rows in the file (blank JSONL lines not counted).
        columns: the file's column names, in order of first appearance.
        mapping: Studio field -> the file's column used for it.
        notes: other things worth telling the person (e.g. the split of a saved dataset used).
        usable: usable rows in all when ``examples`` holds only the first ones (raw text read as a
            stream, :mod:`studio.core.text_scan`); ``None`` when it holds every one.
        bad_count: bad rows in all when ``bad_rows`` lists only the first ones; ``None`` otherwise.
    """

    path: Path
    format: str
    examples: list[Example]
    bad_rows: list[BadRow]
    total_rows: int
    columns: list[str] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    usable: int | None = None
    bad_count: int | None = None

    @property
    def usable_rows(self) -> int:
        """How many rows became examples."""
        return len(self.examples) if self.usable is None else self.usable

    @property
    def bad_total(self) -> int:
        """How many rows are bad."""
        return len(self.bad_rows) if self.bad_count is None else self.bad_count

    def summary(self, max_bad: int = _BAD_ROWS_SHOWN) -> str:
        """A readable report: format, counts, notes and the bad rows (capped)."""
        label = FORMATS[self.format].label if self.format in FORMATS else self.format
        lines = [f"{self.path}: {label} format ({self.format})",
                 f"  {self.total_rows} rows, {self.usable_rows} usable, {self.bad_total} bad"]
        renamed = {k: v for k, v in self.mapping.items() if k != v}
        if renamed:
            lines.append("  columns: " + ", ".join(f"{k} <- {v}" for k, v in renamed.items()))
        lines += [f"  note: {note}" for note in self.notes]
        lines += _bad_row_lines(self.bad_rows, max_bad)
        return "\n".join(lines)


def _bad_row_lines(bad_rows: list[BadRow], max_bad: int) -> list[str]:
    """'row N: reason' lines, at most ``max_bad`` of them plus an '... and N more' line."""
    if not bad_rows:
        return []
    lines = ["  bad rows:"] + [f"    row {b.row}: {b.reason}" for b in bad_rows[:max_bad]]
    if len(bad_rows) > max_bad:
        lines.append(f"    ... and {len(bad_rows) - max_bad} more")
    return lines


def load_examples(path: str | Path, format: str | None = "auto", columns: dict | None = None,
                  text_split: str = "line") -> DataReport:
    """Load a dataset file and normalise every row.

    Args:
        path: a .jsonl/.json/.csv/.tsv/.parquet file or a save_to_disk folder.
        format: "auto" to detect from the columns, or a key of :data:`FORMATS` to force one.
        columns: Studio field -> the file's column, overriding the default names,
            e.g. ``{"messages": "dialog"}`` or ``{"instruction": "question", "output": "answer"}``.
        text_split: how a .txt file is cut into documents (``line``, ``paragraph`` or ``file``).

    Returns:
        The examples, the bad rows and counts; bad rows do not raise.

    Raises:
        DataError: the file cannot be read, its format cannot be told, a forced format or
            mapping does not fit its columns, or it has no usable row.
    """
    from studio.core.data_reader import open_examples

    return open_examples(path, format, columns, text_split).report()


def near_misses(table: RawTable, fmt: str, cols: dict[str, str]) -> list[str]:
    """Columns that look like an optional field of ``fmt`` under another name, each with the setting
    (and Data page control) that maps it."""
    notes, used = [], set(cols.values())
    sample = [rec for _, rec in table.records[:50]]
    for field, looks, what in (("label", _looks_like_label, "marks answers good or bad (unpaired KTO)"),
                               ("tools", _looks_like_tools, "holds tool definitions (function calling)")):
        if field not in FORMATS[fmt].optional or field in cols:
            continue
        for column in table.columns:
            values = [rec[column] for rec in sample if rec.get(column) is not None]
            if column not in used and values and all(looks(v) for v in values):
                notes.append(f"column '{column}' looks as if it {what}; to use it set data.columns={{{field}: "
                             f"{column}}} (Data page: the '{field}' column)")
    return notes


def _looks_like_label(value) -> bool:
    try:
        data_rows.parse_label(value, "")
    except data_rows.RowProblem:
        return False
    return isinstance(value, bool) or (isinstance(value, str) and not value.strip().isdigit())


def _looks_like_tools(value) -> bool:
    value = data_turns.maybe_json(value, "[")
    return isinstance(value, list) and bool(value) and all(
        isinstance(t, dict) and ("name" in t or "function" in t) for t in value)


def normalise_record(row: int, rec: dict, read_row: data_rows.RowFn, cols: dict[str, str],
                     extra_keys: list[tuple[str, str]] = ()) -> Example | BadRow:
    """One record through ``read_row``: its example, or a bad row with the reason.

    Args:
        extra_keys: (name in ``Example.extra``, column) of the scalar columns to keep.
    """
    try:
        reason = data_rows.unencodable(rec)
        if reason:
            raise data_rows.RowProblem(reason)
        parts = read_row(rec, cols)
    except data_rows.RowProblem as problem:
        return BadRow(row, problem.reason, rec)
    except RecursionError:
        return BadRow(row, TOO_DEEP, rec)
    extra = {name: v for name, c in extra_keys if isinstance(v := rec.get(c), _EXTRA_TYPES)}
    return Example(row=row, extra=extra, **parts)


def _no_usable_rows(path: Path, total: int, bad: list[BadRow]) -> DataError:
    """The error for a file whose every row is bad, listing the first reasons."""
    listing = "\n".join(_bad_row_lines(bad, 5))
    error = DataError(f"{path} has no usable rows: all {total} rows are bad\n{listing}",
                      "fix the rows named above; if every row fails the same way, the format or the column "
                      "mapping is probably wrong")
    error.bad_rows = bad  # every row, for a window that lists them
    return error


def resolve_format(table: RawTable, format: str, columns: dict) -> tuple[str, dict[str, str]]:
    """Pick the format and the Studio field -> file column mapping for a table.

    Raises:
        DataError: unknown format or mapping key, a mapped column the file lacks, a forced
            format whose fields are missing, or columns matching no format.
    """
    if format != "auto" and format not in FORMATS:
        raise DataError(f"unknown dataset format '{format}'", f"use auto or one of: {', '.join(FORMATS)}")
    cols = _map_columns(table, columns)
    if format == "auto":
        format = _detect(table, cols)
    missing = [f for f in FORMATS[format].required if f not in cols]
    if missing:
        raise DataError(f"{table.path}: format '{format}' needs the field(s) {', '.join(missing)}, which the file "
                        f"lacks (columns found: {_listing(table.columns)})",
                        f"map them to your columns, e.g. data.columns = {{{missing[0]}: <your column>}}")
    wanted = FORMATS[format].required + FORMATS[format].optional + EVAL_FIELDS
    return format, {f: cols[f] for f in wanted if f in cols}


def _map_columns(table: RawTable, columns: dict) -> dict[str, str]:
    """Studio field -> file column, for every field the file (or the mapping) provides."""
    unknown = [k for k in columns if k not in FIELDS]
    if unknown:
        raise DataError(f"unknown field(s) in the column mapping: {', '.join(map(str, unknown))}",
                        f"map Studio's field names to your columns; the fields are: {', '.join(FIELDS)}")
    absent = [f"{v} (for {k})" for k, v in columns.items() if v not in table.columns]
    if absent:
        raise DataError(f"{table.path} has no column {', '.join(map(str, absent))} named in the column mapping "
                        f"(columns found: {_listing(table.columns)})", "fix the column names in the mapping")
    taken = set(columns.values())
    cols = {f: f for f in FIELDS if f in table.columns and f not in taken}
    cols.update(columns)
    return cols


def _detect(table: RawTable, cols: dict[str, str]) -> str:
    """The format whose required fields most rows have (ties go to :data:`FORMATS` order).

    Counting rows, not only columns, keeps a few stray rows of another shape from deciding
    the format of the whole file; those rows become bad rows instead.
    """
    shapes = Counter(frozenset(rec) for _, rec in table.records)
    best, best_rows = None, 0
    for name, spec in FORMATS.items():
        if not all(f in cols for f in spec.required):
            continue
        needed = [cols[f] for f in spec.required]
        rows = sum(n for keys, n in shapes.items() if all(c in keys for c in needed))
        if rows > best_rows:
            best, best_rows = name, rows
    if best:
        return best
    texts = [c for c in table.columns if all(isinstance(rec.get(c), str) for _, rec in table.records[:50])]
    raw = f" For raw text (continued pre-training) map its column: data.columns={{text: {texts[0]}}}." \
        if len(texts) == 1 else ""
    raise DataError(f"cannot tell the format of {table.path} from its columns: {_listing(table.columns)}",
                    f"Studio reads these shapes: {_SHAPES}. Rename your columns, or map them with "
                    "data.columns (Data page: Format, then a column per field), e.g. {messages: dialog} or "
                    f"{{instruction: question, output: answer}}.{raw}")


def _listing(names: list[str], limit: int = 30) -> str:
    """Names joined with commas, capped."""
    shown = ", ".join(names[:limit]) or "none"
    return shown + (f" ... and {len(names) - limit} more" if len(names) > limit else "")


def split(examples: list[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out a seeded random share of examples for evaluation.

    The same examples, fraction and seed always give the same split. Both parts keep file
    order. A non-zero fraction holds out at least one row and keeps at least one for training
    (when there are two or more rows).

    Args:
        examples: the rows to split.
        eval_fraction: share held out, 0 <= eval_fraction < 1.
        seed: seeds the choice of rows.

    Returns:
        (train, eval).

    Raises:
        DataError: the fraction is outside [0, 1).
    """
    if not 0 <= eval_fraction < 1:
        raise DataError(f"eval fraction {eval_fraction} is outside 0..1", "set data.eval_fraction to e.g. 0.1")
    held = set(held_out(len(examples), eval_fraction, seed))
    train = [e for i, e in enumerate(examples) if i not in held]
    return train, [e for i, e in enumerate(examples) if i in held]


def held_out(count: int, eval_fraction: float, seed: int) -> list[int]:
    """The indices :func:`split` holds out of ``count`` rows (for rows read as a stream, where
    only their count is known beforehand)."""
    return random.Random(seed).sample(range(count), held_count(count, eval_fraction))


def held_count(count: int, eval_fraction: float) -> int:
    """How many of ``count`` rows :func:`split` holds out for evaluation.

    Raises:
        DataError: the fraction is outside [0, 1).
    """
    if not 0 <= eval_fraction < 1:
        raise DataError(f"eval fraction {eval_fraction} is outside 0..1", "set data.eval_fraction to e.g. 0.1")
    n_eval = round(count * eval_fraction)
    if eval_fraction > 0 and count >= 2:
        return min(max(n_eval, 1), count - 1)
    return 0 if count < 2 else n_eval


@dataclass
class DataSplit:
    """Training and evaluation examples, and the reports of the files they came from.

    Attributes:
        train: examples to train on.
        eval: examples to evaluate on (held out of ``train_report`` or read from the eval file).
        train_report: the training file's report (all of its rows, before holding any out).
        eval_report: the eval file's report, or None when eval rows were held out.
    """

    train: list[Example]
    eval: list[Example]
    train_report: DataReport
    eval_report: DataReport | None = None

    def summary(self) -> str:
        """Both reports and the split sizes."""
        parts = [self.train_report.summary()]
        if self.eval_report is not None:
            parts.append(self.eval_report.summary())
        parts.append(f"split: {len(self.train)} train, {len(self.eval)} eval")
        return "\n".join(parts)


def load_split(train_path: str | Path, eval_path: str | Path | None = None, eval_fraction: float = 0.1,
               seed: int = 42, format: str | None = "auto", columns: dict | None = None, *,
               eval_format: str | None = None, eval_columns: dict | None = None, text_split: str = "line") -> DataSplit:
    """Load training data and its evaluation rows: from an eval file, or held out by :func:`split`.

    Args:
        train_path: the training file.
        eval_path: an evaluation file; None or "" holds out ``eval_fraction`` of the training rows.
        eval_fraction: share held out when there is no eval file.
        seed: seeds the hold-out.
        format: format of the training file ("auto" detects).
        columns: column mapping of the training file.
        eval_format: format of the eval file; None uses ``format``.
        eval_columns: column mapping of the eval file; None uses ``columns``.
        text_split: how .txt files are cut into documents.

    Raises:
        DataError: either file cannot be used.
    """
    train_report = load_examples(train_path, format, columns, text_split)
    if not eval_path:
        train, held = split(train_report.examples, eval_fraction, seed)
        return DataSplit(train, held, train_report)
    eval_report = load_examples(eval_path, format if eval_format is None else eval_format,
                                columns if eval_columns is None else eval_columns, text_split)
    return DataSplit(list(train_report.examples), eval_report.examples, train_report, eval_report)


def describe_formats() -> list[tuple[str, str, str]]:
    """(name, label, shape) of every format, for help text and the data page."""
    return [(name, spec.label, spec.shape) for name, spec in FORMATS.items()]
