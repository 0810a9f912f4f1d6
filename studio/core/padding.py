"""Pad token choice, batch collation (padding or padding-free packing) and packing groups.

Re-exported by :mod:`studio.core.encoding`, which is where callers import them from.

Rules taken from TRL's ``DataCollatorForLanguageModeling`` and ``pack_dataset`` (bfd):
labels are padded with -100 by position, never by matching the pad id (so a real EOS that
equals the pad token stays trained); padding-free packing concatenates rows into one, with
position ids restarting at 0 per row, no attention mask, and label -100 at each row's first
position so no loss crosses a row boundary.
"""

from __future__ import annotations

import re
from bisect import bisect_left, insort
from collections import defaultdict, deque
from dataclasses import dataclass

from studio.core.errors import ConfigError, DataError

IGNORE = -100
STRATEGIES = ("longest", "multiple", "max_length", "packing")
# Tokens models reserve for padding, best first. Llama 3.1+ names id 128004 <|finetune_right_pad_id|>.
PAD_LIKE = ("<|finetune_right_pad_id|>", "<|finetune_right_pad|>", "<pad>", "<|pad|>", "[PAD]", "<|padding|>",
            "<|pad_token|>")
_RESERVED = re.compile(r"<\|reserved_special_token_(\d+)\|>")


@dataclass
class PadChoice:
    """The pad token and why it was chosen.

    Attributes:
        token: the pad token string.
        id: its id.
        message: a sentence for the log or the preview.
        source: ``requested``, ``model``, ``reserved`` or ``eos``.
        warning: the choice deserves a warning (EOS used as pad).
    """

    token: str
    id: int
    message: str
    source: str
    warning: bool = False


def _reserved_pad(tokenizer, avoid: set[str]) -> str | None:
    """A pad-like or reserved token in the vocabulary that is not one of ``avoid``."""
    for token in PAD_LIKE:
        if token not in avoid and tokenizer.token_to_id(token) is not None:
            return token
    reserved = sorted((int(m.group(1)), t) for t in tokenizer.added_tokens if (m := _RESERVED.fullmatch(t)))
    return next((t for _, t in reserved if t not in avoid), None)


def choose_pad_token(tokenizer, requested: str = "") -> PadChoice:
    """Pick the pad token; never falls back to EOS silently.

    Order: ``requested``; the model's own pad unless it is the EOS; a reserved pad-like token
    (``<|finetune_right_pad_id|>``, ``<pad>``, ``<|reserved_special_token_N|>``...); else the EOS,
    with a warning.

    Raises:
        ConfigError: ``requested`` is not a token of this vocabulary.
    """
    eos = tokenizer.eos_token
    if requested:
        tid = tokenizer.token_to_id(requested)
        if tid is None:
            raise ConfigError([("data.pad_token", f"{requested!r} is not a token of the tokenizer at {tokenizer.path}; "
                                "leave it empty to let Studio choose")])
        same = requested == eos
        note = " It is also the EOS token: the model must still learn to stop, which Studio keeps." if same else ""
        return PadChoice(requested, tid, f"pad token {requested} (id {tid}), as set in data.pad_token.{note}",
                         "requested", same)
    own = tokenizer.pad_token
    if own and own != eos and tokenizer.token_to_id(own) is not None:
        tid = tokenizer.token_to_id(own)
        return PadChoice(own, tid, f"pad token {own} (id {tid}), the model's own", "model")
    found = _reserved_pad(tokenizer, {eos, tokenizer.bos_token})
    if found:
        tid = tokenizer.token_to_id(found)
        why = "its pad token is the EOS" if own else "it has no pad token"
        return PadChoice(found, tid, f"pad token {found} (id {tid}): the model's tokenizer would not do ({why}), "
                         "so Studio pads with this reserved token, which is never attended to or trained", "reserved")
    if eos is None or tokenizer.token_to_id(eos) is None:
        raise ConfigError([("data.pad_token", f"the tokenizer at {tokenizer.path} has no pad, reserved or EOS token "
                            "to pad with; name one of its tokens")])
    tid = tokenizer.token_to_id(eos)
    return PadChoice(eos, tid, f"warning: padding with the EOS token {eos} (id {tid}) because the tokenizer has no "
                     "pad or reserved token. Studio pads labels by position, so real EOS tokens stay trained, but "
                     "other tools that mask labels by pad id would stop the model learning to end; set "
                     "data.pad_token to an unused token if you have one", "eos", True)


@dataclass
class PadOptions:
    """How a batch is made rectangular.

    Attributes:
        strategy: ``longest``, ``multiple`` (round the longest up to ``multiple_of``),
            ``max_length`` or ``packing`` (padding-free: one concatenated row).
        pad_id: the pad token id (from :func:`choose_pad_token`).
        side: ``right`` (training) or ``left``.
        multiple_of: rounding for ``multiple``.
        max_length: width for ``max_length``.
    """

    strategy: str = "longest"
    pad_id: int = 0
    side: str = "right"
    multiple_of: int = 8
    max_length: int | None = None


def _width(lengths: list[int], options: PadOptions, rows: list) -> int:
    longest = max(lengths, default=0)
    if options.strategy == "multiple":
        step = max(1, options.multiple_of)
        return -(-longest // step) * step
    if options.strategy == "max_length":
        if options.max_length is None:
            raise ConfigError([("data.max_length", "padding to max_length needs a max_length")])
        if longest > options.max_length:
            row = rows[lengths.index(longest)].row
            raise DataError(f"row {row} has {longest} tokens, more than max_length {options.max_length}",
                            "encode with the same max_length so rows are truncated first")
        return options.max_length
    return longest


def _pad(seq: list, width: int, value, side: str) -> list:
    fill = [value] * (width - len(seq))
    return seq + fill if side == "right" else fill + seq


def collate(rows: list, options: PadOptions) -> dict:
    """Build one batch from encoded rows.

    Returns:
        A dict of plain lists: ``input_ids``, ``labels``, ``attention_mask`` (``None`` when
        packing), ``position_ids``, ``seq_lengths`` (per batch row, the real lengths it holds)
        and ``rows`` (source row numbers).
    """
    if options.strategy not in STRATEGIES:
        raise ConfigError([("data.padding", f"unknown strategy {options.strategy!r}; use one of {', '.join(STRATEGIES)}")])
    if options.strategy == "packing":
        return _pack(rows)
    lengths = [len(r.input_ids) for r in rows]
    width, side = _width(lengths, options, rows), options.side
    return {
        "input_ids": [_pad(list(r.input_ids), width, options.pad_id, side) for r in rows],
        "labels": [_pad(list(r.labels), width, IGNORE, side) for r in rows],
        "attention_mask": [_pad([1] * n, width, 0, side) for n in lengths],
        # Padding positions get 0, as TRL's padding-free collator gives them.
        "position_ids": [_pad(list(range(n)), width, 0, side) for n in lengths],
        "seq_lengths": [[n] for n in lengths],
        "rows": [r.row for r in rows],
    }


def _pack(rows: list) -> dict:
    """Padding-free: every row concatenated into one, position ids restarting per row."""
    ids, labels, positions = [], [], []
    for r in rows:
        n = len(r.input_ids)
        ids += r.input_ids
        # The first token of a row would be "predicted" from the previous row's last token: no loss there.
        labels += [IGNORE] + list(r.labels[1:]) if n else []
        positions += range(n)
    return {"input_ids": [ids], "labels": [labels], "attention_mask": None, "position_ids": [positions],
            "seq_lengths": [[len(r.input_ids) for r in rows]], "rows": [r.row for r in rows]}


def stack_packs(packs: list[dict], pad_id: int) -> dict:
    """Packed rows (each one ``collate(..., packing)`` result) as one batch, padded on the right.

    Each pack is one batch row, so attention costs ``max_length**2`` per pack instead of
    ``(batch_size * max_length)**2`` for one long row. Padding gets position 0, so every pad
    token is a sequence of its own to the block-diagonal mask, and label -100.
    """
    width = max(len(p["input_ids"][0]) for p in packs)
    fill = lambda seq, value: list(seq) + [value] * (width - len(seq))  # noqa: E731
    return {"input_ids": [fill(p["input_ids"][0], pad_id) for p in packs],
            "labels": [fill(p["labels"][0], IGNORE) for p in packs],
            "position_ids": [fill(p["position_ids"][0], 0) for p in packs],
            "attention_mask": None,
            "seq_lengths": [p["seq_lengths"][0] for p in packs], "rows": [r for p in packs for r in p.get("rows", [])]}


def pack_groups(lengths: list[int], max_length: int) -> list[list[int]]:
    """Best-fit-decreasing groups of row indices, each holding at most ``max_length`` tokens.

    Matches TRL's ``bfd`` packing: rows sorted longest first (ties keep their order), each put in
    the open group with the least room that still fits it (the oldest such group), else a new one.
    Lengths over ``max_length`` count as ``max_length`` (TRL truncates them; encode with the same
    ``max_length`` so nothing is cut here); empty rows are left out.
    """
    order = sorted((i for i, n in enumerate(lengths) if n > 0), key=lambda i: -min(lengths[i], max_length))
    groups: list[list[int]] = []
    by_room: dict[int, deque] = defaultdict(deque)
    rooms: list[int] = []  # sorted free space of groups that still have room
    for i in order:
        n = min(lengths[i], max_length)
        k = bisect_left(rooms, n)
        if k < len(rooms):
            room = rooms.pop(k)
            group = by_room[room].popleft()
        else:
            room, group = max_length, len(groups)
            groups.append([])
        groups[group].append(i)
        if room - n > 0:
            insort(rooms, room - n)
            by_room[room - n].append(group)
    return groups
