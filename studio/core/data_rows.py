"""Turning one record of a known format into the parts of an Example, or saying why not.

Each ``*_row(rec, cols)`` function takes a raw record and ``cols``, the mapping from Studio's
field names (``messages``, ``instruction``, ``chosen``...) to the record's own column names,
and returns the keyword arguments of :class:`~studio.core.conversation.Example` (without the
row number and extras). A row that cannot be used raises :class:`RowProblem` whose reason
names the field as the file spells it (``dialog[2].content is empty``), so a person can find
it. Strings that hold a JSON list (as CSV cells must) are read as that list.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from studio.core.conversation import Message
from studio.core.data_files import json_type

# Role names accepted in conversations, including ShareGPT's, mapped to Studio's roles.
ROLE_ALIASES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant"}
_ROLE_HINT = "expected system, user or assistant (ShareGPT: system, human or gpt)"

# Where a turn sits in the record: a field name, or (field, index) formatted only when a
# message needs it, because building that text for every turn of 100k rows is the slow part.
Turn = tuple[Any, Message]


class RowProblem(Exception):
    """Why one record cannot be used; ``reason`` names the field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def chat_row(rec: dict, cols: dict[str, str]) -> dict:
    """An OpenAI-messages or ShareGPT record (optionally with a system column).

    A conversation that ends with a user turn and has a ``reference`` answer (an evaluation
    prompt) becomes a prompt/completion example whose completion is the reference, so it has
    a loss to evaluate and ``messages[:completion_start]`` is the prompt to generate from.
    """
    key = cols["messages"] if "messages" in cols else cols["conversations"]
    turns = _with_system(rec, cols, parse_turns(need(rec, key), key))
    reference = _optional_text(rec, cols.get("reference"))
    if reference and turns[-1][1].role == "user":
        check_order(turns + [(cols["reference"], Message("assistant", reference))])
        return {"messages": plain(turns) + [Message("assistant", reference)], "completion_start": len(turns)}
    check_order(turns)
    return {"messages": plain(turns)}


def text_row(rec: dict, cols: dict[str, str]) -> dict:
    """A plain-text record (general text for forgetting checks): one assistant turn of the text."""
    return {"messages": [Message("assistant", required_text(rec, cols["text"]))]}


def alpaca_row(rec: dict, cols: dict[str, str]) -> dict:
    """An Alpaca record: instruction (+ input) -> output, after optional system and history."""
    instruction = _optional_text(rec, cols.get("instruction"))
    extra_input = _optional_text(rec, cols.get("input"))
    question = "\n\n".join(t for t in (instruction, extra_input) if t)
    if not question:
        also = f" and '{cols['input']}'" if "input" in cols else ""
        raise RowProblem(f"'{cols['instruction']}'{also} empty or missing: there is no question to answer")
    answer = required_text(rec, cols["output"])
    turns = _system_turns(rec, cols) + _history(rec, cols.get("history"))
    turns += [(cols["instruction"], Message("user", question)), (cols["output"], Message("assistant", answer))]
    return {"messages": plain(turns)}


def prompt_completion_row(rec: dict, cols: dict[str, str]) -> dict:
    """A prompt/completion record; either side may be text or a list of turns."""
    prompt = _side(rec, cols["prompt"], "user")
    completion = _side(rec, cols["completion"], "assistant")
    check_order(prompt + completion)
    return {"messages": plain(prompt + completion), "completion_start": len(prompt)}


def preference_row(rec: dict, cols: dict[str, str]) -> dict:
    """A preference pair: prompt + chosen + rejected, or two conversations sharing a prompt."""
    chosen_key, rejected_key = cols["chosen"], cols["rejected"]
    need(rec, chosen_key), need(rec, rejected_key)
    prompt_key = cols.get("prompt")
    if prompt_key and rec.get(prompt_key) is not None:
        prompt = _side(rec, prompt_key, "user")
        chosen = _after_prompt(prompt, _side(rec, chosen_key, "assistant"))
        rejected = _after_prompt(prompt, _side(rec, rejected_key, "assistant"))
    else:
        prompt, chosen, rejected = _split_shared_prompt(rec, chosen_key, rejected_key)
    if plain(chosen) == plain(rejected):
        raise RowProblem(f"'{chosen_key}' and '{rejected_key}' are identical, so the pair teaches nothing; "
                         "fix or drop the row")
    check_order(prompt + chosen)
    check_order(prompt + rejected)
    return {"messages": plain(prompt), "chosen": plain(chosen), "rejected": plain(rejected)}


def _after_prompt(prompt: list[Turn], side: list[Turn]) -> list[Turn]:
    """A chosen/rejected conversation without the prompt turns, when it repeats them first."""
    n = len(prompt)
    if len(side) > n and plain(side[:n]) == plain(prompt):
        return side[n:]
    return side


def _split_shared_prompt(rec: dict, chosen_key: str, rejected_key: str) -> tuple[list, list, list]:
    """The implicit-prompt form: the turns both conversations open with are the prompt."""
    chosen_v, rejected_v = _maybe_json_list(rec[chosen_key]), _maybe_json_list(rec[rejected_key])
    if isinstance(chosen_v, str) or isinstance(rejected_v, str):
        raise RowProblem(f"no prompt: '{chosen_key}' and '{rejected_key}' are plain text, so the row needs a "
                         "'prompt' field (or make both full conversations that open with the same turns)")
    chosen, rejected = parse_turns(chosen_v, chosen_key), parse_turns(rejected_v, rejected_key)
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared][1] == rejected[shared][1]:
        shared += 1
    if shared == len(chosen) == len(rejected):
        raise RowProblem(f"'{chosen_key}' and '{rejected_key}' are identical, so the pair teaches nothing; "
                         "fix or drop the row")
    # The prompt ends at the last shared user turn; the pair diverges in what the assistant says.
    while shared and chosen[shared - 1][1].role != "user":
        shared -= 1
    if not shared:
        raise RowProblem(f"'{chosen_key}' and '{rejected_key}' do not open with the same user turn, so the "
                         "prompt cannot be found; add a 'prompt' field")
    return chosen[:shared], chosen[shared:], rejected[shared:]


def parse_turns(value: Any, key: str) -> list[Turn]:
    """Read a list of {role, content} (or ShareGPT {from, value}) turns.

    Args:
        value: the field's value (a list, or text holding a JSON list).
        key: the field's name in the record, used in reasons.

    Raises:
        RowProblem: not a list, empty, or a turn with a bad role or content.
    """
    value = _maybe_json_list(value)
    if not isinstance(value, list):
        raise RowProblem(f"'{key}' must be a list of turns, got a {json_type(value)}")
    if not value:
        raise RowProblem(f"'{key}' is an empty list")
    return [((key, i), _turn(item, key, i)) for i, item in enumerate(value)]


def where_text(where: Any) -> str:
    """``messages[2]`` for ``("messages", 2)``; a plain field name unchanged."""
    return f"{where[0]}[{where[1]}]" if isinstance(where, tuple) else where


def _turn(item: Any, key: str, index: int) -> Message:
    """One turn of a conversation, checked; well-formed turns take the fast path."""
    if type(item) is dict:
        role, text = item.get("role"), item.get("content")
        if role is None:
            role, text = item.get("from"), item.get("value")
        if type(role) is str and type(text) is str and role in ROLE_ALIASES and text.strip():
            return Message(ROLE_ALIASES[role], text)
    return _checked_turn(item, f"{key}[{index}]")


def _checked_turn(item: Any, where: str) -> Message:
    """One turn, with the precise reason when it is unusable."""
    if not isinstance(item, dict):
        raise RowProblem(f"{where} must be an object with role and content, got a {json_type(item)}")
    sharegpt = item.get("role") is None and "from" in item
    role_key, text_key = ("from", "value") if sharegpt else ("role", "content")
    if item.get(text_key) is None and item.get("value" if text_key == "content" else "content") is not None:
        text_key = "value" if text_key == "content" else "content"  # mixed shapes: use the text that is there
    role = item.get(role_key)
    if role is None:
        raise RowProblem(f"{where} has no 'role' (or ShareGPT 'from')")
    name = role.strip().lower() if isinstance(role, str) else role
    if name in ("tool", "function", "ipython"):
        raise RowProblem(f"{where}.{role_key} is {role!r}: tool turns are not supported yet; drop the row or fold "
                         "the tool result into the neighbouring turns")
    if not isinstance(name, str) or name not in ROLE_ALIASES:
        raise RowProblem(f"{where}.{role_key} is {role!r}: {_ROLE_HINT}")
    content = item.get(text_key)
    if isinstance(content, list) and content and all(isinstance(part, dict) for part in content):
        item = {text_key: _text_parts(content, f"{where}.{text_key}")}
    return Message(ROLE_ALIASES[name], required_text(item, text_key, where + "."))


def _text_parts(parts: list[dict], where: str) -> str:
    """OpenAI content parts (``[{"type": "text", "text": ...}]``) joined; other parts are refused."""
    texts = []
    for i, part in enumerate(parts):
        if part.get("type", "text") != "text" or not isinstance(part.get("text"), str):
            raise RowProblem(f"{where}[{i}] is a part of type {part.get('type')!r}; Studio trains on "
                             "text only, so drop the row or replace the part with text")
        texts.append(part["text"])
    return "".join(texts)


def check_order(turns: list[Turn]) -> None:
    """Require: optional system first, then user and assistant alternating, ending with assistant.

    Raises:
        RowProblem: naming the first turn out of order.
    """
    expected = "user"
    for i, (at, msg) in enumerate(turns):
        if msg.role == expected:
            expected = "assistant" if expected == "user" else "user"
            continue
        where = where_text(at)
        if msg.role == "system":
            if i:
                raise RowProblem(f"{where}: a system turn may only come first")
            continue
        if msg.role != expected:
            if expected == "user" and i <= 1:
                raise RowProblem(f"{where}: the conversation must start with a user turn (after an optional "
                                 f"system turn), not {msg.role}")
            raise RowProblem(f"{where}: two {msg.role} turns in a row ({where_text(turns[i - 1][0])} and {where}); merge "
                             f"them or put the {expected} turn between them")
    last_at, last = turns[-1]
    if last.role != "assistant":
        raise RowProblem(f"{where_text(last_at)}: the conversation ends with a {last.role} turn; it needs an assistant "
                         "reply after it to learn from")


def need(rec: dict, key: str) -> Any:
    """The value of a field that must be present and not null."""
    value = rec.get(key)
    if value is None:
        raise RowProblem(f"missing field '{key}'" if key not in rec else f"'{key}' is null")
    return value


def required_text(rec: dict, key: str, prefix: str = "") -> str:
    """A field that must be a non-empty string."""
    if rec.get(key) is None:
        raise RowProblem(f"{prefix}{key} is missing" if prefix else f"missing field '{key}'")
    value, name = rec[key], f"{prefix}{key}" if prefix else f"'{key}'"
    if not isinstance(value, str):
        raise RowProblem(f"{name} must be a string, got a {json_type(value)}")
    if not value.strip():
        raise RowProblem(f"{name} is empty")
    return value


def _optional_text(rec: dict, key: str | None) -> str:
    """A field that may be absent, null or empty; when present it must be a string."""
    if key is None or rec.get(key) is None:
        return ""
    value = rec[key]
    if not isinstance(value, str):
        raise RowProblem(f"'{key}' must be a string, got a {json_type(value)}")
    return value.strip() and value


def _side(rec: dict, key: str, role: str) -> list[Turn]:
    """A prompt/completion/chosen/rejected field: text (one turn of ``role``) or a list of turns."""
    value = _maybe_json_list(need(rec, key))
    if isinstance(value, str):
        return [(key, Message(role, required_text(rec, key)))]
    return parse_turns(value, key)


def _system_turns(rec: dict, cols: dict[str, str]) -> list[Turn]:
    """The record's system column as a turn, when it has a non-empty one."""
    text = _optional_text(rec, cols.get("system"))
    return [(cols["system"], Message("system", text))] if text else []


def _with_system(rec: dict, cols: dict[str, str], turns: list[Turn]) -> list[Turn]:
    """Put a system column in front of a conversation that has no system turn of its own."""
    system = _system_turns(rec, cols)
    if not system or turns[0][1].role != "system":
        return system + turns
    if turns[0][1].content != system[0][1].content:
        raise RowProblem(f"both '{cols['system']}' and {where_text(turns[0][0])} give a system prompt, and they differ; "
                         "keep one")
    return turns


def _history(rec: dict, key: str | None) -> list[Turn]:
    """Alpaca history: earlier [question, answer] pairs, as user/assistant turns."""
    if key is None or rec.get(key) is None:
        return []
    pairs = _maybe_json_list(rec[key])
    if not isinstance(pairs, list):
        raise RowProblem(f"'{key}' must be a list of [question, answer] pairs, got a {json_type(pairs)}")
    turns: list[Turn] = []
    for i, pair in enumerate(pairs):
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2
        if not ok or not all(isinstance(t, str) and t.strip() for t in pair):
            raise RowProblem(f"{key}[{i}] must be a [question, answer] pair of non-empty strings")
        turns += [(f"{key}[{i}][0]", Message("user", pair[0])), (f"{key}[{i}][1]", Message("assistant", pair[1]))]
    return turns


def _maybe_json_list(value: Any) -> Any:
    """A JSON list held in text (CSV cells), parsed; anything else unchanged."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return value
        if isinstance(parsed, list):
            return parsed
    return value


def plain(turns: list[Turn]) -> list[Message]:
    """The messages of some turns, without their locations."""
    return [msg for _, msg in turns]


RowFn = Callable[[dict, dict], dict]
