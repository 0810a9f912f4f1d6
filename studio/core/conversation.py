"""The one normalised shape every dataset format becomes.

A row of any supported format (OpenAI messages, ShareGPT, Alpaca, prompt/completion,
preference pairs) is turned into an :class:`Example`. Encoding, statistics, the preview and
the trainer all start from this type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    """One turn of a conversation."""

    role: str
    content: str


@dataclass
class Example:
    """One usable dataset row, normalised.

    Attributes:
        row: 1-based row number in the source file (line number for JSONL, record index
            for JSON/CSV/Parquet/saved datasets), used in every message about this row.
        messages: the conversation. For prompt/completion rows, the prompt turns followed
            by the completion turns; for preference rows, the shared prompt turns only.
        completion_start: for prompt/completion rows, the index in ``messages`` of the
            first completion turn; ``None`` otherwise.
        chosen: for preference rows, the preferred continuation (usually one assistant turn).
        rejected: for preference rows, the dispreferred continuation.
        extra: other columns kept for evaluation (``task``, ``reference``...).
    """

    row: int
    messages: list[Message]
    completion_start: int | None = None
    chosen: list[Message] | None = None
    rejected: list[Message] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``"preference"``, ``"completion"`` or ``"chat"``."""
        if self.chosen is not None:
            return "preference"
        if self.completion_start is not None:
            return "completion"
        return "chat"

    def prompt_and_answer(self) -> tuple[list[Message], list[Message]]:
        """The turns a model answers and the answer the data gives (what RL prompts are made of).

        A chat row: the turns before its last assistant turn, and that turn. A prompt/completion
        row: its prompt and completion. A preference row: its prompt and chosen answer.
        """
        if self.kind == "preference":
            return list(self.messages), list(self.chosen or [])
        if self.kind == "completion":
            return self.messages[:self.completion_start], self.messages[self.completion_start:]
        last = max((i for i, m in enumerate(self.messages) if m.role == "assistant"), default=len(self.messages))
        return self.messages[:last], self.messages[last:last + 1]

    def to_dict(self) -> dict:
        """A JSON-friendly form (OpenAI messages shape) of this example."""
        as_list = lambda ms: [{"role": m.role, "content": m.content} for m in ms]  # noqa: E731
        out: dict = {"row": self.row, "messages": as_list(self.messages)}
        if self.completion_start is not None:
            out["completion_start"] = self.completion_start
        if self.chosen is not None:
            out["chosen"] = as_list(self.chosen)
            out["rejected"] = as_list(self.rejected or [])
        if self.extra:
            out["extra"] = dict(self.extra)
        return out
