"""The inspector's token model: what each token of a collated row is, built off the GUI thread.

Everything here is plain Python over core encoding's own output (:class:`Encoded` rows and
the dict returned by ``collate``), so the chips shown are exactly the tensors the worker
trains on. No Qt is used, so these functions run in a background thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

IGNORE = -100
_SHOWN_CHARS = 24


def visible(text: str) -> str:
    """Make whitespace visible: space ·, newline ↵, tab →; an empty piece shows ∅."""
    if not text:
        return "∅"
    text = text.replace(" ", "·").replace("\n", "↵").replace("\t", "→").replace("\r", "␍")
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS - 1] + "…"


@dataclass
class TokenChip:
    """One token as shown in the inspector.

    Attributes:
        position: index in the collated row.
        token_id: the id fed to the model.
        text: the token decoded on its own.
        label: the training label (-100 = no loss).
        role: from the encoder (system, user, assistant, header, bos, eot...) or ``pad``.
        special: the token is one of the tokenizer's special tokens.
        pad: the token is padding.
        attention: the attention-mask value (1 where there is no mask, as in packing).
        position_id: the position id fed to the model.
    """

    position: int
    token_id: int
    text: str
    label: int
    role: str
    special: bool = False
    pad: bool = False
    attention: int = 1
    position_id: int | None = None

    @property
    def loss(self) -> bool:
        """The token's label counts in the loss."""
        return self.label != IGNORE

    @property
    def display(self) -> str:
        return visible(self.text)

    def tooltip(self) -> str:
        label = "−100 (no loss)" if not self.loss else f"{self.label} (trained on)"
        lines = [f"{self.text!r}", f"token id {self.token_id} · position {self.position}",
                 f"label {label}", f"role {self.role}" + (" · special token" if self.special else ""),
                 f"attention mask {self.attention}"]
        if self.position_id is not None:
            lines.append(f"position id {self.position_id}")
        return "\n".join(lines)


class TokenText:
    """Decodes ids one at a time, remembering each, and knows the special-token ids."""

    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer
        self._cache: dict[int, str] = {}
        ids = (tokenizer.token_to_id(t) for t in getattr(tokenizer, "special_tokens", []) or [])
        self.special_ids = {i for i in ids if i is not None}

    def text(self, token_id: int) -> str:
        if token_id not in self._cache:
            self._cache[token_id] = self._tok.decode([token_id])
        return self._cache[token_id]


@dataclass
class RowView:
    """One row as the inspector shows it, plus the encoder's own record of it."""

    chips: list[TokenChip]
    encoded: Any
    cut_after: int = -1
    cut_note: str = ""
    warnings: list[str] = field(default_factory=list)
    note: str = ""  #: what the objective does with this row, when it is not trained on as shown


def _mask_row(batch: dict, b: int, width: int) -> list[int]:
    mask = batch.get("attention_mask")
    return list(mask[b]) if mask else [1] * width


def _positions_row(batch: dict, b: int) -> list[int | None]:
    pos = batch.get("position_ids")
    return list(pos[b]) if pos else [None] * len(batch["input_ids"][b])


def chips_for(batch: dict, b: int, roles: list[str], text: TokenText, pad_id: int | None) -> list[TokenChip]:
    """The chips of collated row ``b``; ``roles`` are the roles of its real tokens in order."""
    ids, labels = list(batch["input_ids"][b]), list(batch["labels"][b])
    mask, pos = _mask_row(batch, b, len(ids)), _positions_row(batch, b)
    pads = _pad_flags(ids, labels, mask, pad_id, has_mask=bool(batch.get("attention_mask")))
    real_roles = iter(roles)
    chips = []
    for i, tid in enumerate(ids):
        role = "pad" if pads[i] else next(real_roles, "text")
        chips.append(TokenChip(i, tid, text.text(tid), labels[i], role, tid in text.special_ids, pads[i],
                               mask[i], pos[i]))
    return chips


def _pad_flags(ids, labels, mask, pad_id, has_mask: bool) -> list[bool]:
    if has_mask:
        return [m == 0 for m in mask]
    # Packing has no mask: padding, if any, is the run of pad ids without loss at the end.
    flags = [False] * len(ids)
    i = len(ids) - 1
    while i >= 0 and pad_id is not None and ids[i] == pad_id and labels[i] == IGNORE:
        flags[i] = True
        i -= 1
    return flags


def row_view(encoded: Any, batch: dict, text: TokenText, pad_id: int | None, side: str) -> RowView:
    """The chips of a single encoded row collated alone (so its padding is shown)."""
    chips = chips_for(batch, 0, list(encoded.roles), text, pad_id)
    view = RowView(chips, encoded, warnings=list(getattr(encoded, "warnings", []) or []))
    if encoded.truncated:
        real = [c.position for c in chips if not c.pad]
        view.cut_after = -2 if side == "left" else (real[-1] if real else -1)
        view.cut_note = (f"Cut here: {len(real)} of {encoded.original_length} tokens kept "
                         f"({side} side); {encoded.lost_loss_tokens} loss token(s) lost.")
    return view


@dataclass
class BatchView:
    """A collated batch: chips per row, and a one-line summary of its cost."""

    rows: list[list[TokenChip]]
    summary: str
    batch: dict


def batch_view(encoded_rows: list, batch: dict, text: TokenText, pad_id: int | None, strategy: str) -> BatchView:
    """The chips of every collated row of a batch (packed rows matched back to their sources)."""
    if strategy == "packing":
        roles = _packed_roles(encoded_rows, batch)
    else:
        roles = [list(e.roles) for e in encoded_rows]
    rows = [chips_for(batch, b, roles[b] if b < len(roles) else [], text, pad_id)
            for b in range(len(batch["input_ids"]))]
    return BatchView(rows, _summary(encoded_rows, rows, strategy), batch)


def _packed_roles(encoded_rows: list, batch: dict) -> list[list[str]]:
    """Roles of each packed row: its segments (position id back at 0) matched to source rows."""
    unused = list(encoded_rows)
    out = []
    for b, ids in enumerate(batch["input_ids"]):
        pos = _positions_row(batch, b)
        starts = [i for i, p in enumerate(pos) if p == 0] or [0]
        roles: list[str] = []
        for s, e in zip(starts, starts[1:] + [len(ids)]):
            match = next((r for r in unused if list(r.input_ids) == list(ids[s:s + len(r.input_ids)])), None)
            if match is not None:
                unused.remove(match)
                roles += list(match.roles)
        out.append(roles)
    return out


def _summary(encoded_rows: list, rows: list[list[TokenChip]], strategy: str) -> str:
    real = sum(len(e.input_ids) for e in encoded_rows)
    width = max((len(r) for r in rows), default=0)
    pads = sum(c.pad for r in rows for c in r)
    total = sum(len(r) for r in rows)
    share = 100 * pads / total if total else 0
    if strategy == "packing":
        return (f"{len(encoded_rows)} sequences packed into {len(rows)} sequence(s) of up to {width} tokens; "
                f"{real} real tokens, {pads} padding ({share:.0f} %). Position ids restart at each row.")
    return (f"{len(encoded_rows)} sequences padded to {width} tokens each ({strategy}): {real} real tokens, "
            f"{pads} padding tokens ({share:.0f} % of the batch).")
