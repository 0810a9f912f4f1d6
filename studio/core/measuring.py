"""Lengths and loss spans of many chat rows, read straight from the tokenizer's encodings.

:func:`studio.core.lengths.measure` needs, per sequence, only its length, the spans of tokens
that carry loss and the encoder's warnings. The trainer's path (``Encoder.encode_many``) also
builds every token's id, label and role as Python lists, which for 100k rows of 150 tokens is
millions of objects made only to be counted. :func:`measure_plain` lays the rows out with the
same :class:`~studio.core.layout.Layouter`, tokenizes them in one ``tokenizers`` batch per chunk
(the batch runs on the library's own threads, without the interpreter lock, while this thread
lays out the next chunk) and maps each loss region's character edges to token positions with a
few lookups in the encoding instead of a pass over its offsets.

The mapping is ``Encoder._labels``'s: a region ``[a, b)`` covers the tokens from the first that
starts at or after ``a`` (``bisect_left`` over token starts) to the first that starts at or after
``b``; a token straddling ``a`` is included, with a warning, as is one straddling ``b``'s
warning. A lookup that cannot prove its answer (a character no token covers, a token that does
not start exactly at the edge) takes the row's offsets and runs the same bisection, so every
row gives what the trainer's path gives; ``tests/unit/core/test_measuring.py`` compares both.
"""

from __future__ import annotations

from typing import Callable, Iterable

from studio.core.lengths import MAX_WARNINGS, Measured, loss_spans

#: rows per tokenizer batch: large enough for the library's threads, small enough for progress
CHUNK = 4096
#: the kinds of row measured here
PLAIN = ("chat", "completion")


class Cancelled(Exception):
    """Measuring was cancelled (the ``cancelled`` callable said so between two chunks)."""


class NotPlain(Exception):
    """A chunk holds a row that is measured elsewhere (a preference pair, raw text)."""


def measure_plain(encoder, examples: list, progress: Callable[[int, int], None] | None = None,
                  cancelled: Callable[[], bool] | None = None):
    """Measure chat and prompt/completion rows (no preference pairs, no raw text).

    Args:
        encoder: the untruncated ``Encoder`` to measure with.
        progress: called with (rows done, rows in all) after each chunk.
        cancelled: asked between chunks; when it returns true, :class:`Cancelled` is raised.

    Returns:
        a :class:`~studio.core.lengths.Measured`.

    Raises:
        TemplateError: the template cannot render a row (as ``Encoder.encode_many`` raises it).
        Cancelled: ``cancelled()`` returned true.
    """
    total = len(examples)
    chunks = (examples[at: at + CHUNK] for at in range(0, total, CHUNK))
    return measure_chunks(encoder, chunks, total, progress, cancelled)


def measure_chunks(encoder, chunks: Iterable[list], total: int, progress: Callable[[int, int], None] | None = None,
                   cancelled: Callable[[], bool] | None = None):
    """:func:`measure_plain` of rows that come a chunk at a time (e.g. while a file is still being checked:
    ``ExampleReader.chunks``); a chunk of up to :data:`CHUNK` rows is one tokenizer batch.

    Args:
        total: the rows expected in all, for ``progress`` (its last call says ``(total, total)``).

    Raises:
        NotPlain: a chunk holds a row of another kind (the chunks before it were measured in vain).
        TemplateError, Cancelled: as :func:`measure_plain` raises them.
    """
    from concurrent.futures import ThreadPoolExecutor

    out = Measured()
    recorder = _Recorder(encoder, out)
    done = 0
    with ThreadPoolExecutor(1, thread_name_prefix="studio-tokenize") as pool:
        pending = None
        for chunk in chunks:
            if cancelled is not None and cancelled():
                raise Cancelled()
            if not all(e.kind in PLAIN for e in chunk):
                raise NotPlain()
            if not chunk:
                continue  # a chunk of bad rows only
            layouts = encoder._layouts(chunk, None)
            future = pool.submit(recorder.tokenize, layouts)
            if pending is not None:
                recorder.record_all(*pending)
                if progress is not None:
                    progress(done, total)
            pending, done = (layouts, future), done + len(chunk)
        if pending is not None:
            recorder.record_all(*pending)
    if progress is not None:
        progress(total, total)
    return out


class _Recorder:
    """Turns laid-out rows and their encodings into a ``Measured``'s lists."""

    def __init__(self, encoder, out) -> None:
        self.encoder, self.out = encoder, out
        self.bos = encoder.bos_id

    def tokenize(self, layouts: list) -> list:
        """The rows' encodings; a row tokenized in pieces (a preference pair) as ``Encoder._tokenize``."""
        if any(lay.splits for lay in layouts):
            return self.encoder._tokenize(layouts)
        return self.encoder.tokenizer.encodings([lay.text for lay in layouts])

    def record_all(self, layouts: list, future) -> None:
        out = self.out
        for lay, enc in zip(layouts, future.result()):
            if isinstance(enc, tuple):  # (ids, offsets) of a row tokenized in pieces
                ids, spans = enc[0], self._spans_from_offsets(lay, enc[0], enc[1])
            else:
                ids = enc.ids
                spans = self._spans(lay, enc, ids)
            warnings = lay.warnings
            if ids[:2] == [self.bos, self.bos] and self.bos is not None:
                warnings.append(f"row {lay.row} starts with two BOS tokens; remove the BOS from the data "
                                "or use a template that writes it once")
            if lay.loss and not spans:
                warnings.append(f"row {lay.row}: no token carries loss")
            out.rows.append(lay.row)
            out.lengths.append(len(ids))
            out.loss_spans.append(spans)
            if warnings:
                out.warning_count += len(warnings)
                room = max(MAX_WARNINGS - len(out.warnings), 0)
                out.warnings.extend([lay.row, w] for w in warnings[:room])

    # -- loss regions to token spans ------------------------------------------------------------

    def _spans(self, lay, enc, ids: list[int]) -> list[int]:
        """Flat ``[start, end, ...]`` token spans carrying loss, as ``loss_spans(labels)`` of the trainer's labels."""
        n, size = len(ids), len(lay.text)
        edges = [(_at(enc, a, n, size), _at(enc, b, n, size)) for a, b in lay.loss]
        if any(first is None or stop is None for first, stop in edges):
            return self._spans_from_offsets(lay, ids, enc.offsets)  # the row's offsets decide
        ranges = []
        for (a, b), (first, stop) in zip(lay.loss, edges):
            if first > 0 and enc.token_to_chars(first - 1)[1] > a:
                first -= 1  # a token straddling the edge overlaps the loss region: it is trained
                self.encoder._straddle(lay, ids, first)
            if 0 < stop < n and enc.token_to_chars(stop - 1)[1] > b:
                self.encoder._straddle(lay, ids, stop - 1)
            if first < stop:
                ranges.append((first, stop))
        return _merge(ranges)

    def _spans_from_offsets(self, lay, ids: list[int], offsets: list) -> list[int]:
        """The same spans from the row's offsets, by ``Encoder._labels`` itself."""
        return loss_spans(self.encoder._labels(lay, ids, offsets, [s for s, _ in offsets]))


def _at(enc, p: int, n: int, size: int) -> int | None:
    """``bisect_left`` of ``p`` over the token starts, or ``None`` when a lookup cannot prove it.

    Token starts never decrease, so the answer is ``k`` when token ``k`` starts at ``p`` and token
    ``k - 1`` before it; at the end of the text it is ``n`` when the last token starts before it.
    """
    if p >= size:
        return n if n == 0 or enc.token_to_chars(n - 1)[0] < p else None
    k = enc.char_to_token(p)
    if k is None or enc.token_to_chars(k)[0] != p:
        return None
    if k > 0 and enc.token_to_chars(k - 1)[0] >= p:
        return None
    return k


def _merge(ranges: list[tuple[int, int]]) -> list[int]:
    """Token ranges joined where they touch or overlap, flat and in order."""
    if len(ranges) == 1:
        return list(ranges[0])
    out: list[int] = []
    for first, stop in sorted(ranges):
        if out and first <= out[-1]:
            out[-1] = max(out[-1], stop)
        else:
            out += (first, stop)
    return out
