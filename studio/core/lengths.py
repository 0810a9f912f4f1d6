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
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from itertools import chain, takewhile
from pathlib import Path
from typing import Callable

log = logging.getLogger("studio.stats")
#: called with (rows measured, rows in all)
Progress = Callable[[int, int], None]

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


def measure(examples: list, encoder, workers: int | None = None, progress: Progress | None = None,
            cancelled: Callable[[], bool] | None = None) -> Measured:
    """Encode ``examples`` with ``encoder`` and record every sequence.

    Chat and completion rows, untruncated, are measured here straight from the tokenizer's
    encodings (:func:`studio.core.measuring.measure_plain`: the ``tokenizers`` batch already runs
    on every core, and a second process would only add the cost of sending it the rows). Other
    rows go through ``encode_many`` in one batched call; a preference row adds its chosen then
    its rejected sequence.

    A large dataset of other rows is split into consecutive parts measured at the same time: this process
    measures the first while worker processes (fresh interpreters, see :class:`_Worker`, so
    calling this from a GUI thread is safe) each load the tokenizer from its folder, build the
    same ``Encoder`` and measure another. Only lengths, loss spans and warnings come back, and parts are joined in
    order, so the result is the one a single process gives. A part that fails in a worker is
    measured again here, so its error is raised as usual.

    Args:
        workers: processes to use for other rows, this one included; ``None`` picks by the rows
            and the CPUs (see :data:`PARALLEL_ROWS`); 1 measures everything here.
        progress: called with (rows measured, rows in all) as the work goes on (chat rows only).
        cancelled: asked between chunks of chat rows; when it returns true,
            :class:`~studio.core.measuring.Cancelled` is raised.
    """
    if _plain(examples, encoder):
        from studio.core.measuring import measure_plain

        return measure_plain(encoder, examples, progress, cancelled)
    workers = _workers(len(examples)) if workers is None else max(1, min(workers, len(examples)))
    origin = _origin(encoder) if workers > 1 else None
    if origin is None:
        return measure_reference(examples, encoder)
    # this process starts at once; a worker first starts Python and unpickles its rows
    size = int(len(examples) / (workers - 1 + HERE_SHARE)) + 1
    first = min(len(examples), int(size * HERE_SHARE))
    parts = [examples[:first]] + [examples[at: at + size] for at in range(first, len(examples), size)]
    if len(parts) == 1:
        return measure_reference(examples, encoder)
    from concurrent.futures import ThreadPoolExecutor

    procs: list[_Worker] = []
    with ThreadPoolExecutor(len(parts) - 1, thread_name_prefix="studio-measure") as threads:
        try:
            for part in parts[1:]:
                procs.append(_Worker(origin, part))
        except OSError as exc:  # cannot start a process: measure everything here
            log.debug("no measuring worker (%s)", exc)
            for proc in procs:
                proc.stop()
            return measure_reference(examples, encoder)
        try:
            futures = [threads.submit(proc.result) for proc in procs]
            entries = [_to_entry(measure_reference(parts[0], encoder))]
            for future, part in zip(futures, parts[1:]):
                entry = future.result()
                entries.append(entry if entry is not None else _to_entry(measure_reference(part, encoder)))
        finally:
            for proc in procs:
                proc.stop()
    out = Measured(sequences_per_row=2 if any(e.kind == "preference" for e in examples) else 1)
    for entry in entries:
        out.rows += entry["rows"]
        out.lengths += entry["lengths"]
        out.loss_spans += entry["loss_spans"]
        out.warnings += entry["warnings"][: max(MAX_WARNINGS - len(out.warnings), 0)]
        out.warning_count += entry["warning_count"]
    return out


#: from this many rows on, :func:`measure` splits the work across processes (starting a worker
#: costs about a second; below this the serial path is as fast)
PARALLEL_ROWS = 10_000
#: at most this many processes measure at once
MAX_WORKERS = 4
#: rows this process measures for every row a worker measures (measured on 2 cores: a worker
#: answers ~3 s after this process on 50k rows each, as it starts late)
HERE_SHARE = 1.2


def _workers(rows: int) -> int:
    if rows < PARALLEL_ROWS:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cpus, MAX_WORKERS, rows // (PARALLEL_ROWS // 2)))


def _origin(encoder) -> tuple | None:
    """What a worker needs to build the very same encoder, or ``None`` if it cannot."""
    import sys

    from studio.core.tokenizer import Tokenizer

    folder = getattr(encoder.tokenizer, "path", None)
    if getattr(sys, "frozen", False):  # a bundled app's executable does not run ``python -c``
        return None
    if not isinstance(encoder.tokenizer, Tokenizer) or folder is None or not (Path(folder) / "tokenizer.json").is_file():
        return None
    return str(folder), encoder.options, encoder.template.source


class _Worker:
    """A ``python`` process measuring one part: it gets the encoder's origin and the examples
    pickled on stdin and answers the stored entry pickled on stdout.

    A fresh interpreter rather than ``multiprocessing``: it never imports the caller's main
    script (a script without a ``__main__`` guard would run again) and forks nothing, so it is
    safe from a GUI thread.
    """

    def __init__(self, origin: tuple, examples: list) -> None:
        import pickle
        import subprocess
        import sys

        import studio

        self.payload = pickle.dumps((*origin, examples), protocol=pickle.HIGHEST_PROTOCOL)
        root = str(Path(studio.__file__).resolve().parents[1])
        code = "import sys; sys.path.insert(0, sys.argv[1]); from studio.core.lengths import _worker_main; _worker_main()"
        self.process = subprocess.Popen([sys.executable, "-c", code, root], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def result(self) -> dict | None:
        """The part's entry, or ``None`` (and a log line) if the worker failed."""
        import pickle

        out, err = self.process.communicate(self.payload)
        try:
            if self.process.returncode == 0:
                return pickle.loads(out)
        except Exception:  # noqa: BLE001 - a damaged answer is a failure like any other
            pass
        log.debug("a measuring worker failed (exit %s): %s", self.process.returncode, err.decode(errors="replace")[-2000:])
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _worker_main() -> None:
    """The worker process: measure the pickled part with an encoder built from the tokenizer folder."""
    import pickle
    import sys

    from studio.core.encoding import Encoder
    from studio.core.tokenizer import load_tokenizer

    answer, sys.stdout = sys.stdout.buffer, sys.stderr  # nothing else may write to the answer
    folder, options, source, examples = pickle.load(sys.stdin.buffer)
    encoder = Encoder(load_tokenizer(folder), options)
    if encoder.template.source != source:  # the folder changed since: the parent measures instead
        sys.exit("the tokenizer folder's template changed")
    pickle.dump(_to_entry(measure_reference(examples, encoder)), answer, protocol=pickle.HIGHEST_PROTOCOL)
    answer.flush()


def _plain(examples: list, encoder) -> bool:
    """Rows :func:`~studio.core.measuring.measure_plain` measures: chat and completion rows, untruncated,
    with a tokenizer that hands out its encodings (the core one)."""
    return encoder.options.max_length is None and hasattr(encoder.tokenizer, "encodings") \
        and all(e.kind in ("chat", "completion") for e in examples)


def measure_reference(examples: list, encoder) -> Measured:
    """:func:`measure` in this process through ``Encoder.encode_many`` and ``encode_pair``: the
    trainer's own sequences, token by token (also the reference the fast path is tested against)."""
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
                 use_cache: bool = True, text_split: str = "line",
                 progress: Progress | None = None, cancelled: Callable[[], bool] | None = None
                 ) -> tuple[DataSummary, Measured]:
    """Load and measure a dataset file, or find both in the cache without loading it.

    Chat and completion rows are measured while the file is still being read and checked: each
    chunk of rows goes to the tokenizer as soon as it is parsed and normalised
    (``open_examples(stream=True)``, :meth:`~studio.core.data_reader.ExampleReader.chunks`), so its
    threads do not wait for the whole file.

    Args:
        path: the dataset file or saved-dataset folder.
        encoder: the ``Encoder`` to measure with (an untruncated copy when it truncates).
        format, columns: as ``load_examples`` takes them.
        use_cache: read and write the cache.
        progress, cancelled: as :func:`measure` takes them (a cache hit reports nothing).

    Raises:
        DataError: the file cannot be read or has no usable row (see ``load_examples``).
        TemplateError: the template cannot render a row.
        Cancelled: ``cancelled()`` returned true (nothing is stored).
    """
    from studio.core.data_reader import open_examples

    encoder = _untruncated(encoder)
    split = {"text_split": text_split} if text_split != "line" else {}  # keys of earlier entries unchanged
    key = make_key(path, encoder, requested_format=format, columns=columns, **split) if use_cache else None
    entry = load(key) if key else None
    if entry is not None and isinstance(entry.get("data"), dict):
        return DataSummary(**entry["data"]), _from_entry(entry)
    with collection_paused():
        reader = open_examples(path, format=format, columns=columns, text_split=text_split, stream=True)
        measured = _measure_while_reading(reader, encoder, progress, cancelled)
        summary = DataSummary.of(reader.report())
        if measured is None or reader.restarted:  # rows measure_chunks does not take, or rows read again
            measured = measure(reader.examples, encoder, progress=progress, cancelled=cancelled)
    if key:
        store(key, {**_to_entry(measured), "data": asdict(summary)})
    return summary, measured


@contextmanager
def collection_paused():
    """Python's automatic garbage collection off for the block, then as it was.

    Reading and measuring 100k rows makes millions of objects that all stay alive (rows, turns,
    layouts) and form no cycles; each automatic collection walks them again, which took half of
    the thread's time (3 of 6 s of CPU per 100k chat rows). The window keeps automatic collection
    off anyway (``studio.gui.collector``): there this changes nothing.
    """
    import gc

    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _measure_while_reading(reader, encoder, progress: Progress | None,
                           cancelled: Callable[[], bool] | None) -> Measured | None:
    """The rows of ``reader`` measured chunk by chunk as they are normalised, or ``None`` when they
    are not all chat and completion rows (then the reader has normalised only some of them). When
    the reader starts again, what is returned is partial (``reader.restarted`` says so)."""
    if not _plain([], encoder):
        return None
    from studio.core.measuring import CHUNK, NotPlain, measure_chunks

    # a reader that starts again (the whole file settled another format or mapping) ends the chunks here
    chunks = takewhile(lambda _: not reader.restarted, reader.chunks(CHUNK))
    try:
        return measure_chunks(encoder, chunks, reader.rows, progress, cancelled)
    except NotPlain:
        return None


def measure_dataset(report, encoder, columns: dict | None = None, use_cache: bool = True,
                    progress: Progress | None = None, cancelled: Callable[[], bool] | None = None) -> Measured:
    """:func:`measure` an already loaded ``DataReport``, through the cache.

    Args:
        report: from ``load_examples``; its ``path`` keys the cache (no path: no caching).
        encoder: the ``Encoder`` to measure with (an untruncated copy when it truncates).
        columns: the column mapping the report was loaded with.
        use_cache: read and write the cache.
        progress, cancelled: as :func:`measure` takes them (a cache hit reports nothing).

    Raises:
        Cancelled: ``cancelled()`` returned true (nothing is stored).
    """
    encoder = _untruncated(encoder)
    # raw text: the documents depend on how the file was split, so their count is part of the key
    split = {"documents": report.total_rows} if report.format == "text" else {}
    key = make_key(report.path, encoder, format=report.format, columns=columns, **split) \
        if use_cache and report.path else None
    entry = load(key) if key else None
    if entry is not None:
        return _from_entry(entry)
    measured = measure(report.examples, encoder, progress=progress, cancelled=cancelled)
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
