"""A look at a raw-text file that never holds the file: counts over all of it, the first documents kept.

The Data page, the Inspect page, ``studio inspect`` and ``studio preview`` show a raw-text corpus
that can be larger than memory. :func:`scan` reads a :class:`~studio.core.text_stream.TextSource`
once, as training reads it, and keeps only:

- the first :data:`ROWS_SHOWN` documents (the rows a person looks at), and, when it tokenizes,
  the first documents up to :data:`KEPT_TOKENS` tokens (at most :data:`KEPT_DOCUMENTS` of them),
  from which the first blocks are cut exactly as training cuts them;
- counts: rows, documents, bad rows (the first :data:`~studio.core.text_stream.BAD_KEPT` with their
  reasons), and with a tokenizer the tokens of all documents and how many documents have each
  length (a :class:`collections.Counter`: as many entries as there are distinct lengths).

Documents held out for evaluation (``held``, as :func:`studio.core.data.held_out` picks them) are
counted and kept to show, but their tokens are not counted and no block holds them, as in
training (:func:`studio.core.text_stream.split_blocks`). Blocks are cut from one token stream,
so the number of blocks of any ``max_length`` and the remainder follow from the token count alone (:meth:`TextScan.blocks`): changing ``max_length``
needs no second pass. ``progress(done, total)`` is called (with bytes of the file) after every
chunk of documents; an exception it raises stops the pass (how the window cancels one).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from typing import Callable

#: Documents kept with their text for the rows a person looks at.
ROWS_SHOWN = 1000
#: Tokens of the first documents kept to cut the first blocks from.
KEPT_TOKENS = 1 << 20
#: At most this many documents are kept to cut blocks from (a corpus of very short documents).
KEPT_DOCUMENTS = 20_000
#: Blocks shown at most (each a list of ``max_length`` token ids once built).
BLOCKS_SHOWN = 256


@dataclass
class TextScan:
    """What one pass over a raw-text file found.

    Attributes:
        source: the :class:`~studio.core.text_stream.TextSource` read (its counts are those of the pass).
        examples: the first documents, in file order (see the module's notes on how many).
        tokens: tokens of all training documents, each with its BOS and end-of-text (``None`` without a
            tokenizer).
        kept_tokens: tokens of the kept training documents.
        lengths: training document length in tokens -> documents of that length.
        end_token: the token written after every document.
        kept_lengths: tokens of each kept document.
        evaluation: documents held out for evaluation.
        held_rows: rows of the kept documents held out for evaluation.
    """

    source: object
    examples: list = field(default_factory=list)
    tokens: int | None = None
    kept_tokens: int = 0
    lengths: Counter = field(default_factory=Counter)
    end_token: str | None = None
    kept_lengths: list = field(default_factory=list)
    evaluation: int = 0
    held_rows: set = field(default_factory=set)

    @property
    def documents(self) -> int:
        return self.source.usable

    @property
    def complete(self) -> bool:
        """Every document of the file is kept."""
        return len(self.examples) == self.documents

    def report(self):
        """A :class:`~studio.core.data.DataReport` of the pass: its counts, its kept bad rows and the
        first documents (``usable_rows`` counts them all), with a note saying how many are shown."""
        report = self.source.report()
        report.examples = list(self.examples)
        report.usable, report.bad_count = self.documents, self.source.bad_count
        if not self.complete:
            report.notes.append(f"read as a stream: the first {len(self.examples):,} of {self.documents:,} "
                                "documents are kept to show; every count covers the whole file")
        return report

    def measured(self):
        """The kept documents as :func:`studio.core.lengths.measure` records them (every token carries loss)."""
        from studio.core.lengths import Measured

        return Measured(rows=[ex.row for ex in self.examples], lengths=list(self.kept_lengths),
                        loss_spans=[[0, n] if n else [] for n in self.kept_lengths])

    def blocks(self, tokenizer, size: int, limit: int | None = None):
        """The first blocks of ``size`` tokens (at most ``limit``, all cut from the kept documents, as
        training cuts them) and the counts of the whole file: documents, tokens, blocks, remainder.
        ``limit``: :data:`BLOCKS_SHOWN` when not given."""
        from studio.core.pretrain import Blocks, pack_blocks

        if self.tokens is None:
            raise ValueError("scan the file with a tokenizer to cut blocks")
        limit = min(BLOCKS_SHOWN if limit is None else limit, self.kept_tokens // size)
        training = [ex for ex in self.examples if ex.row not in self.held_rows]
        out = pack_blocks(tokenizer, training, size, limit=limit) if limit else Blocks(size=size, end_token=self.end_token)
        out.documents, out.tokens = self.documents - self.evaluation, self.tokens
        out.count, out.remainder = divmod(self.tokens, size)
        return out


def scan(source, tokenizer=None, rows: int | None = None, progress: Callable[[int, int], None] | None = None,
         held: bytes | None = None) -> TextScan:
    """Read ``source`` once: count everything, keep the first documents.

    Args:
        source: a :class:`~studio.core.text_stream.TextSource`.
        tokenizer: the core tokenizer; with it, documents are tokenized as training tokenizes them
            (:func:`studio.core.pretrain.document_ids`) and up to :data:`KEPT_TOKENS` of them kept.
        rows: documents kept without a tokenizer (:data:`ROWS_SHOWN` when not given).
        progress: called with (bytes read, bytes of the file) after every chunk.
        held: 1 for each usable document held out for evaluation (see :func:`held_marks`); with a
            tokenizer, they are kept to show but left out of the tokens, lengths and blocks.

    Raises:
        DataError: the file cannot be read, or has no usable document.
    """
    from studio.core.pretrain import CHUNK, document_end, document_ids

    out = TextScan(source, end_token=document_end(tokenizer)[0] if tokenizer is not None else None)
    out.tokens = 0 if tokenizer is not None else None
    rows = ROWS_SHOWN if rows is None else rows
    docs, index = source.examples(), 0
    while chunk := list(islice(docs, CHUNK)):
        marks = (held or b"")[index:index + len(chunk)].ljust(len(chunk), b"\0")
        index += len(chunk)
        out.evaluation += sum(marks)
        lengths = [len(ids) for ids in document_ids(tokenizer, [ex.text for ex in chunk])] if tokenizer else None
        if lengths is None:
            out.examples += chunk[:max(rows - len(out.examples), 0)]
        else:
            training = [n for n, aside in zip(lengths, marks) if not aside]
            out.lengths.update(training)
            out.tokens += sum(training)
            _keep(out, chunk, lengths, marks)
        if progress is not None:
            progress(*source.progress())
    _check_usable(source)
    return out


def _keep(out: TextScan, chunk: list, lengths: list[int], marks: bytes) -> None:
    """Keep documents of ``chunk`` while the kept training ones hold fewer than :data:`KEPT_TOKENS` tokens."""
    for ex, n, held in zip(chunk, lengths, marks):
        if out.kept_tokens >= KEPT_TOKENS or len(out.examples) >= KEPT_DOCUMENTS:
            return
        out.examples.append(ex)
        out.kept_lengths.append(n)
        if held:
            out.held_rows.add(ex.row)
        else:
            out.kept_tokens += n


def held_marks(source, eval_fraction: float, seed: int, progress=None) -> bytes | None:
    """1 for each usable document of ``source`` that training holds out for evaluation (``None`` when
    none is): a first pass counts the documents, as :func:`studio.core.text_stream.split_blocks` does."""
    from studio.core.data import held_count, held_out

    if held_count(2, eval_fraction) == 0:  # a fraction of 0 (also checks that it is within 0..1)
        return None
    docs = source.examples()
    for count, _ in enumerate(docs, 1):
        if progress is not None and count % 4096 == 0:
            progress(*source.progress())
    marks = bytearray(source.usable)
    for i in held_out(source.usable, eval_fraction, seed):
        marks[i] = 1
    return bytes(marks)


def _check_usable(source) -> None:
    from studio.core.data import _no_usable_rows
    from studio.core.errors import DataError

    if not source.total_rows:
        raise DataError(f"{source.path} holds no rows", "add rows, or pick another file")
    if not source.usable:
        raise _no_usable_rows(source.path, source.total_rows, list(source.bad_rows))


def length_bins(lengths: Counter, bins: int = 20) -> list:
    """:func:`studio.core.stats.histogram` of documents counted by length (no list of every document)."""
    import math

    from studio.core.stats import Bin, nice_width

    if not lengths:
        return []
    longest = max(lengths)
    width = nice_width((longest + 1) / bins)
    counts = [0] * math.ceil((longest + 1) / width)
    for n, many in lengths.items():
        counts[n // width] += many
    return [Bin(i * width, min((i + 1) * width, longest + 1), c) for i, c in enumerate(counts)]


def length_percentiles(lengths: Counter) -> dict[str, int]:
    """:func:`studio.core.stats.percentiles` (nearest rank) of documents counted by length."""
    import math

    from studio.core.stats import PERCENTILE_POINTS

    total, ordered = sum(lengths.values()), sorted(lengths.items())
    out = {}
    for point in PERCENTILE_POINTS:
        rank, seen = max(1, math.ceil(point / 100 * total)), 0
        out[f"p{point}"] = next((n for n, many in ordered if (seen := seen + many) >= rank), 0)
    out["max"] = ordered[-1][0] if ordered else 0
    return out
