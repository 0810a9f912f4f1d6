"""Token-length statistics of a dataset: what ``max_length`` to pick and what padding costs.

The numbers come from the very encoding the trainer uses: :mod:`studio.core.lengths` measures
every sequence through the trainer's ``Encoder`` (and caches the result per file content);
the functions here turn those lengths into a histogram, percentiles, the cost of a
``max_length`` cut, the padding waste of each strategy and a recommended ``max_length``.

Conventions:
    * Every sequence is measured untruncated; truncation at any ``max_length`` is then
      computed from the lengths and the positions of the loss tokens (as the encoder cuts:
      ``right`` keeps the first tokens, ``left`` the last), so one measurement answers every
      ``max_length`` question.
    * A preference row is two sequences (chosen, rejected), as the preference trainers feed
      both through the model; a batch of ``B`` rows is then ``2B`` sequences.
    * Batches are formed in dataset order, ``batch_size`` rows each, the last one short.
      (The trainer shuffles rows each epoch; on data whose lengths do not follow the file
      order the waste is about the same.)
    * Padding widths are the trainer's ``collate``'s: ``multiple`` rounds the batch's
      longest up to ``multiple_of`` (even past ``max_length``); packing groups are
      ``pack_groups``'s, and their waste is the unused tail of each packed row.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

#: Percentiles reported by :func:`percentiles` (plus ``max``).
PERCENTILE_POINTS = (50, 90, 95, 99)
#: Padding strategies understood by :func:`padding_waste`, as in ``PadOptions.strategy``.
STRATEGIES = ("longest", "multiple", "max_length", "packing")
#: Tokenizers that do not know their context report a huge ``model_max_length``; above this
#: it is treated as unknown.
UNKNOWN_CONTEXT = 10_000_000


@dataclass(frozen=True)
class Bin:
    """One histogram bar: ``count`` sequences with ``lo <= length < hi``.

    ``overflow`` marks the last bar holding every sequence longer than the histogram's
    ``upper`` bound (the ones a ``max_length`` cut truncates).
    """

    lo: int
    hi: int
    count: int
    overflow: bool = False


def histogram(lengths: list[int], bins: int = 20, upper: int | None = None) -> list[Bin]:
    """Equal-width integer bins from 0, and one overflow bar for lengths above ``upper``.

    Args:
        lengths: sequence lengths in tokens.
        bins: the most regular bars; the width is rounded up to 1, 2 or 5 times a power of
            ten, so there may be fewer.
        upper: the longest length the regular bars show (e.g. ``max_length``); longer ones
            share one overflow bar, so one outlier does not squeeze every other bar.
            ``None`` or a bound past the longest sequence: no overflow bar.

    Returns:
        Bars whose counts add up to ``len(lengths)``; empty for no lengths.
    """
    if not lengths:
        return []
    longest = max(lengths)
    top = min(longest, upper) if upper is not None else longest
    width = nice_width((top + 1) / bins)
    counts = [0] * math.ceil((top + 1) / width)
    over = 0
    for n in lengths:
        if n > top:
            over += 1
        else:
            counts[n // width] += 1
    out = [Bin(i * width, min((i + 1) * width, top + 1), c) for i, c in enumerate(counts)]
    return out + [Bin(top + 1, longest + 1, over, overflow=True)] if over else out


def nice_width(raw: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... that is at least ``raw`` (readable bin edges)."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= raw:
                return step * scale
        scale *= 10


def percentile(sorted_lengths: list[int], point: float) -> int:
    """Nearest-rank percentile: the smallest length that at least ``point`` % of rows fit in."""
    if not sorted_lengths:
        return 0
    rank = max(1, math.ceil(point / 100 * len(sorted_lengths)))
    return sorted_lengths[rank - 1]


def percentiles(lengths: list[int]) -> dict[str, int]:
    """``{"p50": ..., "p90": ..., "p95": ..., "p99": ..., "max": ...}`` (nearest rank)."""
    ordered = sorted(lengths)
    out = {f"p{p}": percentile(ordered, p) for p in PERCENTILE_POINTS}
    out["max"] = ordered[-1] if ordered else 0
    return out


def recommend_max_length(lengths: list[int], context: int | None = None,
                         coverage: float = 0.99, step: int = 64) -> int:
    """The smallest multiple of ``step`` that fits ``coverage`` of the sequences whole.

    Args:
        lengths: sequence lengths in tokens.
        context: the model's context length; the answer never exceeds it.
        coverage: share of sequences that must fit untruncated.
        step: the answer is a multiple of this (kernels and memory like round numbers).
    """
    needed = percentile(sorted(lengths), coverage * 100) if lengths else 1
    best = max(step, math.ceil(needed / step) * step)
    return min(best, context) if context else best


@dataclass(frozen=True)
class Truncation:
    """What cutting every sequence at ``max_length`` would cost."""

    max_length: int
    sequences: int
    truncated: int
    loss_tokens: int
    lost_loss_tokens: int
    #: sequences that would keep no loss token at all (they would train nothing).
    emptied: int

    @property
    def share(self) -> float:
        """Share of sequences longer than ``max_length``."""
        return self.truncated / self.sequences if self.sequences else 0.0

    @property
    def lost_share(self) -> float:
        """Share of all loss tokens that truncation drops."""
        return self.lost_loss_tokens / self.loss_tokens if self.loss_tokens else 0.0


def lost_loss(length: int, spans: list[int], max_length: int, side: str = "right") -> int:
    """Loss tokens dropped from one sequence cut to ``max_length``.

    Args:
        length: untruncated length.
        spans: loss-token spans as a flat list ``[start0, end0, start1, end1, ...]``.
        max_length: the cut.
        side: ``"right"`` keeps the first ``max_length`` tokens, ``"left"`` the last.
    """
    if length <= max_length:
        return 0
    cut_lo, cut_hi = (max_length, length) if side == "right" else (0, length - max_length)
    lost = 0
    for start, end in zip(spans[::2], spans[1::2]):
        lost += max(0, min(end, cut_hi) - max(start, cut_lo))
    return lost


def truncation(lengths: list[int], loss_spans: list[list[int]], max_length: int,
               side: str = "right") -> Truncation:
    """How many sequences and loss tokens a ``max_length`` cut loses."""
    truncated = lost_total = emptied = loss_total = 0
    for length, spans in zip(lengths, loss_spans):
        have = span_total(spans)
        lost = lost_loss(length, spans, max_length, side)
        loss_total += have
        lost_total += lost
        truncated += length > max_length
        emptied += have > 0 and lost == have
    return Truncation(max_length, len(lengths), truncated, loss_total, lost_total, emptied)


def span_total(spans: list[int]) -> int:
    """Number of tokens covered by flat ``[start, end, ...]`` spans."""
    return sum(spans[1::2]) - sum(spans[::2])


@dataclass(frozen=True)
class Waste:
    """Padding cost of one strategy: ``pad_tokens`` of ``total_tokens`` fed to the model."""

    strategy: str
    pad_tokens: int
    total_tokens: int
    batches: int
    #: the widest batch in tokens (rows x padded length): what sets peak memory.
    peak_batch_tokens: int

    @property
    def share(self) -> float:
        """Pad tokens / all tokens (0 when there is nothing)."""
        return self.pad_tokens / self.total_tokens if self.total_tokens else 0.0


def round_up(n: int, multiple: int) -> int:
    """``n`` rounded up to a multiple of ``multiple``."""
    return -(-n // multiple) * multiple


def padding_waste(lengths: list[int], strategy: str, batch_size: int, max_length: int | None = None,
                  multiple_of: int = 8) -> Waste:
    """Simulate the trainer's batches and count the pad tokens one strategy adds.

    Sequences longer than ``max_length`` are first cut to it, as the encoder does.

    Args:
        lengths: sequence lengths in dataset order.
        strategy: ``longest`` (pad to the batch's longest), ``multiple`` (that, rounded up to
            ``multiple_of``, even past ``max_length``), ``max_length`` (every row padded to
            ``max_length``; the longest sequence when it is ``None``) or ``packing``
            (sequences packed into rows of ``max_length`` by ``pack_groups``; the waste is
            the unused tail of each packed row).
        batch_size: sequences per batch (rows per batch for packing).
        max_length: the cut and the packed-row length.
        multiple_of: rounding for ``multiple``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown padding strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    cap = max_length or max(lengths, default=0)
    cut = [min(n, cap) for n in lengths]
    if strategy == "packing":
        return _packing_waste(cut, batch_size, cap)
    pad = total = peak = batches = 0
    for i in range(0, len(cut), batch_size):
        batch = cut[i:i + batch_size]
        width = _batch_width(batch, strategy, cap, multiple_of)
        pad += width * len(batch) - sum(batch)
        total += width * len(batch)
        peak = max(peak, width * len(batch))
        batches += 1
    return Waste(strategy, pad, total, batches, peak)


def _batch_width(batch: list[int], strategy: str, cap: int, multiple_of: int) -> int:
    if strategy == "longest":
        return max(batch)
    if strategy == "multiple":
        # as collate does: the rounding may go past max_length
        return round_up(max(batch), multiple_of)
    return cap


def _packing_waste(cut: list[int], batch_size: int, cap: int) -> Waste:
    from studio.core.encoding import pack_groups

    groups = pack_groups(cut, cap) if cut else []
    used = sum(cut)
    total = len(groups) * cap
    batches = math.ceil(len(groups) / batch_size) if groups else 0
    return Waste("packing", total - used, total, batches, min(batch_size, len(groups)) * cap)


def waste_table(lengths: list[int], batch_size: int, max_length: int | None,
                multiple_of: int = 8) -> list[Waste]:
    """:func:`padding_waste` for every strategy, in :data:`STRATEGIES` order."""
    return [padding_waste(lengths, s, batch_size, max_length, multiple_of) for s in STRATEGIES]


# --- the whole picture -------------------------------------------------------------------------


@dataclass
class DatasetStats:
    """Everything ``studio inspect`` and the data page show about token lengths."""

    sequences: int
    sequences_per_row: int
    mean: float
    histogram: list[Bin]
    percentiles: dict[str, int]
    recommended_max_length: int
    context_length: int | None
    max_length: int
    batch_size: int
    truncation: Truncation
    waste: list[Waste]
    cache_hit: bool = False
    truncation_side: str = "right"

    def to_dict(self) -> dict:
        """A JSON-friendly form, with the derived shares spelled out."""
        out = asdict(self)
        out["truncation"]["share"] = self.truncation.share
        out["truncation"]["lost_share"] = self.truncation.lost_share
        for row, waste in zip(out["waste"], self.waste):
            row["share"] = waste.share
        return out


def compute(measured, batch_size: int = 8, max_length: int | None = None,
            context: int | None = None, multiple_of: int = 8, side: str = "right",
            bins: int = 20) -> DatasetStats:
    """The statistics of measured sequences at one ``max_length`` and batch size.

    Args:
        measured: a ``Measured`` from :mod:`studio.core.lengths`.
        batch_size: rows per batch; preference rows count as two sequences each.
        max_length: the cut for truncation and padding; the recommended one when ``None``.
        context: the model's context length (caps the recommendation).
        multiple_of: rounding for the ``multiple`` padding strategy.
        side: truncation side, as ``EncodeOptions.truncation_side``.
        bins: histogram bars.
    """
    lengths = measured.lengths
    recommended = recommend_max_length(lengths, context)
    cut = max_length or recommended
    per_batch = batch_size * measured.sequences_per_row
    return DatasetStats(
        sequences=len(lengths), sequences_per_row=measured.sequences_per_row,
        mean=sum(lengths) / len(lengths) if lengths else 0.0, histogram=histogram(lengths, bins, cut),
        percentiles=percentiles(lengths), recommended_max_length=recommended, context_length=context,
        max_length=cut, batch_size=batch_size, truncation=truncation(lengths, measured.loss_spans, cut, side),
        waste=waste_table(lengths, per_batch, cut, multiple_of), cache_hit=measured.cache_hit, truncation_side=side)


def context_length(model_path, tokenizer=None) -> int | None:
    """The model's context: the smaller of config.json's and the tokenizer's, if either is known."""
    from studio.core.errors import StudioError
    from studio.core.models import describe_model

    known = []
    try:
        known.append(describe_model(model_path).context_length)
    except StudioError:
        pass
    known.append(getattr(tokenizer, "model_max_length", 0) or 0)
    known = [n for n in known if 0 < n < UNKNOWN_CONTEXT]
    return min(known) if known else None
