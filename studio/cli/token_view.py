"""A readable terminal view of one encoded sequence, for `studio preview`.

Consecutive tokens that look the same (same role, both carrying loss or both not, both plain
text) are decoded together, so multi-byte characters split across tokens read correctly.
Special tokens are shown by name, padding as one ``⟨pad ×N⟩`` marker, newlines as ``↵``.

With colour: loss-carrying tokens are green and underlined, special tokens magenta on a dark
background, prompt text coloured by role, padding dim. Without colour the same facts stay
visible: loss-carrying text is wrapped in ``⟦ ⟧``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RESET = "\x1b[0m"
STYLES = {
    "loss": "\x1b[32;4m",
    "special": "\x1b[95;48;5;236m",
    "special_loss": "\x1b[32;4;48;5;236m",
    "pad": "\x1b[2m",
    "cut": "\x1b[31;1m",
    "system": "\x1b[33m",
    "user": "\x1b[36m",
    "assistant": "\x1b[34m",
    "header": "\x1b[1m",
    "mark": "\x1b[7m",
    "warning": "\x1b[33;1m",
}
LOSS_OPEN, LOSS_CLOSE = "⟦", "⟧"


@dataclass
class Sequence:
    """One sequence as shown: tokens with their labels and roles, padding and cut facts.

    Attributes:
        title: e.g. ``row 12`` or ``row 12 · chosen``.
        input_ids, labels, roles, attention_mask: aligned per token (padding included).
        warnings: the encoder's warnings for this sequence.
        truncated, original_length, lost_loss_tokens: from the encoder.
        max_length: the cut in force, for the truncation marker.
    """

    title: str
    input_ids: list[int]
    labels: list[int]
    roles: list[str]
    attention_mask: list[int]
    warnings: list[str]
    truncated: bool = False
    original_length: int = 0
    lost_loss_tokens: int = 0
    max_length: int | None = None
    #: token position -> label of a marker shown before it (where each row of a pack starts)
    starts: dict[int, str] = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Real (non-pad) tokens."""
        return sum(self.attention_mask)

    @property
    def loss_tokens(self) -> int:
        return sum(1 for label in self.labels if label != -100)


def paint(text: str, style: str, colour: bool) -> str:
    """``text`` in ``style`` when ``colour`` is on."""
    return f"{STYLES[style]}{text}{RESET}" if colour and text else text


def legend(colour: bool) -> str:
    """One line explaining the marks used in the view."""
    if colour:
        return ("legend: " + paint("loss-carrying", "loss", True) + " · " + paint("<|special|>", "special", True)
                + " · prompt: " + ", ".join(paint(r, r, True) for r in ("system", "user", "assistant"))
                + " · " + paint("⟨pad ×N⟩", "pad", True) + " · " + paint("✂ cut", "cut", True) + " · ↵ newline")
    return f"legend: {LOSS_OPEN}loss-carrying{LOSS_CLOSE} · <|special|> · ⟨pad ×N⟩ padding · ✂ truncation · ↵ newline"


def header(seq: Sequence, colour: bool) -> list[str]:
    """The per-sequence heading and its warnings."""
    facts = [seq.title, f"{seq.length} tokens", f"{seq.loss_tokens} loss tokens"]
    if seq.truncated:
        facts.append(f"truncated from {seq.original_length}")
    pads = len(seq.attention_mask) - seq.length
    if pads:
        facts.append(f"{pads} pad")
    lines = [paint(f"── {' · '.join(facts)} " + "─" * 8, "header", colour)]
    lines += [paint(f"  ⚠ {w}", "warning", colour) for w in seq.warnings]
    return lines


def render(seq: Sequence, tokenizer, colour: bool) -> str:
    """The heading, then the sequence's text with roles, loss, specials, padding and cut."""
    special = set(tokenizer.special_tokens)
    parts, in_loss = [], False
    for run in _runs(seq, tokenizer, special):
        if not colour and run[2] != in_loss:
            # plain text marks loss by brackets around each stretch of loss-carrying tokens
            parts.append(LOSS_OPEN if run[2] else LOSS_CLOSE)
            in_loss = run[2]
        parts.append(_render_run(run, tokenizer, colour))
    body = "".join(parts) + (LOSS_CLOSE if in_loss else "")
    if seq.truncated:
        body += "\n" + paint(_cut_note(seq), "cut", colour)
    return "\n".join([*header(seq, colour), body])


def _cut_note(seq: Sequence) -> str:
    dropped = seq.original_length - seq.length
    where = f" at max_length {seq.max_length}" if seq.max_length else ""
    return f"✂ cut{where}: {dropped} tokens dropped, {seq.lost_loss_tokens} of them loss tokens"


def _kind(token_id: int, mask: int, tokenizer, special: set[str]) -> str:
    if not mask:
        return "pad"
    return "special" if tokenizer.id_to_token(token_id) in special else "text"


def _runs(seq: Sequence, tokenizer, special: set[str]) -> list[tuple[str, str, bool, list[int]]]:
    """Group tokens into (kind, role, carries_loss, ids) runs; a special token is its own run."""
    runs: list[tuple[str, str, bool, list[int]]] = []
    for pos, (token_id, label, role, mask) in enumerate(zip(seq.input_ids, seq.labels, seq.roles, seq.attention_mask)):
        if pos in seq.starts:
            runs.append(("mark", seq.starts[pos], False, []))
        key = (_kind(token_id, mask, tokenizer, special), role, label != -100)
        if runs and runs[-1][:3] == key and key[0] != "special":
            runs[-1][3].append(token_id)
        else:
            runs.append((*key, [token_id]))
    return runs


def _render_run(run: tuple[str, str, bool, list[int]], tokenizer, colour: bool) -> str:
    kind, role, loss, ids = run
    if kind == "mark":
        return ("\n" if colour else "") + paint(f"⟪{role}⟫", "mark", colour)
    if kind == "pad":
        return paint(f"⟨pad ×{len(ids)}⟩", "pad", colour)
    text = tokenizer.id_to_token(ids[0]) if kind == "special" else tokenizer.decode(ids)
    text = text.replace("\n", "↵\n")
    if loss:
        return paint(text, "special_loss" if kind == "special" else "loss", colour)
    if kind == "special":
        return paint(text, "special", colour)
    return paint(text, role, colour) if role in STYLES else text
