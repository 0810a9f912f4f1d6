"""Measure a dataset's sequences through the trainer's encoder, and remember the result.

:func:`measure` encodes examples untruncated with the trainer's own ``Encoder`` and keeps, per
sequence, its length and the spans of tokens that carry loss: enough for
:mod:`studio.core.stats` to answer every ``max_length`` and padding question without encoding
again.

:func:`measure_file` also remembers the result on disk, keyed by everything that can change a
token count: the bytes of the data file (every file, for a saved-dataset folder), the bytes of
the tokenizer files, the resolved template, the encode options that matter before truncation,
the requested format and column mapping, and :data:`CACHE_VERSION`. A hit skips loading the
file too (the validation report is stored with the lengths), so a second look at a 100k-row
file costs only hashing it. :func:`measure_dataset` does the same for a report already loaded.

Entries are JSON files under ``$STUDIO_HOME/cache/stats`` when ``STUDIO_HOME`` is set, else
under the platform's user cache folder (``~/.cache/studio/stats`` on Linux). A damaged or
unreadable entry is a miss, never an error: the cache only ever saves time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field, replace
from itertools import chain
from pathlib import Path

log = logging.getLogger("studio.stats")

#: bump when the stored shape or the meaning of a length changes
CACHE_VERSION = 1
#: the tokenizer files whose bytes decide how text is encoded
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "chat_template.json")
#: at most this many encoder warnings are kept (with their row); the rest are only counted
MAX_WARNINGS = 50
IGNORE = -100
#: entries kept in the cache folder; the least recently written beyond this are removed
MAX_ENTRIES = 64
_CHUNK = 1 << 20


@dataclass
class Measured:
    """Untruncated length and loss-token spans of every sequence of a dataset, in order.

    Attributes:
        rows: the source row number of each sequence.
        lengths: tokens per sequence, untruncated.
        loss_spans: per sequence, flat ``[start, end, ...]`` spans of tokens that carry loss.
        sequences_per_row: 2 for preference data (chosen, rejected), else 1.
        warnings: the first :data:`MAX_WARNINGS` encoder warnings as ``[row, message]``.
        warning_count: all encoder warnings.
        cache_hit: these numbers came from the cache.
    """

    rows: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    loss_spans: list[list[int]] = field(default_factory=list)
    sequences_per_row: int = 1
    warnings: list[list] = field(default_factory=list)
    warning_count: int = 0
    cache_hit: bool = False

    def add_all(self, encoded: list) -> None:
        """Record ``Encoded`` sequences, in order."""
        self.rows += [e.row for e in encoded]
        self.lengths += [len(e.input_ids) for e in encoded]
        self.loss_spans += many_loss_spans([e.labels for e in encoded])
        for e in encoded:
            if e.warnings:
                self.warning_count += len(e.warnings)
                room = max(MAX_WARNINGS - len(self.warnings), 0)
                self.warnings.extend([e.row, w] for w in e.warnings[:room])


_STORED = ("rows", "lengths", "loss_spans", "sequences_per_row", "warnings", "warning_count")


@dataclass
class DataSummary:
    """The validation facts of a loaded dataset, small enough to cache with its lengths.

    Attributes:
        bad_rows: every bad row as ``[row, reason]``.
        text: ``DataReport.summary()`` as it read when the file was loaded.
    """

    path: str
    format: str
    total_rows: int
    usable_rows: int
    bad_rows: list[list]
    text: str

    @classmethod
    def of(cls, report) -> DataSummary:
        """The summary of a ``DataReport``."""
        return cls(str(report.path), report.format, report.total_rows, report.usable_rows,
                   [[b.row, b.reason] for b in report.bad_rows], report.summary())

    def summary(self) -> str:
        """The readable report, as ``DataReport.summary()``."""
        return self.text


def loss_spans(labels: list[int]) -> list[int]:
    """Flat ``[start, end, ...]`` spans of positions whose label is not -100."""
    # A byte mask searched with bytes.find keeps the per-token work in C: 100k rows of a few
    # hundred tokens each would otherwise spend seconds in a Python loop here.
    mask = bytes(map((-100).__ne__, labels))
    spans: list[int] = []
    pos = 0
    while (start := mask.find(1, pos)) >= 0:
        end = mask.find(0, start)
        pos = len(mask) if end < 0 else end
        spans += (start, pos)
    return spans


def many_loss_spans(label_lists: list[list[int]]) -> list[list[int]]:
    """:func:`loss_spans` of many sequences at once (the same result, several times faster).

    All labels go into one numpy array, so finding where loss starts and stops costs a few
    vectorised passes instead of a Python step per token.
    """
    import numpy as np

    if not label_lists:
        return []
    sizes = np.fromiter(map(len, label_lists), dtype=np.int64, count=len(label_lists))
    ends_of_rows = np.cumsum(sizes)
    flat = np.fromiter(chain.from_iterable(label_lists), dtype=np.int64, count=int(ends_of_rows[-1]))
    loss = np.concatenate(([False], flat != IGNORE, [False]))
    # a loss run may not continue across a row boundary: break the run at every row start
    cut = ends_of_rows[:-1][sizes[1:] > 0]
    rising = np.flatnonzero(loss[1:] & ~loss[:-1])
    falling = np.flatnonzero(loss[:-1] & ~loss[1:])
    rising = np.union1d(rising, cut[loss[cut + 1]])
    falling = np.union1d(falling, cut[loss[cut]])
    starts_of_rows = ends_of_rows - sizes
    owner = np.searchsorted(ends_of_rows, rising, side="right")
    out: list[list[int]] = [[] for _ in label_lists]
    for row, start, end in zip(owner.tolist(), (rising - starts_of_rows[owner]).tolist(),
                               (falling - starts_of_rows[owner]).tolist()):
        out[row] += (start, end)
    return out


def measure(examples: list, encoder) -> Measured:
    """Encode ``examples`` with ``encoder`` and record every sequence.

    Chat and completion rows go through ``encode_many`` in one batched call (the fast path);
    a preference row adds its chosen then its rejected sequence.
    """
    plain = [e for e in examples if e.kind != "preference"]
    encoded = iter(encoder.encode_many(plain) if plain else [])
    sequences = []
    for example in examples:
        if example.kind == "preference":
            pair = encoder.encode_pair(example)
            sequences += (pair.chosen, pair.rejected)
        else:
            sequences.append(next(encoded))
    out = Measured(sequences_per_row=2 if len(plain) < len(examples) else 1)
    out.add_all(sequences)
    return out


def measure_file(path, encoder, format: str = "auto", columns: dict | None = None,
                 use_cache: bool = True) -> tuple[DataSummary, Measured]:
    """Load and measure a dataset file, or find both in the cache without loading it.

    Args:
        path: the dataset file or saved-dataset folder.
        encoder: the ``Encoder`` to measure with (an untruncated copy when it truncates).
        format, columns: as ``load_examples`` takes them.
        use_cache: read and write the cache.

    Raises:
        DataError: the file cannot be read or has no usable row (see ``load_examples``).
        TemplateError: the template cannot render a row.
    """
    from studio.core.data import load_examples

    encoder = _untruncated(encoder)
    key = make_key(path, encoder, requested_format=format, columns=columns) if use_cache else None
    entry = load(key) if key else None
    if entry is not None and isinstance(entry.get("data"), dict):
        return DataSummary(**entry["data"]), _from_entry(entry)
    report = load_examples(path, format=format, columns=columns)
    measured, summary = measure(report.examples, encoder), DataSummary.of(report)
    if key:
        store(key, {**_to_entry(measured), "data": asdict(summary)})
    return summary, measured


def measure_dataset(report, encoder, columns: dict | None = None, use_cache: bool = True) -> Measured:
    """:func:`measure` an already loaded ``DataReport``, through the cache.

    Args:
        report: from ``load_examples``; its ``path`` keys the cache (no path: no caching).
        encoder: the ``Encoder`` to measure with (an untruncated copy when it truncates).
        columns: the column mapping the report was loaded with.
        use_cache: read and write the cache.
    """
    encoder = _untruncated(encoder)
    key = make_key(report.path, encoder, format=report.format, columns=columns) if use_cache and report.path else None
    entry = load(key) if key else None
    if entry is not None:
        return _from_entry(entry)
    measured = measure(report.examples, encoder)
    if key:
        store(key, _to_entry(measured))
    return measured


def _untruncated(encoder):
    if encoder.options.max_length is None:
        return encoder
    from studio.core.encoding import Encoder

    return Encoder(encoder.tokenizer, replace(encoder.options, max_length=None))


def _to_entry(measured: Measured) -> dict:
    return {k: getattr(measured, k) for k in _STORED}


def _from_entry(entry: dict) -> Measured:
    return Measured(**{k: entry[k] for k in _STORED}, cache_hit=True)


# --- the cache files ---------------------------------------------------------------------------


def cache_dir() -> Path:
    """The folder holding statistics cache entries (not created here)."""
    home = os.environ.get("STUDIO_HOME")
    if home:
        return Path(home) / "cache" / "stats"
    import platformdirs

    return Path(platformdirs.user_cache_dir("studio")) / "stats"


def _hash_file(digest, path: Path) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)


def content_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes, or of every file (with its relative name) in a folder."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(item.relative_to(path)).encode() + b"\0")
            _hash_file(digest, item)
    else:
        _hash_file(digest, path)
    return digest.hexdigest()


def tokenizer_hash(folder: str | Path) -> str:
    """SHA-256 over the tokenizer files present in ``folder``."""
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        item = Path(folder) / name
        if item.is_file():
            digest.update(name.encode() + b"\0")
            _hash_file(digest, item)
    return digest.hexdigest()


def make_key(data_path: str | Path, encoder, **settings) -> str:
    """One cache key from the data, the encoder's tokenizer, template and options, and ``settings``.

    Raises:
        DataError: ``data_path`` cannot be read.
    """
    from studio.core.errors import DataError

    options = {k: v for k, v in asdict(encoder.options).items() if k not in ("max_length", "truncation_side")}
    try:
        data = content_hash(data_path)
    except OSError as exc:
        raise DataError(f"{data_path} cannot be read: {exc.strerror or exc}", "check the path and its permissions") from None
    parts = {"v": CACHE_VERSION, "data": data, "tokenizer": tokenizer_hash(encoder.tokenizer.path),
             "template": [encoder.template.name, encoder.template.source], "options": options, **settings}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def load(key: str) -> dict | None:
    """The stored entry for ``key``, or ``None`` on a miss (absent, unreadable, other version)."""
    path = cache_dir() / f"{key}.json"
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("v") != CACHE_VERSION or not all(k in entry for k in _STORED):
        return None
    return entry


def store(key: str, entry: dict) -> Path | None:
    """Write ``entry`` for ``key`` atomically; ``None`` (and a log line) if it cannot be written."""
    folder = cache_dir()
    path = folder / f"{key}.json"
    tmp = folder / f".{key}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({**entry, "v": CACHE_VERSION}, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not write the statistics cache %s: %s", path, exc)
        return None
    _prune(folder)
    return path


def _prune(folder: Path) -> None:
    """Keep the :data:`MAX_ENTRIES` newest entries: a big dataset's entry is megabytes."""
    try:
        entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[MAX_ENTRIES:]:
            old.unlink()
    except OSError as exc:  # another process pruning at the same time
        log.debug("statistics cache pruning skipped: %s", exc)
