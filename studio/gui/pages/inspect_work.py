"""The Inspect page's background work: only core encoding, so the preview is what is trained.

Each function runs in a thread-pool thread and returns plain data for the page to draw. The
options come from the same config fields the worker reads (``model.template``, ``data.loss``,
``data.max_length``, ``data.truncation_side``, ``data.padding``, ``data.padding_side``,
``data.pad_to_multiple_of``, ``data.pad_token``, ``train.batch_size``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.core.config import RunConfig
from studio.gui.widgets.token_model import BatchView, RowView, TokenText, batch_view, row_view


@dataclass
class Sources:
    """What every view of the page starts from: tokenizer, examples and the pad choice."""

    tokenizer: Any
    text: TokenText
    report: Any
    pad: Any


def load_sources(cfg: RunConfig) -> Sources:
    """Load the tokenizer and the training rows, and choose the pad token, as the worker does."""
    from studio.core.data import load_examples
    from studio.core.encoding import choose_pad_token
    from studio.core.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(cfg.model.path)
    report = load_examples(cfg.data.train, cfg.data.format, dict(cfg.data.columns) or None)
    return Sources(tokenizer, TokenText(tokenizer), report, choose_pad_token(tokenizer, cfg.data.pad_token))


def encode_options(cfg: RunConfig):
    from studio.core.encoding import EncodeOptions

    d = cfg.data
    return EncodeOptions(template=cfg.model.template, loss=d.loss, max_length=d.max_length,
                         truncation_side=d.truncation_side)


def pad_options(cfg: RunConfig, pad_id: int):
    from studio.core.encoding import PadOptions

    d = cfg.data
    return PadOptions(strategy=d.padding, pad_id=pad_id, side=d.padding_side, multiple_of=d.pad_to_multiple_of,
                      max_length=d.max_length)


def sequences(encoder, examples: list) -> list:
    """Encoded sequences of rows: a preference row gives its chosen then its rejected sequence."""
    if examples and examples[0].chosen is not None:
        out = []
        for pair in (encoder.encode_pair(ex) for ex in examples):
            out += [pair.chosen, pair.rejected]
        return out
    return encoder.encode_many(examples)


@dataclass
class RowResult:
    view: RowView
    template: str
    encoder_warnings: list


def encode_row(src: Sources, cfg: RunConfig, index: int, side: str = "chosen") -> RowResult:
    """One row encoded and collated alone (so padding to a length or multiple shows)."""
    from studio.core.encoding import Encoder, collate

    encoder = Encoder(src.tokenizer, encode_options(cfg))
    example = src.report.examples[index]
    if example.chosen is not None:
        pair = encoder.encode_pair(example)
        encoded = pair.rejected if side == "rejected" else pair.chosen
    else:
        encoded = encoder.encode(example)
    options = pad_options(cfg, src.pad.id)
    view = row_view(encoded, collate([encoded], options), src.text, src.pad.id, cfg.data.truncation_side)
    return RowResult(view, encoder.template.name, list(encoder.warnings))


def encode_batch(src: Sources, cfg: RunConfig, index: int) -> BatchView:
    """``train.batch_size`` rows from ``index`` collated as the trainer collates them."""
    from studio.core.encoding import Encoder, collate

    encoder = Encoder(src.tokenizer, encode_options(cfg))
    examples = src.report.examples[index:index + cfg.train.batch_size]
    encoded = sequences(encoder, examples)
    options = pad_options(cfg, src.pad.id)
    return batch_view(encoded, collate(encoded, options), src.text, src.pad.id, cfg.data.padding)


def length_stats(src: Sources, cfg: RunConfig):
    """Length histogram, truncation and padding waste per strategy (:mod:`studio.core.stats`)."""
    from studio.core import lengths, stats
    from studio.core.encoding import EncodeOptions, Encoder

    d = cfg.data
    # Measured untruncated: one measurement answers every max_length (and is cached per file).
    options = EncodeOptions(template=cfg.model.template, loss=d.loss, max_length=None,
                            truncation_side=d.truncation_side)
    measured = lengths.measure_dataset(src.report, Encoder(src.tokenizer, options), dict(d.columns) or None)
    context = stats.context_length(cfg.model.path, src.tokenizer)
    return stats.compute(measured, batch_size=cfg.train.batch_size, max_length=d.max_length, context=context,
                         multiple_of=d.pad_to_multiple_of, side=d.truncation_side, bins=30)
