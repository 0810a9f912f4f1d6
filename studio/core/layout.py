"""A conversation rendered to text, with the character spans of every turn and of the loss.

Turn spans come from rendering growing prefixes (``messages[:i]``, ``messages[:i+1]`` and, before
an assistant turn, ``messages[:i]`` with the generation prompt): their differences are a turn's
header (e.g. ``<|start_header_id|>assistant<|end_header_id|>\\n\\n``), content and closing text
(e.g. ``<|eot_id|>``). Works for any template, with or without ``{% generation %}`` markers.

Fast path: most templates write each turn as header + content + closing, independent of the
other turns. When the pieces learned from probes (:class:`~studio.core.templates.TurnPieces`)
reassemble into exactly the text the template renders for the whole conversation, the spans are
read from the pieces and the prefix renders are skipped (one render per row instead of about
1.5 per turn). Any difference falls back to prefix rendering, so both paths give the same spans.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from studio.core.direct_templates import direct_layout_for
from studio.core.errors import TemplateError

Turn = tuple[int, int, int]  # (start, start of the part that trains when the turn does, end)


@dataclass
class Layout:
    """A rendered sequence before tokenization.

    Attributes:
        row: source row number.
        text: the rendered text.
        roles: ``(start char, role)`` spans covering the text in order.
        loss: ``(start, end)`` character regions whose tokens carry loss.
        splits: character positions where the text is tokenized as separate pieces (the
            prompt/completion edge of a preference pair).
        warnings: sentences about this row.
        tools: the tool definitions rendered with the conversation (``None`` for none).
    """

    row: int
    text: str
    roles: list[tuple[int, str]] = field(default_factory=list)
    loss: list[tuple[int, int]] = field(default_factory=list)
    splits: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tools: list | None = None


def common_prefix(a: str, b: str) -> int:
    """Length of the common prefix of two strings."""
    if b.startswith(a):
        return len(a)
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class Layouter:
    """Lays out examples with one template and loss option."""

    def __init__(self, template, loss: str) -> None:
        self.template = template
        self.loss = loss
        self.pieces = template.pieces
        self.direct = direct_layout_for(template)

    def render(self, row: int, messages: list, generation: bool = False, tools: list | None = None) -> str:
        """Render, naming the row in any template error."""
        try:
            return self.template.render(messages, generation, tools)
        except TemplateError as exc:
            raise TemplateError(f"row {row}: {exc.message}", exc.hint) from exc

    def layout(self, example, extra: list | None = None) -> Layout:
        """Text, role spans and loss regions of a chat or prompt/completion row."""
        messages = list(example.messages) + list(example.chosen or []) + list(extra or [])
        if not messages:
            raise TemplateError(f"row {example.row} has no messages", "remove the row or fix its columns")
        tools = getattr(example, "tools", None)
        direct = self.direct(messages) if self.direct is not None and not tools else None
        if direct is not None:  # a template Studio writes without Jinja (see studio.core.direct_templates)
            text, roles, turns = direct
            lay = Layout(example.row, text, roles, tools=tools)
            lay.loss = self._loss_regions(lay, example, messages, turns)
            return lay
        calls = any(m.tool_calls or m.role == "tool" for m in messages)
        if calls or tools:
            self._check_tool_support(example.row, tools, calls)
        text, marked = self._render_marked(example.row, messages, tools)
        lay = Layout(example.row, text, tools=tools)
        turns = None if calls or tools else self._fast_turns(lay, messages)
        if turns is None:
            turns = self._slow_turns(lay, messages)
        if marked is not None and self.loss in ("assistant", "last_assistant"):
            lay.loss = self._marked_loss(lay, example, messages, marked, turns)
        elif turns is None:
            return self._flat(lay, messages)
        else:
            lay.loss = self._loss_regions(lay, example, messages, turns)
        if tools:
            _overlay(lay, self._tools_region(lay, messages), "tools")
        return lay

    def _check_tool_support(self, row: int, tools: list | None, calls: bool) -> None:
        """A template that would silently drop tool definitions or calls is refused."""
        source = self.template.source
        missing = [what for what, needed, word in (("tool definitions", tools, "tools"), ("tool calls", calls,
                   "tool_calls")) if needed and word not in source]
        if missing:
            raise TemplateError(f"row {row} has {' and '.join(missing)}, which the chat template "
                                f"({self.template.name}) does not write, so they would be lost",
                                "use a template that renders tools: the model's own (model.template=auto) if it "
                                "has one, or llama3.1")

    def _tools_region(self, lay: Layout, messages: list) -> tuple[int, int]:
        """Where the tool definitions sit in the text: from the first to the last one's JSON, else the
        part that differs from the conversation rendered without tools."""
        found = []
        for tool in lay.tools or []:
            for text in (json.dumps(tool, indent=4, ensure_ascii=False), json.dumps(tool, ensure_ascii=False),
                         json.dumps(tool, indent=2, ensure_ascii=False)):
                at = lay.text.find(text)
                if at >= 0:
                    found.append((at, at + len(text)))
                    break
        if found:
            return min(a for a, _ in found), max(b for _, b in found)
        bare = self.render(lay.row, messages)
        start = common_prefix(bare, lay.text)
        tail = common_prefix(bare[start:][::-1], lay.text[start:][::-1])
        return start, len(lay.text) - tail

    def _render_marked(self, row: int, messages: list, tools: list | None) -> tuple[str, list[tuple[int, int]] | None]:
        """The text, and the ``{% generation %}`` spans when the template marks them (else ``None``)."""
        if not self.template.marked:
            return self.render(row, messages, tools=tools), None
        try:
            return self.template.render_spans(messages, tools)
        except TemplateError as exc:
            raise TemplateError(f"row {row}: {exc.message}", exc.hint) from exc

    def _marked_loss(self, lay: Layout, example, messages: list, spans: list[tuple[int, int]],
                     turns: list[Turn] | None) -> list[tuple[int, int]]:
        """Loss from the template's ``{% generation %}`` blocks, as TRL's assistant-only loss takes it.

        When there is one block per assistant message, each block is that turn's trained part and
        the per-message switches (``train``) apply as usual.
        """
        spans = [(a, b) for a, b in spans if b > a]
        assistant = [i for i, m in enumerate(messages) if m.role == "assistant"]
        if turns is not None and len(spans) == len(assistant):
            by_turn = dict(zip(assistant, spans))
            turns = [(t[0], *by_turn[i]) if i in by_turn else t for i, t in enumerate(turns)]
            return self._loss_regions(lay, example, messages, turns)
        if turns is None:  # roles from the marked spans alone
            lay.roles = _spans([(0, "user")] + [r for a, b in spans for r in ((a, "assistant"), (b, "user"))],
                               len(lay.text))
        if not spans:
            lay.warnings.append(f"row {lay.row} has no assistant turn, so no token carries loss")
        return spans[-1:] if self.loss == "last_assistant" else spans

    def pair_layout(self, example, prompt: str, completion: list) -> Layout:
        """A preference side: prompt (tokenized on its own) then completion, loss on the completion."""
        from studio.core.conversation import Example

        lay = self.layout(Example(example.row, list(example.messages), tools=example.tools), completion)
        edge = common_prefix(prompt, lay.text)
        if edge < len(prompt):
            lay.warnings.append(f"row {example.row}: the prompt rendered alone is not a prefix of prompt + completion")
        lay.splits, lay.loss = [edge], [(edge, len(lay.text))]
        return lay

    # -- turns ------------------------------------------------------------------------------

    def _fast_turns(self, lay: Layout, messages: list) -> list[Turn] | None:
        """Turns read from the learned pieces, if they reassemble into exactly the rendered text."""
        pieces, text, pos, turns, spans = self.pieces, lay.text, 0, [], []
        limit = len(text) - len(pieces.tail)
        for i, msg in enumerate(messages):
            head = pieces.heads.get((i == 0, msg.role))
            close = pieces.closes.get(msg.role)
            if head is None or close is None:
                return None
            content = msg.content.strip() if pieces.strips[msg.role] else msg.content
            c_start = pos + len(head)
            c_end = c_start + len(content)
            if not (text.startswith(head, pos) and text.startswith(content, c_start)
                    and text.startswith(close, c_end)):
                return None
            end = c_end + len(close) if i < len(messages) - 1 else len(text)  # the tail closes the last turn
            body = c_start
            spans += _spans([(pos, "header"), (c_start, msg.role), (c_end, "eot")], end)
            turns.append((pos, body, end))
            pos = c_end + len(close)
        if pos != limit or not text.endswith(pieces.tail) or pieces.gen != pieces.heads.get((False, "assistant")):
            return None
        lay.roles = spans
        return turns

    def _slow_turns(self, lay: Layout, messages: list) -> list[Turn] | None:
        """Turns from prefix renders; ``None`` when the template rewrites an assistant turn.

        A prefix that does not render on its own (Llama 3.1 moves the tool definitions into the
        first user turn, so the system turn alone with tools raises) is merged with the turns
        after it until one does; only a merged assistant turn gives up.
        """
        text, start, turns, spans, merged = lay.text, 0, [], [], []
        for i, msg in enumerate(messages):
            end = len(text) if i == len(messages) - 1 else self._prefix_end(lay, messages[: i + 1])
            if end is None or end < start:
                if msg.role == "assistant":
                    return None
                merged.append(i)
                continue
            body = self._body_start(lay, messages, i, start, end) if msg.role == "assistant" else None
            c_end_limit = end - len(self.pieces.tail) if end == len(text) and text.endswith(self.pieces.tail) else end
            c_start, c_end = self._content_bounds(text, start if body is None else body, c_end_limit, msg)
            role = "tool_call" if msg.tool_calls and not msg.content else msg.role
            first = messages[merged[0]].role if merged else "header"
            spans += _spans([(start, first), (c_start if body is None else body, role), (c_end, "eot")], end)
            turns += [(start, start, end)] * len(merged) + [(start, c_start if body is None else body, end)]
            start, merged = end, []
        lay.roles = spans
        return turns

    def _prefix_end(self, lay: Layout, prefix: list, generation: bool = False) -> int | None:
        """Where ``render(prefix)`` ends inside the full text, or ``None`` if it is not a prefix of it."""
        try:
            part = self.template.render(prefix, generation, lay.tools)
        except TemplateError:
            return None
        tail = self.pieces.tail
        if not generation and tail and part.endswith(tail) and not lay.text.startswith(part):
            part = part[: len(part) - len(tail)]  # written once, after the last turn only
        return len(part) if lay.text.startswith(part) else None

    def _body_start(self, lay: Layout, messages: list, i: int, start: int, end: int) -> int:
        """Where an assistant turn's trained part begins: right after its generation prompt."""
        gen = self._prefix_end(lay, messages[:i], True) if i > 0 else None
        if gen is not None and start <= gen <= end:
            return gen
        return self._content_bounds(lay.text, start, end, messages[i])[0]

    def _content_bounds(self, text: str, start: int, end: int, msg) -> tuple[int, int]:
        """Character bounds of a turn's content: just before the template's closing text."""
        closing = self.pieces.closes.get(msg.role, "")
        stop = end - len(closing) if closing and text.endswith(closing, start, end) else end
        for content in (msg.content, msg.content.strip()):
            if content and stop - len(content) >= start and text.startswith(content, stop - len(content), stop):
                return stop - len(content), stop
        return start, stop

    # -- loss ---------------------------------------------------------------------------------

    def _loss_regions(self, lay: Layout, example, messages: list, turns: list[Turn]) -> list[tuple[int, int]]:
        if self.loss == "all":
            return [(0, len(lay.text))]
        if self.loss == "completion":
            return self._completion_region(lay, example, messages)
        if self.loss == "assistant":  # the common case, without building the set below
            trained = [i for i, m in enumerate(messages) if (m.role == "assistant" if m.train is None else m.train)]
        else:
            assistant = [i for i, m in enumerate(messages) if m.role == "assistant"]
            default = set(assistant[-1:])
            trained = [i for i, m in enumerate(messages) if (i in default if m.train is None else m.train)]
        if not trained:
            lay.warnings.append(f"row {lay.row} has no assistant turn that trains, so no token carries loss")
        return [(turns[i][1], turns[i][2]) for i in trained]

    def _completion_region(self, lay: Layout, example, messages: list) -> list[tuple[int, int]]:
        cut = example.completion_start
        if cut is None:  # a chat row: its trailing assistant turns are the completion
            cut = len(messages)
            while cut > 0 and messages[cut - 1].role == "assistant":
                cut -= 1
        if cut >= len(messages) or cut == 0:
            lay.warnings.append(f"row {lay.row} has no prompt and completion, so no token carries loss")
            return []
        # Rendered, not read from the turns: a template may write a prompt alone differently.
        prompt = self.render(lay.row, messages[:cut], True, lay.tools)
        edge = common_prefix(prompt, lay.text)
        if edge < len(prompt):
            lay.warnings.append(f"row {lay.row}: the prompt rendered alone is not a prefix of the whole "
                                "conversation; the completion starts where they differ")
        return [(edge, len(lay.text))]

    def _flat(self, lay: Layout, messages: list) -> Layout:
        """Fallback for a template that rewrites earlier turns: only the final assistant turn trains."""
        lay.warnings.append(f"row {lay.row}: the template does not render this conversation as growing "
                            "prefixes, so only the final assistant turn can carry loss")
        lay.roles = [(0, "user")]
        if self.loss == "all":
            lay.loss = [(0, len(lay.text))]
        elif messages[-1].role == "assistant":
            edge = common_prefix(self.render(lay.row, messages[:-1], True, lay.tools), lay.text)
            lay.roles.append((edge, "assistant"))
            lay.loss = [(edge, len(lay.text))]
        return lay


def _overlay(lay: Layout, region: tuple[int, int], role: str) -> None:
    """Give the characters of ``region`` the role ``role`` in ``lay.roles``."""
    a, b = region
    if a >= b:
        return
    after = next((r for s, r in reversed(lay.roles) if s <= b), lay.roles[0][1] if lay.roles else role)
    kept = [(s, r) for s, r in lay.roles if s < a or s > b]
    lay.roles = sorted(kept + [(a, role)] + ([(b, after)] if b < len(lay.text) else []))


def _spans(spans: list[tuple[int, str]], end: int) -> list[tuple[int, str]]:
    """Drop empty spans (a span ends where the next begins; the last ends at ``end``)."""
    return [s for s, nxt in zip(spans, spans[1:] + [(end, "")]) if s[0] < nxt[0]]
