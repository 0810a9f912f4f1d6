"""Chat templates whose whole text Studio knows, laid out without Jinja.

Rendering a conversation through Jinja costs tens of microseconds, a quarter of measuring a
large dataset. For the Llama 3 template (Meta's text, which Studio ships as ``llama3``) and
TRL's training variant of it, the rendered text is simple enough to write directly: BOS, then
per message ``<|start_header_id|>ROLE<|end_header_id|>\\n\\n`` + the trimmed content +
``<|eot_id|>``. :func:`direct_layout_for` returns a function that writes that text together
with its turn spans, only for a template whose text is exactly one of those two (any other
text, even a small edit, goes through Jinja) and only for conversations whose every turn is a
plain system, user or assistant message (tool calls and tool definitions go through Jinja).

``tests/unit/core/test_direct_templates.py`` checks that the text, roles and loss regions, and
the encoded ids and labels, equal the Jinja path's on every dataset fixture and on varied rows.
"""

from __future__ import annotations

from typing import Callable

from studio.core.builtin_templates import LLAMA3

#: TRL 1.16's ``chat_templates/llama3_training.jinja`` (the variant Studio renders for the
#: llama3 template when TRL is installed), verbatim: another text is not laid out directly.
LLAMA3_TRAINING = (
    "{#- Training variant of the Llama 3 chat template (see llama3.jinja for the original).\n"
    "    Modifications vs the original:\n"
    "    - Added {% generation %} / {% endgeneration %} around assistant message output to support\n"
    "      assistant-only loss masking in SFT training.\n"
    "-#}\n"
    "{%- for message in messages %}\n"
    "    {%- if loop.index0 == 0 %}{{- bos_token }}{%- endif %}\n"
    "    {%- if message['role'] == 'assistant' %}\n"
    "        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "        {%- generation %}\n"
    "        {{- message['content'] | trim + '<|eot_id|>' }}\n"
    "        {%- endgeneration %}\n"
    "    {%- else %}\n"
    "        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
    "'<|eot_id|>' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n"
)

_ROLES = frozenset(("system", "user", "assistant"))
_HEADS = {role: f"<|start_header_id|>{role}<|end_header_id|>\n\n" for role in _ROLES}
_EOT = "<|eot_id|>"
_EOT_LEN = len(_EOT)

Turn = tuple[int, int, int]
#: (text, ``(start, role)`` spans, turns as ``(start, content start, end)``) or ``None``
DirectLayout = Callable[[list], "tuple[str, list[tuple[int, str]], list[Turn]] | None"]


def direct_layout_for(template) -> DirectLayout | None:
    """The direct layout of ``template`` (a ``ResolvedTemplate``), or ``None`` when it must use Jinja.

    Both Llama 3 texts need ``bos_token`` (Meta's text fails without it, TRL's writes nothing).
    """
    bos = template.specials.get("bos_token")
    if template.text not in (LLAMA3, LLAMA3_TRAINING) or not isinstance(bos, str) or not bos:
        return None
    return lambda messages: _llama3(messages, bos)


def _llama3(messages: list, bos: str) -> tuple[str, list[tuple[int, str]], list[Turn]] | None:
    """Text, role spans and turns of ``messages`` in the Llama 3 template, or ``None`` for a turn it
    does not lay out (another role, tool calls, content that is not text).

    The spans are those :class:`~studio.core.layout.Layouter` reads from the template's learned
    pieces; a turn ends after its ``<|eot_id|>``.
    """
    parts, roles, turns = [bos], [], []
    start, pos = 0, len(bos)
    for m in messages:
        role = m.role
        if role not in _ROLES or m.tool_calls or type(m.content) is not str:
            return None
        content = m.content.strip()  # Jinja's trim filter is str.strip()
        head = _HEADS[role]
        c_start = pos + len(head)
        c_end = c_start + len(content)
        parts += (head, content, _EOT)
        # a turn's header (from 0 for the first: it holds BOS), content and closing; an empty
        # content has no span, as on the learned-pieces path
        roles += ((start, "header"), (c_start, role), (c_end, "eot")) if c_end > c_start else \
            ((start, "header"), (c_end, "eot"))
        turns.append((start, c_start, c_end + _EOT_LEN))
        start = pos = c_end + _EOT_LEN
    return "".join(parts), roles, turns
