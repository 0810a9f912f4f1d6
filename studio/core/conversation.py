"""The one normalised shape every dataset format becomes.

A row of any supported format (OpenAI messages, ShareGPT, Alpaca, prompt/completion,
preference pairs, labelled rows for KTO, plain text) is turned into an :class:`Example`.
Encoding, statistics, the preview and the trainer all start from this type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Message:
    """One turn of a conversation.

    Attributes:
        role: system, user, assistant or tool (a tool's result).
        content: the text ("" for an assistant turn that only calls tools).
        train: the row's own loss switch for this turn (``loss_weight``/``weight``/``train``):
            ``True`` trains it whatever its role, ``False`` never; ``None`` follows ``data.loss``.
        tool_calls: for an assistant turn, the calls it makes, in transformers' shape:
            ``({"type": "function", "function": {"name": ..., "arguments": {...}}}, ...)``.
        name: for a tool turn, the function whose result it is (when the data says).
    """

    role: str
    content: str
    train: bool | None = None
    tool_calls: tuple | None = None
    name: str | None = None

    def template_dict(self) -> dict:
        """The message as chat templates expect it (keys only for the fields that are set:
        templates test ``'tool_calls' in message``)."""
        out: dict = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [dict(call) for call in self.tool_calls]
        if self.name:
            out["name"] = self.name
        return out


@dataclass
class Example:
    """One usable dataset row, normalised.

    Attributes:
        row: 1-based row number in the source file (line number for JSONL, record index
            for JSON/CSV/Parquet/saved datasets, document number for .txt), used in every
            message about this row.
        messages: the conversation. For prompt/completion rows, the prompt turns followed
            by the completion turns; for preference rows, the shared prompt turns only;
            empty for a text row.
        completion_start: for prompt/completion rows, the index in ``messages`` of the
            first completion turn; ``None`` otherwise.
        chosen: for preference rows, the preferred continuation (usually one assistant turn).
        rejected: for preference rows, the dispreferred continuation.
        extra: other columns kept for evaluation (``task``, ``reference``...).
        label: for unpaired KTO rows, whether the final answer is desirable; ``None`` when the
            row carries no label.
        tools: the tool definitions (JSON schemas) the conversation may call, or ``None``.
        text: for a text row (continued pre-training), the document; ``None`` otherwise.
    """

    row: int
    messages: list[Message]
    completion_start: int | None = None
    chosen: list[Message] | None = None
    rejected: list[Message] | None = None
    extra: dict = field(default_factory=dict)
    label: bool | None = None
    tools: list | None = None
    text: str | None = None

    @property
    def kind(self) -> str:
        """``"preference"``, ``"text"``, ``"completion"`` or ``"chat"``."""
        if self.chosen is not None:
            return "preference"
        if self.text is not None:
            return "text"
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
        as_list = lambda ms: [m.template_dict() for m in ms]  # noqa: E731
        out: dict = {"row": self.row, "messages": as_list(self.messages)}
        if self.completion_start is not None:
            out["completion_start"] = self.completion_start
        if self.chosen is not None:
            out["chosen"] = as_list(self.chosen)
            out["rejected"] = as_list(self.rejected or [])
        for name in ("label", "tools", "text"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.extra:
            out["extra"] = dict(self.extra)
        return out
