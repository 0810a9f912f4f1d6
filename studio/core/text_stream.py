"""Raw text read as a stream: one document at a time, never the whole file.

Continued pre-training corpora are often larger than memory. :func:`open_text` says whether a
training file is raw text that can be read as a stream and returns a :class:`TextSource` whose
:meth:`~TextSource.examples` reads it again on every call, yielding text
:class:`~studio.core.conversation.Example` rows in file order with the same row numbers,
checks and bad rows as :func:`studio.core.data.load_examples`. Only a count of the bad rows and
the first :data:`BAD_KEPT` of them are kept.

What streams: ``.txt`` files (each document as ``data.text_split`` cuts it), JSON Lines, CSV/TSV
and Parquet files whose format is ``text`` (forced, or detected from the first :data:`HEAD`
records). What does not: a ``.json`` file (one JSON document is parsed whole) and a folder saved
with ``datasets``; they are loaded whole as before (``open_text`` returns ``None``), as is any
file whose first records are not raw text.

:func:`split_blocks` cuts a source's documents into training and evaluation blocks in one pass
(the evaluation documents held out exactly as :func:`studio.core.data.split` holds them out).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterator

from studio.core.data_files import _RAW_CHARS, TOO_DEEP, BadRow, RawTable, _cell_count_problem, _add_record, \
    _columns, _documents, _text_lines
from studio.core.errors import DataError

#: Records read to tell a file's format.
HEAD = 200
#: Bad rows kept (with their reasons) for messages; the others are only counted.
BAD_KEPT = 20
STREAMED = {".txt": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}


@dataclass
class TextSource:
    """A raw-text file read as a stream.

    Attributes:
        path: the file.
        kind: ``txt``, ``jsonl``, ``csv``, ``tsv`` or ``parquet``.
        cols: Studio field -> the file's column (``text`` -> its text column).
        text_split: how a ``.txt`` file is cut into documents.
        total_rows: rows of the file (known after a pass of :meth:`examples`).
        bad_count: bad rows (after a pass).
        bad_rows: the first :data:`BAD_KEPT` bad rows (after a pass).
        usable: documents (after a pass).
    """

    path: Path
    kind: str
    cols: dict = field(default_factory=lambda: {"text": "text"})
    text_split: str = "line"
    total_rows: int = 0
    bad_count: int = 0
    bad_rows: list = field(default_factory=list)
    usable: int = 0
    _opened: list = field(default_factory=list, repr=False)

    def examples(self) -> Iterator:
        """Every usable document in file order; the counts are those of this pass when it ends."""
        from studio.core.data import FORMATS, normalise_record
        from studio.core.conversation import Example

        self.total_rows = self.bad_count = self.usable = 0
        self.bad_rows = []
        self._opened = []
        for row, rec in _records(self.path, self.kind, self.text_split, self._opened):
            self.total_rows += 1
            done = rec if isinstance(rec, BadRow) else normalise_record(row, rec, FORMATS["text"].read_row, self.cols)
            if isinstance(done, Example):
                self.usable += 1
                yield done
                continue
            self.bad_count += 1
            if len(self.bad_rows) < BAD_KEPT:
                self.bad_rows.append(done)

    def progress(self) -> tuple[int, int]:
        """(bytes read, bytes of the file) in the pass under way: enough for a progress bar."""
        total = self.path.stat().st_size
        try:
            done = self._opened[-1].tell() if self._opened else 0
        except (ValueError, OSError):  # the pass has ended and closed the file
            done = total
        return min(done, total), total

    def count(self) -> int:
        """Usable documents, counted in a pass that keeps none of them."""
        for _ in self.examples():
            pass
        return self.usable

    def report(self):
        """A :class:`~studio.core.data.DataReport` of the last pass: its counts and kept bad rows, no examples."""
        from studio.core.data import DataReport

        return DataReport(self.path, "text", [], list(self.bad_rows), self.total_rows, [self.cols["text"]],
                          dict(self.cols))


def open_text(path: str | Path, format: str | None = "auto", columns: dict | None = None,
              text_split: str = "line") -> TextSource | None:
    """The file as a :class:`TextSource` when it is raw text that can be read as a stream, else ``None``
    (load it whole with :func:`~studio.core.data.load_examples`, which also reports its problems)."""
    from studio.core.data import resolve_format

    path = Path(path).expanduser()
    kind = STREAMED.get(path.suffix.lower())
    if kind is None or not path.is_file() or (format or "auto") not in ("auto", "text"):
        return None
    if kind == "txt":
        return TextSource(path, kind, text_split=text_split) if not columns else None
    try:
        head = [(row, rec) for row, rec in islice(_records(path, kind), HEAD) if not isinstance(rec, BadRow)]
        table = RawTable(path, records=head, total_rows=len(head), columns=_columns(head))
        fmt, cols = resolve_format(table, format or "auto", columns or {})
    except DataError:
        return None
    return TextSource(path, kind, cols, text_split) if fmt == "text" and head else None


#: A raw-text ``.json`` file larger than this draws a warning: it is parsed whole.
BIG_JSON = 200 * 1024 * 1024


def big_json_problem(path: str | Path, format: str) -> tuple[str, str] | None:
    """(what, what to do) for raw text in a ``.json`` file larger than :data:`BIG_JSON`, which cannot be
    read as a stream (one JSON document is parsed whole); ``None`` otherwise."""
    path = Path(path)
    if format != "text" or path.suffix.lower() != ".json" or not path.is_file():
        return None
    size = path.stat().st_size
    if size <= BIG_JSON:
        return None
    return (f"{path} is {size / 2**20:,.0f} MB of JSON holding raw text: a .json file is parsed whole, so reading "
            "it needs several times its size in memory (in the window, in preflight and in training)",
            "save the corpus as .txt (one document per line, or blank-line paragraphs with data.text_split="
            "paragraph) or as JSON Lines (.jsonl, one {\"text\": ...} object per line): Studio reads those as a stream")


def _records(path: Path, kind: str, text_split: str = "line",
             opened: list | None = None) -> Iterator[tuple[int, dict | BadRow]]:
    """(row number, record or bad row) of a file, read as a stream; ``opened`` gets an object whose
    ``tell()`` says how many bytes of the file are behind."""
    opened = [] if opened is None else opened
    if kind == "txt":
        for number, (first_line, document) in enumerate(_documents(path, text_split, opened), 1):
            yield number, {"text": document, "line": first_line}
    elif kind == "jsonl":
        yield from _jsonl_records(path, opened)
    elif kind == "parquet":
        yield from _parquet_records(path, opened)
    else:
        yield from _csv_records(path, "\t" if kind == "tsv" else ",", opened)


def _jsonl_records(path: Path, opened: list):
    """JSON Lines one line at a time; a broken line is a bad row numbered by its line (as
    :func:`studio.core.data_files.read_table` numbers it)."""
    for lineno, line in _text_lines(path, opened):
        line = line.removesuffix("\n")
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, BadRow(lineno, f"invalid JSON: {exc.msg} (column {exc.colno})", line[:_RAW_CHARS])
            continue
        except RecursionError:
            yield lineno, BadRow(lineno, TOO_DEEP, line[:_RAW_CHARS])
            continue
        table = RawTable(path)
        _add_record(table, lineno, rec)
        yield lineno, table.records[0][1] if table.records else table.bad_rows[0]


def _csv_records(path: Path, delimiter: str, opened: list):
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            opened.append(handle.buffer)
            reader = csv.DictReader(handle, delimiter=delimiter)
            for index, rec in enumerate(reader, 1):
                problem = _cell_count_problem(rec, len(reader.fieldnames or ()))
                yield index, BadRow(index, problem, rec) if problem else rec
    except csv.Error as exc:
        raise DataError(f"{path} is not valid CSV: {exc}", "check the quoting there, or export the file again") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason})", "save the file as UTF-8") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}", "check that the file is intact") from None


class _RowsRead:
    """How far a Parquet file is read, as a share of its bytes (rows read of all its rows)."""

    def __init__(self, size: int, rows: int) -> None:
        self.size, self.rows, self.read = size, max(rows, 1), 0

    def tell(self) -> int:
        return self.size * self.read // self.rows


def _parquet_records(path: Path, opened: list):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        index = 0
        file = pq.ParquetFile(path)
        where = _RowsRead(path.stat().st_size, file.metadata.num_rows)
        opened.append(where)
        for batch in file.iter_batches(batch_size=1024):
            where.read += batch.num_rows
            for rec in batch.to_pylist():
                index += 1
                yield index, rec
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read {path} as Parquet: {exc}",
                        "check that it is a Parquet file (not JSON or CSV renamed) and is intact") from None


def split_blocks(source: TextSource, tokenizer, size: int, eval_fraction: float = 0.0, seed: int = 0,
                 folder: Path | None = None, limit: int | None = None):
    """The source's documents as training and evaluation :class:`~studio.core.pretrain.Blocks`, in
    one pass over the file (a counting pass first when documents are held out for evaluation).

    Args:
        folder: where the blocks are written (``train/`` and ``eval/`` under it); ``None`` keeps
            them in memory.
        limit: keep only the first blocks of each part (the others are counted).

    Returns:
        (training blocks, evaluation blocks or ``None`` when nothing is held out).
    """
    from studio.core.data import held_out
    from studio.core.pretrain import CHUNK, BlockWriter

    held = bytearray()
    if eval_fraction > 0:
        count = source.count()
        held = bytearray(count)
        for i in held_out(count, eval_fraction, seed):
            held[i] = 1
    train = BlockWriter(tokenizer, size, folder / "train" if folder else None, limit)
    evaluation = BlockWriter(tokenizer, size, folder / "eval" if folder else None, limit) if any(held) else None
    docs, index = source.examples(), 0
    while chunk := list(islice(docs, CHUNK)):
        marks = held[index:index + len(chunk)]
        index += len(chunk)
        train.add([ex for ex, out in zip(chunk, marks or bytes(len(chunk))) if not out])
        if evaluation is not None:
            evaluation.add([ex for ex, out in zip(chunk, marks) if out])
    return train.finish(), evaluation.finish() if evaluation is not None else None
