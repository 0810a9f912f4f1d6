"""A renderer for the part of Go's ``text/template`` language that Ollama's TEMPLATE uses.

Studio writes an Ollama TEMPLATE for every GGUF export and checks that it renders the same text as
the run's Jinja chat template. Go templates are rendered by Ollama, not by Python, so this module
renders them here: text, ``{{ pipeline }}`` output, ``if``/``else if``/``else``/``end``,
``range`` (with ``$i, $m :=``), ``$x :=`` assignments, ``.Field``/``$x.Field``/``$.Field``,
string/number literals, parentheses and the functions ``eq ne lt le gt ge and or not len slice
index print``. ``{{-`` and ``-}}`` trim the neighbouring white space as in Go. Anything else
raises :class:`GoTemplateError`.
"""

from __future__ import annotations

import re
from typing import Any

from studio.core.errors import StudioError

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)|(?P<num>-?\d+)|(?P<op>[()])|(?P<word>[^\s()]+))')


class GoTemplateError(StudioError):
    """A Go template uses syntax outside the supported subset, or fails to render."""


def render_go(source: str, data: dict) -> str:
    """The text Go's ``text/template`` writes for ``source`` with ``data`` as dot."""
    nodes, rest = _parse(_lex(source), 0, stop=())
    if rest != len(_lex(source)):
        raise GoTemplateError("unexpected {{end}} or {{else}} in the template")
    out: list[str] = []
    _run(nodes, {"$": data}, data, out)
    return "".join(out)


# -- lexing and parsing ---------------------------------------------------------------------------

def _lex(source: str) -> list[tuple[str, str]]:
    """("text", s) and ("action", body) items, with ``{{-``/``-}}`` white space already trimmed."""
    items: list[tuple[str, str]] = []
    pos, trim_next = 0, False
    for match in _ACTION.finditer(source):
        text = source[pos:match.start()]
        if trim_next:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        if text:
            items.append(("text", text))
        items.append(("action", match.group(2).strip()))
        pos, trim_next = match.end(), bool(match.group(3))
    tail = source[pos:].lstrip() if trim_next else source[pos:]
    if tail:
        items.append(("text", tail))
    return items


def _parse(items: list, i: int, stop: tuple[str, ...]) -> tuple[list, int]:
    """Nodes from ``items[i:]`` up to an action starting with one of ``stop`` (returned index points at it)."""
    nodes: list = []
    while i < len(items):
        kind, body = items[i]
        if kind == "text":
            nodes.append(("text", body))
            i += 1
            continue
        word = body.split(None, 1)[0] if body else ""
        if word in stop or (word == "else" and "else" in stop):
            return nodes, i
        if word in ("if", "range"):
            node, i = _parse_block(items, i, word, body[len(word):].strip())
            nodes.append(node)
            continue
        if word in ("end", "else"):
            raise GoTemplateError(f"{{{{{body}}}}} without a matching if or range")
        if body.startswith("/*"):
            i += 1
            continue
        nodes.append(("out", body))
        i += 1
    return nodes, i


def _parse_block(items: list, i: int, word: str, head: str) -> tuple[tuple, int]:
    """An if/else-if/else chain or a range, ending at its ``{{end}}``."""
    body, i = _parse(items, i + 1, stop=("end", "else"))
    if i >= len(items):
        raise GoTemplateError(f"{{{{{word} {head}}}}} has no {{{{end}}}}")
    other: list = []
    action = items[i][1]
    if action.startswith("else if"):
        node, i = _parse_block(items, i, "if", action[len("else if"):].strip())
        return (word, head, body, [node]), i
    if action == "else":
        other, i = _parse(items, i + 1, stop=("end",))
        if i >= len(items):
            raise GoTemplateError(f"{{{{{word} {head}}}}} has no {{{{end}}}}")
    return (word, head, body, other), i + 1


# -- running -------------------------------------------------------------------------------------

def _run(nodes: list, scope: dict, dot: Any, out: list[str]) -> None:
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "out":
            _statement(node[1], scope, dot, out)
        elif kind == "if":
            _, head, body, other = node
            _run(body if _truth(_pipeline(head, scope, dot)) else other, scope, dot, out)
        elif kind == "range":
            _range(node, scope, dot, out)


def _statement(body: str, scope: dict, dot: Any, out: list[str]) -> None:
    m = re.fullmatch(r"(\$\w+)\s*:?=\s*(.+)", body, re.S)
    if m:
        scope[m.group(1)] = _pipeline(m.group(2), scope, dot)
        return
    out.append(_text(_pipeline(body, scope, dot)))


def _range(node: tuple, scope: dict, dot: Any, out: list[str]) -> None:
    _, head, body, other = node
    m = re.fullmatch(r"(?:(\$\w+)\s*(?:,\s*(\$\w+))?\s*:=\s*)?(.+)", head, re.S)
    first, second, expr = m.group(1), m.group(2), m.group(3)
    items = _pipeline(expr, scope, dot) or []
    pairs = list(items.items()) if isinstance(items, dict) else list(enumerate(items))
    if not pairs:
        _run(other, scope, dot, out)
    for key, value in pairs:
        inner = dict(scope)
        if second:
            inner[first], inner[second] = key, value
        elif first:
            inner[first] = value
        _run(body, inner, value, out)


def _pipeline(expr: str, scope: dict, dot: Any) -> Any:
    tokens = [(k, v) for m in _TOKEN.finditer(expr) for k, v in m.groupdict().items() if v is not None]
    value, rest = _command(tokens, 0, scope, dot)
    if rest != len(tokens):
        raise GoTemplateError(f"cannot read {expr!r} (only simple function calls are supported)")
    return value


def _command(tokens: list, i: int, scope: dict, dot: Any) -> tuple[Any, int]:
    """A function call ``fn a b ...`` or a single operand, up to a closing parenthesis."""
    kind, word = tokens[i]
    if kind == "word" and word in _FUNCS:
        args, i = [], i + 1
        while i < len(tokens) and tokens[i] != ("op", ")"):
            arg, i = _operand(tokens, i, scope, dot)
            args.append(arg)
        return _FUNCS[word](*args), i
    return _operand(tokens, i, scope, dot)


def _operand(tokens: list, i: int, scope: dict, dot: Any) -> tuple[Any, int]:
    kind, word = tokens[i]
    if kind == "op" and word == "(":
        value, i = _command(tokens, i + 1, scope, dot)
        if i >= len(tokens) or tokens[i] != ("op", ")"):
            raise GoTemplateError("a ( without its )")
        return value, i + 1
    if kind == "str":
        return (word[1:-1] if word[0] == "`" else bytes(word[1:-1], "utf-8").decode("unicode_escape")), i + 1
    if kind == "num":
        return int(word), i + 1
    if word in ("true", "false"):
        return word == "true", i + 1
    return _lookup(word, scope, dot), i + 1


def _lookup(word: str, scope: dict, dot: Any) -> Any:
    head, *fields = word.split(".")
    if head.startswith("$"):
        if head not in scope:
            raise GoTemplateError(f"undefined variable {head}")
        value = scope[head]
    elif head == "":
        value = dot
    else:
        raise GoTemplateError(f"function {head!r} is not supported")
    for name in (f for f in fields if f):
        value = value.get(name) if isinstance(value, dict) else getattr(value, name, None)
    return value


def _truth(value: Any) -> bool:
    return bool(value) if value is not None else False


def _text(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _and(*args: Any) -> Any:
    for a in args:
        if not _truth(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if _truth(a):
            return a
    return args[-1]


def _slice(x: Any, *bounds: int) -> Any:
    return x[bounds[0]:bounds[1]] if len(bounds) > 1 else x[bounds[0]:] if bounds else x


_FUNCS = {"eq": lambda a, *b: any(a == x for x in b), "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
          "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "and": _and, "or": _or,
          "not": lambda a: not _truth(a), "len": len, "slice": _slice, "index": lambda x, *k: _index(x, k),
          "print": lambda *a: "".join(_text(x) for x in a)}


def _index(x: Any, keys: tuple) -> Any:
    for k in keys:
        x = x[k]
    return x
