"""Reading dataset files into raw records, before any format is known.

:func:`read_table` turns a JSONL, JSON, CSV/TSV or Parquet file, or a folder written by
``datasets``' ``save_to_disk``, into a :class:`RawTable`: numbered records (dicts) plus
the rows that could not even be parsed. Format detection and normalisation happen in
:mod:`studio.core.data`; everything here only knows about files.

Anything that stops the whole file from being read (missing, unreadable, binary, unknown
extension, broken JSON document) raises :class:`~studio.core.errors.DataError` naming the
file and what to do. One broken line of a JSONL file is only a bad row.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.errors import DataError

EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
              ".parquet": "parquet", ".txt": "txt"}
ACCEPTED = "a .jsonl, .json, .csv, .tsv, .parquet or .txt file, or a folder saved with datasets' save_to_disk"
#: How a .txt file is cut into documents (``data.text_split``).
TEXT_SPLITS = ("line", "paragraph", "file")
# Keys under which a JSON object commonly wraps its list of rows, most likely first.
_WRAPPER_KEYS = ("train", "data", "rows", "examples", "records", "items", "instances")
_RAW_CHARS = 300  # how much of an unparsable line a bad row keeps


@dataclass
class BadRow:
    """A row that cannot be used, and why.

    Attributes:
        row: 1-based row number (line number for JSONL, record index + 1 otherwise).
        reason: what is wrong, naming the field.
        raw: the row as read (a dict, or the text of an unparsable line).
    """

    row: int
    reason: str
    raw: Any = None


@dataclass
class RawTable:
    """The rows of one file as read.

    Attributes:
        path: the file or folder read.
        records: (row number, record) for every row that parsed to a dict.
        bad_rows: rows that did not parse (broken JSON line, not an object, wrong cell count).
        total_rows: every non-blank row, parsed or not.
        columns: every field name seen, in order of first appearance.
        notes: things the person should know (e.g. which split of a saved dataset was used).
    """

    path: Path
    records: list[tuple[int, dict]] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    total_rows: int = 0
    columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the lines of a JSON Lines file not parsed yet (``read_table(..., lazy=True)``); ``None`` once all are
    pending: JsonLines | None = None


#: The reason for a row (or JSON file) nested deeper than Python's parser goes.
TOO_DEEP = "nested too deeply to read (more levels of lists/objects than any conversation needs)"


def read_table(path: str | Path, text_split: str = "line", lazy: bool = False) -> RawTable:
    """Read a dataset file or saved-dataset folder into numbered records.

    Args:
        path: a .jsonl/.ndjson, .json, .csv, .tsv, .parquet or .txt file, or a save_to_disk folder.
        text_split: how a .txt file is cut into documents: ``line`` (each non-empty line),
            ``paragraph`` (blank lines separate documents) or ``file`` (the whole file).
        lazy: leave the lines of a JSON Lines file to be parsed on demand (``table.pending``);
            its records, counts and columns then hold only what is parsed.

    Returns:
        The records, the unparsable rows and the columns seen.

    Raises:
        DataError: the file is missing, unreadable, binary, of an unknown kind, or not valid JSON.
    """
    if not str(path).strip():
        raise DataError("no dataset file given", f"pick {ACCEPTED}")
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"dataset not found: {path}", f"check the path; Studio reads {ACCEPTED}")
    if path.is_dir():
        table = _read_saved(path)
    else:
        kind = EXTENSIONS.get(path.suffix.lower())
        if kind is None:
            kind_name = f"'{path.suffix}' files" if path.suffix else "files without an extension"
            raise DataError(f"{path}: Studio cannot read {kind_name} as a dataset",
                            f"convert it to {ACCEPTED} (a JSON Lines file that is only misnamed can be renamed)")
        if kind == "txt":
            table = read_txt(path, text_split)
        elif kind == "parquet":
            table = _read_parquet(path)
        elif kind == "jsonl":
            table = _read_jsonl(path, _read_text(path), lazy)
        else:
            table = _READERS[kind](path, _read_text(path))
    table.columns = _columns(table.records)
    return table


def _read_text(path: Path) -> str:
    """The file's text, or a DataError saying why it is not readable UTF-8 text."""
    try:
        data = path.read_bytes()
    except PermissionError:
        raise DataError(f"no permission to read {path}", "make the file readable for your user, or copy it "
                        "somewhere you own") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}", "check that the file is intact") from None
    if b"\x00" in data[:8192]:
        raise DataError(f"{path} is a binary file, not text", f"pick the data file itself: {ACCEPTED}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (undecodable byte at offset {exc.start})",
                        "save the file as UTF-8 (most editors and pandas' to_json/to_csv can)") from None


def read_txt(path: Path, text_split: str = "line") -> RawTable:
    """A plain-text file as ``{"text": document}`` records, read line by line (never whole).

    Records are numbered by document; each document's first line number is noted in the record
    (``line``) so a message can point into the file.
    """
    if text_split not in TEXT_SPLITS:
        raise DataError(f"unknown text split {text_split!r}", f"set data.text_split to one of {', '.join(TEXT_SPLITS)}")
    table = RawTable(path)
    for first_line, document in _documents(path, text_split):
        table.total_rows += 1
        table.records.append((table.total_rows, {"text": document, "line": first_line}))
    return table


def _documents(path: Path, text_split: str, opened: list | None = None):
    """(first line number, text) of every document of a .txt file, streamed (``opened``: see :func:`_text_lines`)."""
    lines: list[str] = []
    first = 0
    for lineno, line in _text_lines(path, opened):
        if text_split == "line":
            if line.strip():
                yield lineno, line.rstrip("\r\n")
            continue
        if text_split == "paragraph" and not line.strip():
            if lines:
                yield first, "".join(lines).rstrip("\r\n")
            lines = []
            continue
        if not lines:
            first = lineno
        lines.append(line)
    if lines and "".join(lines).strip():
        yield first, "".join(lines).rstrip("\r\n")


def _text_lines(path: Path, opened: list | None = None):
    """(line number, line with its ending) of a UTF-8 text file, read as a stream.

    ``opened``: a list the open binary file is appended to, so a reader can ask how far it is (``tell()``)."""
    try:
        with path.open("rb") as handle:
            if opened is not None:
                opened.append(handle)
            if b"\x00" in handle.read(8192):
                raise DataError(f"{path} is a binary file, not text", f"pick the data file itself: {ACCEPTED}")
            handle.seek(0)
            for lineno, raw in enumerate(handle, 1):
                try:
                    yield lineno, raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"{path} is not UTF-8 text (line {lineno}, byte {exc.start + 1} of the line)",
                                    "save the file as UTF-8") from None
    except PermissionError:
        raise DataError(f"no permission to read {path}", "make the file readable for your user") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}", "check that the file is intact") from None


def _read_jsonl(path: Path, text: str, lazy: bool = False) -> RawTable:
    """One JSON object per line; a broken line is a bad row numbered by its line."""
    if text.lstrip().startswith("["):
        document = _whole_json(text)
        if document is not None:
            return _json_table(path, document)  # a JSON array saved with a .jsonl name
    table = RawTable(path)
    lines = JsonLines(table, text)
    if lazy:
        table.pending = lines
    else:
        lines.parse(lines.left)
    return table


class JsonLines:
    """The lines of a JSON Lines text, parsed into a table's records and bad rows on demand, in order."""

    def __init__(self, table: RawTable, text: str) -> None:
        # split("\n"), not splitlines(): JSON strings may hold raw U+2028, which splitlines cuts.
        self.table, self.lines, self.at = table, text.split("\n"), 0

    @property
    def left(self) -> int:
        """Lines not parsed yet."""
        return len(self.lines) - self.at

    def parse(self, count: int) -> None:
        """Parse the next ``count`` lines (blank ones are no rows)."""
        table, start = self.table, self.at
        for lineno, line in enumerate(self.lines[start: start + count], start + 1):
            if not line.strip():
                continue
            table.total_rows += 1
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                reason = f"invalid JSON: {exc.msg} (column {exc.colno})"
                table.bad_rows.append(BadRow(lineno, reason, line[:_RAW_CHARS]))
                continue
            except RecursionError:
                table.bad_rows.append(BadRow(lineno, TOO_DEEP, line[:_RAW_CHARS]))
                continue
            _add_record(table, lineno, rec)
        self.at = min(start + count, len(self.lines))


def _whole_json(text: str) -> Any:
    """The parsed document, or None when the text is not one JSON document."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None


def _read_json(path: Path, text: str) -> RawTable:
    """A JSON array of objects, or an object wrapping such an array under one key."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise DataError(f"{path}: {TOO_DEEP}", "save the rows as JSON Lines (one object per line) so that one "
                        "such row is skipped instead of the whole file") from None
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and exc.lineno > 1:
            return _read_jsonl(path, text)  # JSON Lines saved with a .json name
        raise DataError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                        "fix the file there, or save it as JSON Lines (one object per line) so that one "
                        "broken row does not stop the whole file") from None
    return _json_table(path, data)


def _json_table(path: Path, data: Any) -> RawTable:
    """The rows of a parsed JSON document, numbered by record index + 1."""
    table = RawTable(path)
    rows = _unwrap(path, data, table.notes)
    table.total_rows = len(rows)
    for index, rec in enumerate(rows, 1):
        _add_record(table, index, rec)
    return table


def _unwrap(path: Path, data: Any, notes: list[str]) -> list:
    """The list of rows in a JSON document: the array itself or the one list under a key."""
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise DataError(f"{path} holds a single JSON {json_type(data)}, not a list of rows",
                        "store the rows as a JSON array of objects, or as JSON Lines")
    lists = [k for k, v in data.items() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v[:50])]
    if len(lists) > 1:
        preferred = [k for k in _WRAPPER_KEYS if k in lists]
        lists = preferred[:1] or lists
    if len(lists) != 1:
        keys = ", ".join(map(str, data)) or "none"
        raise DataError(f"{path} is a JSON object with no single list of rows under a key (keys: {keys})",
                        "store the rows as a JSON array of objects, or under one key such as \"data\"")
    notes.append(f"rows read from the '{lists[0]}' list of the JSON object")
    return data[lists[0]]


def _read_csv(path: Path, text: str, delimiter: str = ",") -> RawTable:
    """A header row then one row per record; every cell is text (empty cell = "")."""
    table = RawTable(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for index, rec in enumerate(reader, 1):
            table.total_rows += 1
            problem = _cell_count_problem(rec, len(reader.fieldnames or ()))
            if problem:
                table.bad_rows.append(BadRow(index, problem, rec))
            else:
                table.records.append((index, rec))
    except csv.Error as exc:
        raise DataError(f"{path} is not valid CSV near line {reader.line_num}: {exc}",
                        "check the quoting on that line, or export the file again") from None
    return table


def _cell_count_problem(rec: dict, header_len: int) -> str:
    """Why a CSV row's cells do not line up with the header, or ""."""
    if None in rec:
        return f"has {len(rec[None])} more cell(s) than the header's {header_len} columns"
    if any(v is None for v in rec.values()):
        return f"has fewer cells than the header's {header_len} columns"
    return ""


def _read_parquet(path: Path) -> RawTable:
    """Every row of a Parquet file as a dict (nested lists and structs kept)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read {path} as Parquet: {exc}",
                        "check that it is a Parquet file (not JSON or CSV renamed) and is intact") from None
    return _table_of(path, rows)


def _table_of(path: Path, rows: list[dict]) -> RawTable:
    """A table of rows that are already dicts, numbered from 1."""
    return RawTable(path, records=list(enumerate(rows, 1)), total_rows=len(rows))


def _read_saved(path: Path) -> RawTable:
    """A folder from Dataset.save_to_disk, or DatasetDict.save_to_disk (its 'train' split)."""
    if not any((path / name).exists() for name in ("dataset_dict.json", "dataset_info.json", "state.json")):
        raise DataError(f"{path} is a folder, but not a dataset saved with datasets' save_to_disk",
                        "pick the data file inside it, or a folder holding dataset_info.json or dataset_dict.json")
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises many types for a damaged folder; all mean the same here
        raise DataError(f"cannot load the saved dataset in {path}: {exc}",
                        "save it again with save_to_disk, or export it to JSONL") from None
    notes: list[str] = []
    if isinstance(loaded, datasets.DatasetDict):
        loaded = _pick_split(path, loaded, notes)
    table = _table_of(path, loaded.to_list())
    table.notes = notes
    return table


def _pick_split(path: Path, splits: Any, notes: list[str]) -> Any:
    """The 'train' split of a DatasetDict (or its only split), noting the others."""
    names = list(splits)
    if "train" in splits:
        chosen = "train"
    elif len(names) == 1:
        chosen = names[0]
    else:
        raise DataError(f"{path} holds splits {', '.join(names)} but none named 'train'",
                        f"pick one split's folder, e.g. {path / names[0]}")
    others = [f"'{n}' ({splits[n].num_rows} rows, folder {path / n})" for n in names if n != chosen]
    notes.append(f"used split '{chosen}'" + (f"; also in the folder: {', '.join(others)}" if others else ""))
    return splits[chosen]


def _add_record(table: RawTable, row: int, rec: Any) -> None:
    """Keep a parsed row if it is an object; otherwise record it as a bad row."""
    if isinstance(rec, dict):
        table.records.append((row, rec))
    else:
        reason = f"expected a JSON object with named fields, got {a_json_type(rec)}"
        table.bad_rows.append(BadRow(row, reason, rec))


def _columns(records: list[tuple[int, dict]]) -> list[str]:
    """Every key seen in the records, in order of first appearance."""
    seen: dict[str, None] = {}
    for _, rec in records:
        for key in rec:
            if key not in seen:
                seen[key] = None
    return [str(k) for k in seen]


def json_type(value: Any) -> str:
    """A JSON-flavoured name for a value's type, for messages."""
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def a_json_type(value: Any) -> str:
    """The JSON type with its article: "got an object", "got a list", "got null"."""
    name = json_type(value)
    return name if name == "null" else ("an " if name[0] in "aeiou" else "a ") + name


_READERS = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv,
            "tsv": lambda path, text: _read_csv(path, text, "\t")}
