"""Turning one record of a known format into the parts of an Example, or saying why not.

Each ``*_row(rec, cols)`` function takes a raw record and ``cols``, the mapping from Studio's
field names (``messages``, ``instruction``, ``chosen``...) to the record's own column names,
and returns the keyword arguments of :class:`~studio.core.conversation.Example` (without the
row number and extras). A row that cannot be used raises :class:`RowProblem` whose reason
names the field as the file spells it (``dialog[2].content is empty``), so a person can find
it. Strings that hold a JSON list (as CSV cells must) are read as that list.
"""

from __future__ import annotations

from typing import Any, Callable

from studio.core.conversation import Message
from studio.core.data_files import a_json_type
from studio.core.data_turns import (RowProblem, Turn, check_order, checked_turn, maybe_json, parse_tools,
                                    parse_turns, plain, required_text, where_text)

__all__ = ["RowProblem", "chat_row", "text_row", "alpaca_row", "prompt_completion_row", "preference_row",
           "parse_label", "where_text"]

# Desirability labels of unpaired (KTO) rows, as text.
_GOOD = ("true", "1", "good", "desirable", "yes", "positive", "chosen", "up")
_BAD = ("false", "0", "bad", "undesirable", "no", "negative", "rejected", "down")


def chat_row(rec: dict, cols: dict[str, str]) -> dict:
    """An OpenAI-messages or ShareGPT record (optionally with system, tools and label columns).

    A conversation that ends with a user turn and has a ``reference`` answer (an evaluation
    prompt) becomes a prompt/completion example whose completion is the reference, so it has
    a loss to evaluate and ``messages[:completion_start]`` is the prompt to generate from.
    """
    key = cols["messages"] if "messages" in cols else cols["conversations"]
    turns = _with_system(rec, cols, parse_turns(need(rec, key), key))
    extras = _labels_and_tools(rec, cols)
    reference = _optional_text(rec, cols.get("reference"))
    if reference and turns[-1][1].role == "user":
        check_order(turns + [(cols["reference"], Message("assistant", reference))])
        return {"messages": plain(turns) + [Message("assistant", reference)], "completion_start": len(turns), **extras}
    check_order(turns)
    return {"messages": plain(turns), **extras}


def text_row(rec: dict, cols: dict[str, str]) -> dict:
    """A plain-text record: one document for continued pre-training (no chat template)."""
    return {"messages": [], "text": required_text(rec, cols["text"])}


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
    prompt = _with_system(rec, cols, _side(rec, cols["prompt"], "user"))
    completion = _side(rec, cols["completion"], "assistant")
    check_order(prompt + completion)
    return {"messages": plain(prompt + completion), "completion_start": len(prompt), **_labels_and_tools(rec, cols)}


def parse_label(value, key: str) -> bool:
    """An unpaired row's desirability: a boolean, 0/1, or text such as true/false, good/bad, yes/no.

    Raises:
        RowProblem: naming the field and the value it holds.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = value.strip().lower() if isinstance(value, str) else None
    if text in _GOOD or text in _BAD:
        return text in _GOOD
    raise RowProblem(f"'{key}' is {value!r}: a desirability label must be true/false, 1/0 or good/bad")


def _labels_and_tools(rec: dict, cols: dict[str, str]) -> dict:
    """The row's KTO label and tool definitions, when the file has those columns."""
    out = {}
    if "label" in cols and rec.get(cols["label"]) is not None:
        out["label"] = parse_label(rec[cols["label"]], cols["label"])
    if "tools" in cols:
        out["tools"] = parse_tools(rec.get(cols["tools"]), cols["tools"])
    return out


def preference_row(rec: dict, cols: dict[str, str]) -> dict:
    """A preference pair: prompt + chosen + rejected, or two conversations sharing a prompt."""
    chosen_key, rejected_key = cols["chosen"], cols["rejected"]
    need(rec, chosen_key), need(rec, rejected_key)
    prompt_key = next((cols[f] for f in ("prompt", "messages", "conversations") if rec.get(cols.get(f, "")) is not None),
                      None)
    if prompt_key:
        prompt = _with_system(rec, cols, _side(rec, prompt_key, "user"))
        chosen = _after_prompt(prompt, _side(rec, chosen_key, "assistant"))
        rejected = _after_prompt(prompt, _side(rec, rejected_key, "assistant"))
    else:
        prompt, chosen, rejected = _split_shared_prompt(rec, chosen_key, rejected_key)
    if plain(chosen) == plain(rejected):
        raise RowProblem(f"'{chosen_key}' and '{rejected_key}' are identical, so the pair teaches nothing; "
                         "fix or drop the row")
    check_order(prompt + chosen)
    check_order(prompt + rejected)
    tools = {"tools": parse_tools(rec.get(cols["tools"]), cols["tools"])} if "tools" in cols else {}
    return {"messages": plain(prompt), "chosen": plain(chosen), "rejected": plain(rejected), **tools}


def _after_prompt(prompt: list[Turn], side: list[Turn]) -> list[Turn]:
    """A chosen/rejected conversation without the prompt turns, when it repeats them first."""
    n = len(prompt)
    if len(side) > n and plain(side[:n]) == plain(prompt):
        return side[n:]
    return side


def _split_shared_prompt(rec: dict, chosen_key: str, rejected_key: str) -> tuple[list, list, list]:
    """The implicit-prompt form: the turns both conversations open with are the prompt."""
    chosen_v, rejected_v = maybe_json(rec[chosen_key]), maybe_json(rec[rejected_key])
    if not isinstance(chosen_v, list) or not isinstance(rejected_v, list):
        raise RowProblem(f"no prompt: '{chosen_key}' and '{rejected_key}' are single answers, so the row needs a "
                         "prompt: a 'prompt' field (text or turns) or a 'messages'/'conversations' field with the turns "
                         "before the answer (map your column with data.columns, e.g. {prompt: question}); or make "
                         "both full conversations that open with the same turns")
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


def unencodable(rec: dict) -> str | None:
    """Why a record holds text that is not text (an unpaired UTF-16 surrogate), or None.

    JSON can spell such a half character (``"\\ud800"``); no tokenizer can encode it. Walked
    without recursion, so a deeply nested row cannot overflow the stack here. Almost every row
    holds none, so a first walk only looks at the values; the one that finds such a character
    walks again with every value's place, to name it.
    """
    if _all_text(rec):
        return None
    stack: list = [(rec, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError as exc:
                    return (f"'{where}' holds an unpaired UTF-16 surrogate ({value[exc.start]!r} at character "
                            f"{exc.start}), which is not text: fix or remove that character")
        elif isinstance(value, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(value))
    return None


def _all_text(rec: dict) -> bool:
    """Whether no string in ``rec`` (keys aside) holds an unpaired surrogate: :func:`unencodable`'s walk
    in the same order, without the places."""
    stack: list = [rec]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return False
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return True


def need(rec: dict, key: str) -> Any:
    """The value of a field that must be present and not null."""
    value = rec.get(key)
    if value is None:
        raise RowProblem(f"missing field '{key}'" if key not in rec else f"'{key}' is null")
    return value


def _optional_text(rec: dict, key: str | None) -> str:
    """A field that may be absent, null or empty; when present it must be a string."""
    if key is None or rec.get(key) is None:
        return ""
    value = rec[key]
    if not isinstance(value, str):
        raise RowProblem(f"'{key}' must be a string, got {a_json_type(value)}")
    return value.strip() and value


def _side(rec: dict, key: str, role: str) -> list[Turn]:
    """A prompt/completion/chosen/rejected field: text (one turn of ``role``), a single message
    (``{role, content}`` or ``{from, value}``) or a list of turns."""
    value = maybe_json(need(rec, key), "[{")
    if isinstance(value, str):
        return [(key, Message(role, required_text(rec, key)))]
    if isinstance(value, dict):
        return [(key, checked_turn(value, key))]
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
    pairs = maybe_json(rec[key])
    if not isinstance(pairs, list):
        raise RowProblem(f"'{key}' must be a list of [question, answer] pairs, got {a_json_type(pairs)}")
    turns: list[Turn] = []
    for i, pair in enumerate(pairs):
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2
        if not ok or not all(isinstance(t, str) and t.strip() for t in pair):
            raise RowProblem(f"{key}[{i}] must be a [question, answer] pair of non-empty strings")
        turns += [(f"{key}[{i}][0]", Message("user", pair[0])), (f"{key}[{i}][1]", Message("assistant", pair[1]))]
    return turns


RowFn = Callable[[dict, dict], dict]
