"""`studio preview`: show exactly how rows are tokenized for training.

Every row goes through the trainer's own encoder (:class:`studio.core.encoding.Encoder`) and,
with ``--padding``, the trainer's own collator, so what is shown is what is trained: special
tokens, which tokens carry loss, the roles, the truncation point and the padding.

``--rows A:B`` picks rows by a 0-based Python slice of the *usable* rows (bad rows are skipped
and listed on stderr): ``0:5`` is the first five usable rows, ``10:`` all from the eleventh
on, ``-3:`` the last three, ``7`` the eighth alone. Preference rows show the chosen and then
the rejected sequence. ``--padding`` pads the shown sequences as one batch. Raw text with
``--max-length`` is shown as the blocks the trainer cuts (``--rows`` then slices the blocks), each
with a marker where a document starts and the positions ``--text-attention`` gives. Raw text is read
as a stream (:mod:`studio.core.text_scan`): the counts cover the whole file, and only its first
documents and blocks are kept to show, so ``--rows`` picks among those.

``--json`` prints one JSON object per line per sequence (a preference row gives two lines,
``"part": "chosen"`` then ``"rejected"``) with ``row``, ``kind``, ``input_ids``, ``labels``,
``attention_mask``, ``position_ids``, ``tokens`` (vocabulary strings), ``roles``, ``warnings``,
``truncated``, ``original_length`` and ``lost_loss_tokens``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from studio.cli import token_view
from studio.cli.dataset_args import add_dataset_arguments, load_inputs, positive, warn_bad_rows
from studio.core.errors import DataError, StudioError

PADDING = ("none", "longest", "multiple", "max_length", "packing")


EPILOG = """\
rows: --rows is a 0-based Python slice of the usable rows (bad rows are skipped and
listed on stderr): 0:5 is the first five, 10: all from the eleventh, 7 the eighth
alone; write a negative start with '=', e.g. --rows=-3: for the last three.

view: loss-carrying tokens are green and underlined (wrapped in ⟦ ⟧ without colour),
special tokens are highlighted, ✂ marks a truncation, ⟨pad ×N⟩ the padding. Preference
rows show the chosen, then the rejected sequence.

--json: one object per line per sequence with row, kind, input_ids, labels (-100 = no
loss), attention_mask, position_ids, tokens, roles, warnings, truncated,
original_length, lost_loss_tokens; preference rows add part (chosen/rejected) and
prompt_len; packs (--padding packing) add rows and seq_lengths, and have no
attention_mask (null); raw-text blocks add documents ([position, row] of each
document starting in the block)."""


def add_arguments(parser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    add_dataset_arguments(parser)
    parser.add_argument("--rows", default="0:5", metavar="A:B",
                        help="0-based slice of the usable rows to show (default: 0:5; see below)")
    parser.add_argument("--padding", default="none", choices=PADDING,
                        help="pad the shown rows as one batch with this strategy (default: none)")
    parser.add_argument("--multiple-of", type=positive, default=8, metavar="N",
                        help="with --padding multiple, pad to a multiple of N (default: 8)")
    parser.add_argument("--pad-token", default="", metavar="TOKEN",
                        help="pad token (default: the model's own, else a reserved one)")
    parser.add_argument("--text-attention", default="block", choices=("block", "document"),
                        help="raw text with --max-length: shown as blocks; document restarts positions at every "
                             "document (default: block, as data.text_attention)")
    parser.add_argument("--color", default="auto", choices=("auto", "always", "never"),
                        help="colour the view (default: only when writing to a terminal)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line per sequence")


def run(args) -> int:
    inputs = load_inputs(args, max_length=args.max_length)
    warn_bad_rows(inputs.report)
    if args.padding in ("packing", "max_length") and args.max_length is None:
        raise StudioError(f"--padding {args.padding} needs --max-length",
                          "add --max-length N: rows are padded or packed up to N tokens")
    intro = ""
    if inputs.report.format == "text" and args.max_length:
        sequences, intro = _text_blocks(inputs, args)
        examples = sequences
    else:
        if inputs.report.format == "text":
            print("note: raw text trains in blocks of data.max_length tokens; add --max-length N to see the blocks "
                  "(shown here: whole documents)", file=sys.stderr)
        examples = _select(inputs, inputs.report.examples, args.rows, inputs.report.usable_rows, "documents")
        sequences = _encode_all(inputs.encoder, examples)
        for seq in sequences:
            seq["view"].max_length = args.max_length
        if args.padding == "packing":
            sequences = _packed(sequences, args.max_length)
        elif args.padding != "none":
            _pad(sequences, inputs.tokenizer, args)
    out = sys.stdout
    if args.json:
        for seq in sequences:
            out.write(json.dumps(_record(seq, inputs.tokenizer), ensure_ascii=False) + "\n")
        return 0
    colour = args.color == "always" or (args.color == "auto" and out.isatty() and "NO_COLOR" not in os.environ)
    out.write(_intro(inputs, len(examples)) + intro + "\n" + token_view.legend(colour) + "\n\n")
    for seq in sequences:
        out.write(token_view.render(seq["view"], inputs.tokenizer, colour) + "\n\n")
    return 0


def select_rows(examples: list, spec: str) -> list:
    """The usable rows picked by ``spec``: a 0-based slice ``A:B`` or a single index ``A``.

    Raises:
        DataError: ``spec`` is not a slice, or picks no row.
    """
    try:
        parts = [int(p) if p.strip() else None for p in spec.split(":")]
    except ValueError:
        parts = []
    if not 1 <= len(parts) <= 2 or (len(parts) == 1 and parts[0] is None):
        raise DataError(f"--rows {spec!r} is not a row slice", "write it as A:B (0-based, B excluded), A:, :B or A")
    picked = examples[slice(*parts)] if len(parts) == 2 else examples[parts[0]:(parts[0] + 1) or None]
    if not picked:
        raise DataError(f"--rows {spec} picks none of the {len(examples)} usable rows",
                        f"use 0-based indices below {len(examples)}")
    return picked


def _select(inputs, kept: list, spec: str, total: int, what: str) -> list:
    """:func:`select_rows` of the ``kept`` first of ``total`` items: a raw-text file read as a stream
    keeps only its first documents and blocks, so a row past them (or counted from the end) is refused."""
    if len(kept) < total:
        parts = [p.strip() for p in spec.split(":")]
        numbers = [int(p) for p in parts if p.lstrip("-").isdigit()]
        if any(n < 0 or n >= len(kept) for n in numbers) or (len(parts) == 2 and not parts[1]):
            raise DataError(f"--rows {spec}: {inputs.report.path} is read as a stream, not loaded whole; of its "
                            f"{total:,} {what} only the first {len(kept):,} are kept to show",
                            f"pick {what} by 0-based indices below {len(kept):,} (e.g. --rows 0:5)")
    return select_rows(kept, spec)


def _encode_all(encoder, examples: list) -> list[dict]:
    """One dict per sequence, in row order; chat and completion rows encoded in one batch."""
    plain = iter(encoder.encode_many([e for e in examples if e.kind != "preference"]))
    out = []
    for example in examples:
        if example.kind != "preference":
            out.append(_sequence(next(plain), example.kind, ""))
            continue
        pair = encoder.encode_pair(example)
        out += [_sequence(pair.chosen, "preference", "chosen", pair.prompt_len),
                _sequence(pair.rejected, "preference", "rejected", pair.prompt_len)]
    return out


def _sequence(encoded, kind: str, part: str, prompt_len: int | None = None) -> dict:
    n = len(encoded.input_ids)
    title = f"row {encoded.row} · {kind}" + (f" · {part}" if part else "")
    view = token_view.Sequence(title, list(encoded.input_ids), list(encoded.labels), list(encoded.roles),
                               [1] * n, list(encoded.warnings), encoded.truncated, encoded.original_length,
                               encoded.lost_loss_tokens)
    return {"encoded": encoded, "kind": kind, "part": part, "prompt_len": prompt_len,
            "view": view, "position_ids": list(range(n))}


def _text_blocks(inputs, args) -> tuple[list[dict], str]:
    """Raw text as the trainer cuts and collates it: the blocks ``--rows`` picks (a slice of the
    blocks), a marker where each document starts, positions as ``--text-attention`` sets them."""
    from studio.core.encoding import IGNORE, PadOptions
    from studio.core.pretrain import collate_blocks

    if inputs.scan is not None:  # read as a stream: the first blocks, the counts of the whole file
        from studio.core.pretrain import block_size

        blocks = inputs.scan.blocks(inputs.tokenizer, block_size(inputs.options.max_length))
    else:
        blocks = inputs.encoder.encode_blocks(inputs.report.examples)
    if not blocks.count:
        raise DataError(f"{inputs.report.path}: {blocks.summary()}", "lower --max-length, or add text")
    picked = _select(inputs, blocks.blocks[:], args.rows, blocks.count, "blocks")
    strategy = "packing" if args.padding == "packing" else "longest"
    batch = collate_blocks(picked, PadOptions(strategy=strategy), args.text_attention)
    out = []
    for i, block in enumerate(picked):
        n = len(block.input_ids)
        # as the trainer's tensors: no loss where a sequence starts (nothing of it comes before)
        labels = [IGNORE if pos == 0 else label for pos, label in zip(batch["position_ids"][i], batch["labels"][i])]
        view = token_view.Sequence(f"block {block.row} of {blocks.count}", list(block.input_ids),
                                   labels, list(block.roles), [1] * n, [], original_length=n,
                                   starts={pos: f"document {row}" for pos, row in block.documents})
        out.append({"encoded": block, "kind": "block", "part": "", "prompt_len": None, "view": view,
                    "position_ids": batch["position_ids"][i], "documents": block.documents,
                    **({"attention_mask": None} if batch["attention_mask"] is None else {})})
    note = (f"\ncontinued pre-training: {blocks.summary()}; attention: {args.text_attention} "
            + ("(positions restart at every document; documents do not attend to each other)"
               if args.text_attention == "document" else "(every token attends to its whole block)"))
    return out, note


def _pad(sequences: list[dict], tokenizer, args) -> None:
    """Pad the shown sequences as one batch through the trainer's own ``collate``."""
    from studio.core.encoding import PadOptions, choose_pad_token, collate

    pad = choose_pad_token(tokenizer, args.pad_token)
    options = PadOptions(strategy=args.padding, pad_id=pad.id, multiple_of=args.multiple_of,
                         max_length=args.max_length)
    batch = collate([s["encoded"] for s in sequences], options)
    for i, seq in enumerate(sequences):
        view = seq["view"]
        mask = (batch.get("attention_mask") or [None] * len(sequences))[i] or [1] * len(batch["input_ids"][i])
        extra = len(batch["input_ids"][i]) - len(view.roles)
        view.input_ids, view.labels, view.attention_mask = batch["input_ids"][i], batch["labels"][i], mask
        view.roles = view.roles + ["pad"] * extra if options.side == "right" else ["pad"] * extra + view.roles
        seq["position_ids"] = batch["position_ids"][i]


def _packed(sequences: list[dict], max_length: int | None) -> list[dict]:
    """The shown rows packed as the trainer packs them: ``pack_groups``, then ``collate``."""
    from studio.core.encoding import PadOptions, collate, pack_groups

    if any(seq["part"] for seq in sequences):
        raise StudioError("preference rows are not packed (chosen and rejected are padded per pair)",
                          "use --padding longest, multiple or max_length")
    groups = pack_groups([len(s["encoded"].input_ids) for s in sequences], max_length)
    return [_pack(i, [sequences[j] for j in sorted(g)], collate([sequences[j]["encoded"] for j in sorted(g)],
                                                                   PadOptions(strategy="packing")))
            for i, g in enumerate(groups, 1)]


def _pack(number: int, members: list[dict], batch: dict) -> dict:
    """One packed row as a shown sequence, with a marker where each source row starts."""
    ids = batch["input_ids"][0]
    starts, at = {}, 0
    for seq in members:
        starts[at] = f"row {seq['encoded'].row}"
        at += len(seq["encoded"].input_ids)
    rows = ", ".join(str(s["encoded"].row) for s in members)
    view = token_view.Sequence(f"pack {number} · rows {rows}", ids, batch["labels"][0],
                               [r for s in members for r in s["view"].roles], [1] * len(ids),
                               [w for s in members for w in s["view"].warnings], starts=starts)
    facts = {"truncated": any(s["encoded"].truncated for s in members),
             "original_length": sum(s["encoded"].original_length for s in members),
             "lost_loss_tokens": sum(s["encoded"].lost_loss_tokens for s in members)}
    return {"encoded": members[0]["encoded"], "kind": "packed", "part": "", "prompt_len": None, "view": view,
            "position_ids": batch["position_ids"][0], "attention_mask": None, "facts": facts,
            "rows": batch["rows"], "seq_lengths": batch["seq_lengths"][0]}


def _record(seq: dict, tokenizer) -> dict:
    view, encoded = seq["view"], seq["encoded"]
    record = {"row": encoded.row, "kind": seq["kind"]}
    if seq["part"]:
        record.update(part=seq["part"], prompt_len=seq["prompt_len"])
    if seq["kind"] == "block":
        record.update(documents=[list(d) for d in seq["documents"]])
    if seq["kind"] == "packed":
        # padding-free packing has no attention mask: position_ids restart at each row instead
        record.update(rows=seq["rows"], seq_lengths=seq["seq_lengths"])
    facts = seq.get("facts") or {"truncated": encoded.truncated, "original_length": encoded.original_length,
                                 "lost_loss_tokens": encoded.lost_loss_tokens}
    record.update(input_ids=view.input_ids, labels=view.labels,
                  attention_mask=seq.get("attention_mask", view.attention_mask), position_ids=seq["position_ids"],
                  tokens=[tokenizer.id_to_token(i) for i in view.input_ids], roles=view.roles,
                  warnings=view.warnings, **facts)
    return record


def _intro(inputs, shown: int) -> str:
    report = inputs.report
    cut = f", max_length {inputs.options.max_length}" if inputs.options.max_length else ""
    return (f"{report.path}: {report.format}, {report.usable_rows} usable of {report.total_rows} rows; "
            f"showing {shown}\nmodel {inputs.model_path}, template {inputs.template.name}, "
            f"loss on {inputs.options.loss}{cut}"
            + "".join(f"\nwarning: {w}" for w in inputs.encoder.warnings))
