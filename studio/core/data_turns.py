"""Reading the turns of a conversation: roles, content parts, loss switches, tool calls and results.

A turn is ``{role, content}`` (OpenAI) or ``{from, value}`` (ShareGPT). Besides system, user and
assistant turns this reads:

- content given as a list of parts, ``[{"type": "text", "text": ...}]`` or
  ``[{"type": "text", "value": ...}]``, joined; other parts (image, audio, video...) are
  refused: Studio trains on text;
- a per-turn loss switch, ``loss_weight`` (0/1), ``weight`` (0/1) or ``train`` (true/false);
- assistant tool calls: OpenAI ``tool_calls`` (arguments as JSON text or an object) and
  ShareGPT ``function_call`` turns (the value is ``{"name", "arguments"}`` as JSON text);
- tool results: roles ``tool``, ``ipython``, ``function`` and ShareGPT ``observation``.

Every problem raises :class:`RowProblem` whose reason names the field as the file spells it.
"""

from __future__ import annotations

import json
from typing import Any

from studio.core.conversation import Message
from studio.core.data_files import a_json_type

# Role names accepted in conversations, mapped to Studio's roles.
ROLE_ALIASES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
                "tool": "tool", "ipython": "tool", "function": "tool", "observation": "tool",
                "function_call": "assistant"}
_ROLE_HINT = ("expected system, user, assistant or tool (ShareGPT: system, human, gpt, function_call or "
              "observation)")
SWITCHES = ("loss_weight", "weight", "train")
_TEXT_PART_KEYS = ("text", "value")

# Where a turn sits in the record: a field name, or (field, index) formatted only when a
# message needs it, because building that text for every turn of 100k rows is the slow part.
Turn = tuple[Any, Message]


class RowProblem(Exception):
    """Why one record cannot be used; ``reason`` names the field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_turns(value: Any, key: str) -> list[Turn]:
    """Read a list of {role, content} (or ShareGPT {from, value}) turns.

    Args:
        value: the field's value (a list, or text holding a JSON list).
        key: the field's name in the record, used in reasons.

    Raises:
        RowProblem: not a list, empty, or a turn with a bad role or content.
    """
    value = maybe_json(value, "[")
    if not isinstance(value, list):
        raise RowProblem(f"'{key}' must be a list of turns, got {a_json_type(value)}")
    if not value:
        raise RowProblem(f"'{key}' is an empty list")
    return [((key, i), _turn(item, key, i)) for i, item in enumerate(value)]


def where_text(where: Any) -> str:
    """``messages[2]`` for ``("messages", 2)``; a plain field name unchanged."""
    return f"{where[0]}[{where[1]}]" if isinstance(where, tuple) else where


def _turn(item: Any, key: str, index: int) -> Message:
    """One turn of a conversation, checked; plain two-key turns take the fast path."""
    if type(item) is dict and len(item) == 2:
        role, text = item.get("role"), item.get("content")
        if role is None:
            role, text = item.get("from"), item.get("value")
        if type(role) is str and type(text) is str and role in ROLE_ALIASES and role != "function_call" \
                and text.strip():
            return Message(ROLE_ALIASES[role], text)
    return checked_turn(item, f"{key}[{index}]")


def checked_turn(item: Any, where: str) -> Message:
    """One turn, with the precise reason when it is unusable."""
    if not isinstance(item, dict):
        raise RowProblem(f"{where} must be an object with role and content, got {a_json_type(item)}")
    sharegpt = item.get("role") is None and "from" in item
    role_key, text_key = ("from", "value") if sharegpt else ("role", "content")
    if item.get(text_key) is None and item.get("value" if text_key == "content" else "content") is not None:
        text_key = "value" if text_key == "content" else "content"  # mixed shapes: use the text that is there
    role = item.get(role_key)
    if role is None:
        raise RowProblem(f"{where} has no 'role' (or ShareGPT 'from')")
    name = role.strip().lower() if isinstance(role, str) else role
    if not isinstance(name, str) or name not in ROLE_ALIASES:
        raise RowProblem(f"{where}.{role_key} is {role!r}: {_ROLE_HINT}")
    train = _switch(item, where)
    if name == "function_call":
        return Message("assistant", "", train, (_call(maybe_json(item.get(text_key), "{["), f"{where}.{text_key}"),))
    role = ROLE_ALIASES[name]
    calls = _calls(item, where) if role == "assistant" else None
    content = item.get(text_key)
    if isinstance(content, list) and content and all(isinstance(part, dict) for part in content):
        content = text_parts(content, f"{where}.{text_key}")
    if role == "tool" and isinstance(content, (dict, list)):
        content = json.dumps(content, ensure_ascii=False)  # a structured tool result, kept as its JSON text
    if calls and (content is None or content == ""):
        return Message(role, "", train, calls)
    text = required_text({text_key: content}, text_key, where + ".")
    tool_name = item.get("name") if role == "tool" and isinstance(item.get("name"), str) else None
    return Message(role, text, train, calls, tool_name)


def text_parts(parts: list[dict], where: str) -> str:
    """Content parts (``[{"type": "text", "text"|"value": ...}]``) joined; other parts are refused."""
    texts = []
    for i, part in enumerate(parts):
        kind = part.get("type", "text")
        text = next((part[k] for k in _TEXT_PART_KEYS if isinstance(part.get(k), str)), None)
        if kind != "text":
            raise RowProblem(f"{where}[{i}] is a part of type {kind!r}; Studio trains on text only, so drop the "
                             "row or replace the part with text")
        if text is None:
            raise RowProblem(f"{where}[{i}] is a text part without a 'text' (or 'value') string")
        texts.append(text)
    return "".join(texts)


def _switch(item: dict, where: str) -> bool | None:
    """The turn's loss switch: ``loss_weight``/``weight`` 0 or 1, ``train`` true or false; None if absent."""
    for key in SWITCHES:
        value = item.get(key)
        if value is None:
            continue
        if isinstance(value, bool) and key == "train":
            return value
        if not isinstance(value, bool) and isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        allowed = "true or false" if key == "train" else "0 or 1"
        raise RowProblem(f"{where}.{key} is {value!r}: a loss switch must be {allowed}")
    return None


def _calls(item: dict, where: str) -> tuple | None:
    """An assistant turn's OpenAI ``tool_calls`` (or a single legacy ``function_call``), normalised."""
    calls = item.get("tool_calls")
    if calls is None and isinstance(item.get("function_call"), (dict, str)):
        calls = [item["function_call"]]
    if calls is None:
        return None
    calls = maybe_json(calls, "[")
    if not isinstance(calls, list):
        raise RowProblem(f"{where}.tool_calls must be a list of calls, got {a_json_type(calls)}")
    return tuple(_call(maybe_json(call, "{"), f"{where}.tool_calls[{i}]") for i, call in enumerate(calls)) or None


def _call(call: Any, where: str) -> dict:
    """One tool call as transformers' templates take it: ``{"type": "function", "function": {name, arguments}}``
    with the arguments as an object (JSON text is parsed)."""
    if isinstance(call, list) and len(call) == 1:
        call = call[0]
    if not isinstance(call, dict):
        raise RowProblem(f"{where} must be a call object with a name and arguments, got {a_json_type(call)}")
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RowProblem(f"{where} has no function name")
    args = function.get("arguments", function.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            raise RowProblem(f"{where}: the arguments of {name!r} are not valid JSON ({exc.msg})") from None
    if not isinstance(args, dict):
        raise RowProblem(f"{where}: the arguments of {name!r} must be a JSON object, got {a_json_type(args)}")
    out = {"type": "function", "function": {"name": name, "arguments": args}}
    if isinstance(call.get("id"), str):
        out["id"] = call["id"]
    return out


def parse_tools(value: Any, key: str) -> list[dict] | None:
    """A ``tools`` field: a list of JSON-schema objects (or JSON text of one); None when empty."""
    value = maybe_json(value, "[")
    if value is None or value == "" or value == []:
        return None
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise RowProblem(f"'{key}' must be a list of tool definitions (JSON schema objects), got {a_json_type(value)}")
    return value


def check_order(turns: list[Turn]) -> None:
    """Require: optional system first, then a user turn; a user turn is answered by the assistant; an
    assistant turn that calls tools is followed by their results (tool turns), after which the
    assistant speaks again; the conversation ends with an assistant turn.

    Raises:
        RowProblem: naming the first turn out of order.
    """
    prev = None
    for i, (at, msg) in enumerate(turns):
        where = where_text(at)
        if msg.role == "system":
            if i:
                raise RowProblem(f"{where}: a system turn may only come first")
            continue
        allowed = _NEXT[_state(prev)]
        if msg.role not in allowed:
            raise RowProblem(_order_problem(where, msg.role, prev, turns, i))
        prev = msg
    last_at, last = turns[-1]
    if last.role != "assistant":
        raise RowProblem(f"{where_text(last_at)}: the conversation ends with a {last.role} turn; it needs an assistant "
                         "reply after it to learn from")


_NEXT = {"start": ("user",), "user": ("assistant",), "assistant": ("user",), "call": ("tool",),
         "tool": ("tool", "assistant")}


def _state(prev: Message | None) -> str:
    if prev is None:
        return "start"
    return "call" if prev.role == "assistant" and prev.tool_calls else prev.role


def _order_problem(where: str, role: str, prev: Message | None, turns: list[Turn], i: int) -> str:
    state = _state(prev)
    if state == "start":
        return f"{where}: the conversation must start with a user turn (after an optional system turn), not {role}"
    if state == "call":
        return f"{where}: an assistant turn that calls a tool must be followed by the tool's result (a tool turn), not {role}"
    if role == "tool":
        return f"{where}: a tool result must follow an assistant turn that calls a tool (tool_calls or function_call)"
    expected = _NEXT[state][-1]
    return (f"{where}: two {role} turns in a row ({where_text(turns[i - 1][0])} and {where}); merge them or put the "
            f"{expected} turn between them")


def required_text(rec: dict, key: str, prefix: str = "") -> str:
    """A field that must be a non-empty string."""
    if rec.get(key) is None:
        raise RowProblem(f"{prefix}{key} is missing" if prefix else f"missing field '{key}'")
    value, name = rec[key], f"{prefix}{key}" if prefix else f"'{key}'"
    if not isinstance(value, str):
        raise RowProblem(f"{name} must be a string, got {a_json_type(value)}")
    if not value.strip():
        raise RowProblem(f"{name} is empty")
    return value


def maybe_json(value: Any, starts: str = "[") -> Any:
    """A JSON list/object held in text (CSV cells, ShareGPT values), parsed; anything else unchanged."""
    if isinstance(value, str) and value.lstrip()[:1] in tuple(starts):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return value
        if isinstance(parsed, (list, dict)):
            return parsed
    return value


def plain(turns: list[Turn]) -> list[Message]:
    """The messages of some turns, without their locations."""
    return [msg for _, msg in turns]
