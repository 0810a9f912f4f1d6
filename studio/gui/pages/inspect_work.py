"""The Inspect page's background work: only core encoding, so the preview is what is trained.

Each function runs in a thread-pool thread and returns plain data for the page to draw. The
options come from the same config fields the worker reads (``model.template``, ``data.loss``,
``data.max_length``, ``data.truncation_side``, ``data.padding``, ``data.padding_side``,
``data.pad_to_multiple_of``, ``data.pad_token``, ``train.batch_size``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    blocks: dict = field(default_factory=dict)  # raw text: max_length -> its blocks
    scan: Any = None  # raw text read as a stream: the :class:`~studio.core.text_scan.TextScan`
    held: tuple = (0.0, 0)  # raw text loaded whole: (eval fraction, seed) of the documents held out
    _held_rows: set | None = None

    @property
    def raw_text(self) -> bool:
        return bool(self.report.examples) and self.report.examples[0].kind == "text"

    def held_rows(self) -> set:
        """Rows of the raw-text documents held out for evaluation, which no training block holds
        (of a file read as a stream: those among the documents kept)."""
        if self.scan is not None:
            return self.scan.held_rows
        if self._held_rows is None:
            from studio.core.data import split

            self._held_rows = {ex.row for ex in split(self.report.examples, *self.held)[1]} if self.held[0] else set()
        return self._held_rows

    def blocks_for(self, encoder) -> Any:
        """Raw text cut into blocks as the trainer cuts it (:mod:`studio.core.pretrain`), once per length.
        A file read as a stream gives its first blocks and the counts of the whole file."""
        from studio.core.pretrain import block_size

        key = encoder.options.max_length
        if key not in self.blocks:
            if self.scan is not None:
                self.blocks[key] = self.scan.blocks(self.tokenizer, block_size(key))
            else:  # the documents training trains on: those not held out for evaluation
                held = self.held_rows()
                self.blocks[key] = encoder.encode_blocks([ex for ex in self.report.examples if ex.row not in held])
        return self.blocks[key]


def load_sources(cfg: RunConfig, progress=None) -> Sources:
    """Load the tokenizer and the training rows, and choose the pad token, as the worker does.

    A raw-text file that can be read as a stream is read (``progress(done, total)`` with its bytes):
    every document tokenized and counted, only the first ones kept, the blocks cut from the
    documents training trains on (those ``data.eval_fraction`` holds out are not; a first pass
    counts the documents to pick them) (:mod:`studio.core.text_scan`)."""
    from studio.core.data import load_examples
    from studio.core.encoding import Encoder, choose_pad_token
    from studio.core.text_scan import held_marks, scan
    from studio.core.text_stream import open_text
    from studio.core.tokenizer import load_tokenizer

    d = cfg.data
    tokenizer = load_tokenizer(cfg.model.path)
    pad = choose_pad_token(tokenizer, d.pad_token)
    source = open_text(d.train, d.format, dict(d.columns) or None, d.text_split)
    if source is not None:  # documents held out for evaluation are in no training block
        held = held_marks(source, 0 if d.eval else d.eval_fraction, d.seed, progress)
        found = scan(source, tokenizer, progress=progress, held=held)
        return Sources(tokenizer, TokenText(tokenizer), found.report(), pad, scan=found)
    report = load_examples(d.train, d.format, dict(d.columns) or None, d.text_split)
    Encoder(tokenizer, encode_options(cfg)).screen_report(report)  # rows the template refuses are bad rows
    return Sources(tokenizer, TokenText(tokenizer), report, pad, held=(0.0 if d.eval else d.eval_fraction, d.seed))


#: Objectives whose batches TRL's collators make: every sequence right-padded to the longest.
TRL_BATCHES = ("dpo", "kto", "orpo", "reward")


def trl_padding_side(objective: str) -> str | None:
    """The side TRL pads this objective's batches on (to the longest row), ``None`` for SFT's
    own padding: preference pairs on the right, GRPO's prompts on the left for generation."""
    if objective in TRL_BATCHES:
        return "right"
    return "left" if objective == "grpo" else None


def encode_options(cfg: RunConfig):
    from studio.core.encoding import options_for

    # A reward model is trained on whole pairs (a longer one is skipped, not cut).
    return options_for(cfg, max_length=None) if cfg.train.objective == "reward" else options_for(cfg)


def pad_options(cfg: RunConfig, pad_id: int):
    from studio.core.encoding import PadOptions

    d = cfg.data
    side = trl_padding_side(cfg.train.objective)
    if side:
        return PadOptions(strategy="longest", pad_id=pad_id, side=side)
    return PadOptions(strategy=d.padding, pad_id=pad_id, side=d.padding_side, multiple_of=d.pad_to_multiple_of,
                      max_length=d.max_length)


def sequences(encoder, examples: list, objective: str = "sft") -> list:
    """Encoded sequences of rows in the order the objective's batches hold them.

    Preference rows: DPO, ORPO and reward batches hold every chosen sequence, then every
    rejected one (TRL's collators); KTO's rows alternate (chosen, rejected) as Studio splits the
    pairs; SFT trains on the chosen sequence and shows both, each after the other.
    """
    if objective == "grpo":
        return [encoder.encode_prompt(ex) for ex in examples if ex.prompt_and_answer()[0]]
    if examples and examples[0].chosen is not None:
        pairs = [encoder.encode_pair(ex) for ex in examples]
        if objective in ("dpo", "orpo", "reward"):
            return [p.chosen for p in pairs] + [p.rejected for p in pairs]
        return [seq for p in pairs for seq in (p.chosen, p.rejected)]
    return encoder.encode_many(examples)


def batch_rows(cfg: RunConfig, preference: bool) -> int:
    """Dataset rows in one batch: KTO's batch of ``batch_size`` sequences holds half as many pairs."""
    size = cfg.train.batch_size
    return -(-size // 2) if preference and cfg.train.objective == "kto" else size


def too_long_note(cfg: RunConfig, encoded) -> str:
    """Why a reward-model pair longer than data.max_length is not trained on (empty if it is)."""
    limit = cfg.data.max_length
    if cfg.train.objective == "reward" and limit and len(encoded.input_ids) > limit:
        return (f"Skipped in training: {len(encoded.input_ids)} tokens, over data.max_length={limit}. A reward "
                "model reads its score at the last token, so Studio skips such pairs rather than cut them.")
    return ""


@dataclass
class RowResult:
    view: RowView
    template: str
    encoder_warnings: list
    template_notes: list = field(default_factory=list)


def encode_row(src: Sources, cfg: RunConfig, index: int, side: str = "chosen") -> RowResult:
    """One row encoded and collated alone (so padding to a length or multiple shows)."""
    from studio.core.encoding import Encoder, collate

    encoder = Encoder(src.tokenizer, encode_options(cfg))
    if src.raw_text:
        return _block_row(src, cfg, encoder, index)
    example = src.report.examples[index]
    if cfg.train.objective == "grpo":
        encoded = encoder.encode_prompt(example)
    elif example.chosen is not None:
        pair = encoder.encode_pair(example)
        encoded = pair.rejected if side == "rejected" else pair.chosen
    else:
        encoded = encoder.encode(example)
    options = pad_options(cfg, src.pad.id)
    view = row_view(encoded, collate([encoded], options), src.text, src.pad.id, cfg.data.truncation_side)
    note = too_long_note(cfg, encoded) if example.chosen is not None else ""
    if note:
        view.cut_after, view.cut_note = len(encoded.input_ids) - 1, note
    if cfg.train.objective == "grpo":
        answer = " ".join(m.content for m in example.prompt_and_answer()[1])
        view.note = (f"GRPO: the model samples {cfg.train.num_generations} answers to this prompt and the reward "
                     f"functions score them; no token of the data is trained on. The data's answer is only "
                     f"their reference: {answer[:120]!r}")
    return RowResult(view, encoder.template.name, list(encoder.warnings), list(encoder.notes))


def _block_row(src: Sources, cfg: RunConfig, encoder, index: int) -> RowResult:
    """Raw text: the block in which document ``index`` starts, with where each document begins."""
    from studio.core.pretrain import collate_blocks

    blocks = src.blocks_for(encoder)
    row = src.report.examples[index].row
    found = blocks.blocks[_block_of(blocks, row)]
    view = row_view(found, collate_blocks([found], pad_options(cfg, src.pad.id), cfg.data.text_attention), src.text,
                    src.pad.id, cfg.data.truncation_side)
    starts = ", ".join(f"document {r} at token {pos}" for pos, r in found.documents) or "none (it continues one)"
    attention = ("positions restart at every document and documents do not attend to each other"
                 if cfg.data.text_attention == "document" else "every token attends to its whole block")
    shown = f" (the first {len(blocks.blocks)} shown)" if len(blocks.blocks) < blocks.count else ""
    view.note = (f"Continued pre-training: block {found.row} of {blocks.count:,}{shown}, {blocks.size} tokens, loss on "
                 f"every token; {attention} (data.text_attention). Documents starting in it: {starts}. "
                 f"{blocks.summary()}.")
    if row in src.held_rows():
        view.note = (f"Document {row} is held out for evaluation (data.eval_fraction), so no training block holds "
                     f"it; shown: the block where the next training document starts. " + view.note)
    return RowResult(view, "none (raw text)", list(encoder.warnings))


def _block_of(blocks, row: int) -> int:
    """Index of the block in which document ``row`` starts (or the next document does)."""
    found = next((k for k, b in enumerate(blocks.blocks) if any(r >= row for _, r in b.documents)), None)
    if found is None:
        from studio.core.errors import DataError

        if len(blocks.blocks) < blocks.count:
            raise DataError(f"document {row} starts after the first {len(blocks.blocks)} blocks of {blocks.count:,}, "
                            "the ones shown (a raw-text file is read as a stream, not kept whole)",
                            "pick an earlier row; training reads every block")
        raise DataError(f"document {row} lies in the last {blocks.remainder} tokens, which fill no block of "
                        f"data.max_length={blocks.size} and are not trained on", "lower data.max_length")
    return found


def encode_batch(src: Sources, cfg: RunConfig, index: int) -> BatchView:
    """``train.batch_size`` rows from ``index`` collated as the trainer collates them."""
    from studio.core.encoding import Encoder, collate

    encoder = Encoder(src.tokenizer, encode_options(cfg))
    if src.raw_text:
        cut = src.blocks_for(encoder)
        at = _block_of(cut, src.report.examples[index].row)
        blocks = cut.blocks[at:at + cfg.train.batch_size]
        from studio.core.pretrain import collate_blocks

        batch = collate_blocks(blocks, pad_options(cfg, src.pad.id), cfg.data.text_attention)
        return batch_view(blocks, batch, src.text, src.pad.id, "blocks")  # one batch row per block
    preference = bool(src.report.examples) and src.report.examples[0].chosen is not None
    examples = src.report.examples[index:index + batch_rows(cfg, preference)]
    encoded = sequences(encoder, examples, cfg.train.objective)
    if preference and cfg.train.objective == "kto":
        encoded = encoded[:cfg.train.batch_size]
    options = pad_options(cfg, src.pad.id)
    return batch_view(encoded, collate(encoded, options), src.text, src.pad.id, options.strategy)


def length_stats(src: Sources, cfg: RunConfig, progress=None, cancelled=None):
    """Length histogram, truncation and padding waste per strategy (:mod:`studio.core.stats`).

    Args:
        progress: called with (rows measured, rows in all) while the rows are measured.
        cancelled: asked between chunks of rows; true stops with ``studio.core.measuring.Cancelled``.
    """
    from studio.core import lengths, stats
    from studio.core.encoding import Encoder, options_for

    d = cfg.data
    # Measured untruncated: one measurement answers every max_length (and is cached per file).
    options = options_for(cfg, max_length=None)
    if src.scan is not None:
        measured = src.scan.measured()  # the kept documents' lengths, as measuring them gives
        context = stats.context_length(cfg.model.path, src.tokenizer)
        return stats.compute(measured, batch_size=cfg.train.batch_size, max_length=d.max_length, context=context,
                             multiple_of=d.pad_to_multiple_of, side=d.truncation_side, bins=30)
    measured = lengths.measure_dataset(src.report, Encoder(src.tokenizer, options), dict(d.columns) or None,
                                       progress=progress, cancelled=cancelled)
    context = stats.context_length(cfg.model.path, src.tokenizer)
    return stats.compute(measured, batch_size=cfg.train.batch_size, max_length=d.max_length, context=context,
                         multiple_of=d.pad_to_multiple_of, side=d.truncation_side, bins=30)
