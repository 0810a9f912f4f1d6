"""Tool calls in generated text: found, compared and shown readably.

A model fine-tuned for tool calling answers with a call instead of prose, in its template's
format: Llama 3.1 writes ``{"name": ..., "parameters": {...}}`` (optionally after
``<|python_tag|>``), ChatML-style templates ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``.
:func:`parse_calls` reads every such call; :func:`calls_match` says whether two texts call the
same functions with equal arguments (the evaluation metric of the ``tool_call`` task);
:func:`describe` writes a call as ``get_weather(city="Lisbon")`` for the Chat page.
"""

from __future__ import annotations

import json
import re

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)
_PREFIXES = ("<|python_tag|>",)


def parse_calls(text: str) -> list[dict]:
    """Every tool call in ``text`` as ``{"name": str, "arguments": dict}``; [] when it holds none.

    Arguments given as JSON text are parsed; a call is recognised only when the whole answer (or
    a ``<tool_call>`` block) is a JSON object with a ``name`` and ``arguments``/``parameters``.
    """
    text = (text or "").strip()
    for prefix in _PREFIXES:
        text = text.removeprefix(prefix).strip()
    blocks = _TAGGED.findall(text) or [text]
    calls = []
    for block in blocks:
        try:
            value = json.loads(block)
        except ValueError:
            return []
        for item in value if isinstance(value, list) else [value]:
            call = _call(item)
            if call is None:
                return []
            calls.append(call)
    return calls


def _call(item) -> dict | None:
    if not isinstance(item, dict):
        return None
    item = item.get("function") if isinstance(item.get("function"), dict) else item
    name, args = item.get("name"), item.get("arguments", item.get("parameters"))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(name, str) or not isinstance(args, dict):
        return None
    return {"name": name, "arguments": args}


def calls_match(prediction: str, reference: str) -> tuple[bool, bool]:
    """(same function names in order, same names and equal JSON arguments) of two answers."""
    pred, ref = parse_calls(prediction), parse_calls(reference)
    if not ref:
        return False, False
    names = [c["name"] for c in pred] == [c["name"] for c in ref]
    return names, names and [c["arguments"] for c in pred] == [c["arguments"] for c in ref]


def describe(call: dict) -> str:
    """``name(arg=value, ...)`` with JSON values."""
    args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in call["arguments"].items())
    return f"{call['name']}({args})"
