"""Reading a dataset file's rows chunk by chunk: a caller works on the first rows while the rest
are still being read and checked, and gets the very report :func:`~studio.core.data.load_examples`
gives (which is ``open_examples(...).report()``).

Typical use (``studio.core.lengths.measure_file``)::

    reader = open_examples("chats.jsonl", stream=True)
    for rows in reader.chunks(4096):
        ...  # each list holds the usable rows of the next 4096 records, normalised
    report = reader.report()  # every row, bad rows and notes, as load_examples reports them
"""

from __future__ import annotations

from pathlib import Path

from studio.core.conversation import Example
from studio.core.data import (EVAL_FIELDS, FORMATS, DataReport, _no_usable_rows, near_misses, normalise_record,
                              resolve_format)
from studio.core.data_files import BadRow, RawTable, _columns, read_table
from studio.core.errors import DataError

__all__ = ["ExampleReader", "FIRST_LINES", "open_examples"]


def open_examples(path: str | Path, format: str | None = "auto", columns: dict | None = None,
                  text_split: str = "line", stream: bool = False) -> ExampleReader:
    """Read a dataset file and settle its format, leaving its rows to be normalised as they are taken.

    Takes the arguments of :func:`~studio.core.data.load_examples`; ``open_examples(...).report()`` is its result.

    Args:
        stream: parse a JSON Lines file as its rows are taken, not all at once: the format and
            mapping are guessed from its first :data:`FIRST_LINES` lines and settled from every
            row once all are parsed; when that differs from the guess, every row is normalised
            again (:attr:`ExampleReader.restarted`). Other files are read whole either way.

    Raises:
        DataError: as ``load_examples`` raises it, except "no usable row", which
            :meth:`ExampleReader.report` raises.
    """
    format, columns = format or "auto", columns or {}
    table = read_table(path, text_split, lazy=stream)
    if table.pending is not None:
        table.pending.parse(FIRST_LINES)
        guess = _format_of_first_rows(table, format, columns)
        if guess is not None:
            return ExampleReader(table, *guess, requested=(format, columns))
        _parse_rest(table)
    if not table.total_rows:
        raise DataError(f"{table.path} holds no rows", "add rows, or pick another file")
    if not table.records:
        raise _no_usable_rows(table.path, table.total_rows, table.bad_rows)
    return ExampleReader(table, *resolve_format(table, format, columns), requested=(format, columns))


#: lines of a JSON Lines file whose rows give the first guess of its format (``open_examples(stream=True)``)
FIRST_LINES = 4096


def _format_of_first_rows(table: RawTable, format: str, columns: dict) -> tuple[str, dict[str, str]] | None:
    """The format and mapping the rows parsed so far give, or ``None`` when they give none."""
    table.columns = _columns(table.records)
    if not table.records:
        return None
    try:
        return resolve_format(table, format, columns)
    except DataError:
        return None


def _parse_rest(table: RawTable) -> None:
    table.pending.parse(table.pending.left)
    table.pending = None
    table.columns = _columns(table.records)


class ExampleReader:
    """The rows of a read file, normalised chunk by chunk in file order (a caller can work on the
    first rows while the rest are still being checked), then reported as :func:`load_examples` does.

    Attributes:
        examples: the usable rows normalised so far.
        restarted: the format or mapping settled from the whole file differed from the one guessed
            from its first lines, so every row was normalised again from the first: rows taken
            before that were normalised by the guess.
    """

    def __init__(self, table: RawTable, fmt: str, cols: dict[str, str], requested: tuple[str, dict]) -> None:
        self.table, self.requested, self.restarted = table, requested, False
        self._start(fmt, cols)

    def _start(self, fmt: str, cols: dict[str, str]) -> None:
        self.format, self.cols, self.read_row = fmt, cols, FORMATS[fmt].read_row
        mapped = set(cols.values())
        # (name in extra, column): eval columns under Studio's names, other columns under their own.
        self.extra_keys = [(f, cols[f]) for f in EVAL_FIELDS if f in cols]
        self.extra_keys += [(c, c) for c in self.table.columns if c not in mapped]
        self.examples: list[Example] = []
        self.bad: list[BadRow] = []  # rows that parsed but cannot be used
        self._next = 0

    @property
    def rows(self) -> int:
        """Records to normalise in all; while a JSON Lines file is being parsed, at most this many."""
        pending = self.table.pending
        return len(self.table.records) + (pending.left if pending is not None else 0)

    def take(self, size: int) -> list[Example]:
        """The usable rows among the next ``size`` records (``[]`` also when a chunk holds only bad rows)."""
        table = self.table
        while table.pending is not None and len(table.records) < self._next + size:
            table.pending.parse(size)  # a line gives at most one record
            if not table.pending.left:
                self._settle()
        chunk = []
        for row, rec in table.records[self._next: self._next + size]:
            done = normalise_record(row, rec, self.read_row, self.cols, self.extra_keys)
            (chunk if isinstance(done, Example) else self.bad).append(done)
        self._next = min(self._next + size, len(table.records))
        self.examples += chunk
        return chunk

    def _settle(self) -> None:
        """Every line parsed: the format and mapping from every row; a new start when they differ from the guess."""
        table, guess = self.table, (self.format, self.cols, self.extra_keys)
        _parse_rest(table)  # no line is left: this settles the columns
        # cannot raise: the rows and columns that gave the guess are still there
        fmt, cols = resolve_format(table, *self.requested)
        examples, bad, at = self.examples, self.bad, self._next
        self._start(fmt, cols)
        if (self.format, self.cols, self.extra_keys) == guess:
            self.examples, self.bad, self._next = examples, bad, at  # every row so far was read as it should be
        else:
            self.restarted = True

    def chunks(self, size: int):
        """The usable rows of every ``size`` records not yet taken, one list per chunk."""
        while self._next < self.rows:
            yield self.take(size)

    def report(self) -> DataReport:
        """Every row normalised (the rest taken now): the :class:`DataReport` of :func:`load_examples`.

        Raises:
            DataError: the file has no usable row.
        """
        table = self.table
        for _ in self.chunks(max(self.rows, 1)):
            pass
        bad = sorted(table.bad_rows + self.bad, key=lambda b: b.row)
        if not self.examples:
            raise _no_usable_rows(table.path, table.total_rows, bad)
        from studio.core.text_stream import big_json_problem

        notes = table.notes + near_misses(table, self.format, self.cols)
        big = big_json_problem(table.path, self.format)
        notes += [f"{big[0]}; {big[1]}"] if big else []
        return DataReport(table.path, self.format, self.examples, bad, table.total_rows, table.columns, self.cols,
                          notes)
