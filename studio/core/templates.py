"""Chat templates: the model's own first, else a built-in one by name.

Templates are rendered with a Jinja environment built like transformers' ``apply_chat_template``
(``ImmutableSandboxedEnvironment`` with ``trim_blocks``, ``lstrip_blocks``, ``loopcontrols``, the
``{% generation %}`` tag, ``tojson``, ``raise_exception`` and ``strftime_now``), so the text we
render is byte-identical to transformers' for the same template and messages.
"""

from __future__ import annotations

import functools
import json
import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from studio.core.builtin_templates import CHATML, LLAMA3, LLAMA3_1, MISTRAL, TRL_BUILTINS
from studio.core.errors import TemplateError
from studio.core.families import trl_template_folder


def _builtins() -> dict[str, str]:
    """Studio's own templates, then the family templates read from the installed TRL package."""
    out = {"llama3": LLAMA3, "llama3.1": LLAMA3_1, "chatml": CHATML, "mistral": MISTRAL}
    folder = trl_template_folder()
    for name, file in TRL_BUILTINS.items():
        path = folder / f"{file}.jinja" if folder else None
        if path is not None and path.is_file():
            out[name] = path.read_text(encoding="utf-8")
    return out


BUILTIN_TEMPLATES: dict[str, str] = _builtins()
BUILTIN_NAMES = ", ".join(BUILTIN_TEMPLATES)

# Marker-looking literals such as <|eot_id|> in a template, checked against the vocabulary.
_MARKER = re.compile(r"<\|[A-Za-z0-9_]+\|>")
PROBE = "STUDIO_PROBE_TEXT"
# While render_spans runs: ([characters yielded so far], generation spans found).
_TRACK: ContextVar = ContextVar("studio_generation_spans", default=None)


@dataclass
class ResolvedTemplate:
    """The chat template a run uses.

    Attributes:
        name: ``"model"`` for the model's own template, else the built-in name.
        source: the Jinja source text (the model's own or the built-in).
        warnings: sentences worth showing (template differs from the model's own, markers that
            are not single tokens in this vocabulary...).
        origin: ``"model"`` or ``"builtin"``.
        specials: the template variables transformers passes (``bos_token``, ``eos_token``...).
        family: TRL's name for ``source`` when TRL ships a training variant of it (``qwen3``...).
        training: the text rendered instead of ``source`` (TRL's training variant), or ``None``.
        notes: how this template is trained, as sentences the Inspect page shows.
        history: for a template that drops earlier turns' reasoning itself (Qwen3), whether
            Studio ``"keep"``\ s it (TRL's variant) or ``"drop"``\ s it; ``None`` for other templates.
    """

    name: str
    source: str
    warnings: list[str] = field(default_factory=list)
    origin: str = "builtin"
    specials: dict[str, str] = field(default_factory=dict)
    family: str | None = None
    training: str | None = None
    notes: list[str] = field(default_factory=list)
    history: str | None = None

    @property
    def text(self) -> str:
        """The template text that is rendered: the training variant if there is one, else ``source``."""
        return self.training or self.source

    @functools.cached_property
    def marked(self) -> bool:
        """Whether the rendered text marks its trained spans with ``{% generation %}`` blocks."""
        from studio.core.families import has_generation_markers

        return has_generation_markers(self.text)

    def render(self, messages: list, add_generation_prompt: bool = False, tools: list | None = None) -> str:
        """The text of ``messages`` (``Message`` objects or role/content dicts), with ``tools`` the tool
        definitions (JSON schemas) as transformers' ``apply_chat_template(tools=...)`` passes them."""
        return render(self.text, messages, add_generation_prompt, self.specials, tools)

    def render_spans(self, messages: list, tools: list | None = None) -> tuple[str, list[tuple[int, int]]]:
        """The text of ``messages`` and the character spans of its ``{% generation %}`` blocks."""
        return render_spans(self.text, messages, False, self.specials, tools)
    @functools.cached_property
    def refuses_system(self) -> bool:
        """Whether the template refuses a system message that the same conversation renders without (Gemma)."""
        hi, ok = {"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}
        try:
            self.render([hi, ok])
        except TemplateError:
            return False
        try:
            self.render([{"role": "system", "content": "be brief"}, hi, ok])
        except TemplateError:
            return True
        return False

    @functools.cached_property
    def pieces(self) -> TurnPieces:
        """How this template writes each turn, learned once from probe conversations."""
        return learn_pieces(self)

    @property
    def closings(self) -> dict[str, str]:
        """Per role, the text the template writes after a message's content (e.g. ``<|eot_id|>``)."""
        return self.pieces.closes


@dataclass
class TurnPieces:
    """A template seen as a sequence of turns: header + content + closing, one turn after another.

    Learned from probes; a conversation may be assembled from these pieces only after checking
    that the assembled text equals the real rendering (see ``studio.core.layout``).

    Attributes:
        heads: header text per (is first turn, role); the first one includes BOS and any
            preamble (such as Llama 3.1's date block).
        closes: closing text per role.
        strips: per role, whether the template trims the content.
        gen: the generation prompt appended by ``add_generation_prompt=True``.
        tail: text written once after the last turn when there is no generation prompt
            (Phi-3 writes EOS there), ``""`` for most templates.
    """

    heads: dict[tuple[bool, str], str] = field(default_factory=dict)
    closes: dict[str, str] = field(default_factory=dict)
    strips: dict[str, bool] = field(default_factory=dict)
    gen: str | None = None
    tail: str = ""


def _without(text: str, tail: str) -> str | None:
    """``text`` minus its conversation ``tail``, or None when it does not end with it."""
    return text[: len(text) - len(tail)] if text.endswith(tail) else None


def _probe_turn(template: ResolvedTemplate, context: list[dict], role: str, tail: str) -> tuple[str, str, bool] | None:
    """(header, closing, trims content) of a ``role`` turn written after ``context``, or None."""
    try:
        base = _without(template.render(context), tail) if context else ""
        plain = _without(template.render(context + [{"role": role, "content": PROBE}]), tail)
        spaced = _without(template.render(context + [{"role": role, "content": f" {PROBE} "}]), tail)
    except TemplateError:
        return None
    if base is None or plain is None or not plain.startswith(base) or plain[len(base):].count(PROBE) != 1:
        return None
    head, close = plain[len(base):].split(PROBE)
    if spaced == plain:
        return head, close, True
    if spaced == f"{base}{head} {PROBE} {close}":
        return head, close, False
    return None


def _probe_tail(template: ResolvedTemplate, one: list[dict], two: list[dict]) -> str:
    """Text ``render(one)`` ends with that ``render(two)`` also ends with and does not hold mid-way.

    Several cut points may fit when the tail and the next turn begin alike (``<|end_of_text|>``
    and ``<|assistant|>`` share ``<|``), so a non-empty tail must start with a special token the
    template is given (usually EOS).
    """
    try:
        short, long = template.render(one), template.render(two)
    except TemplateError:
        return ""
    if long.startswith(short):
        return ""
    starts = tuple(t for t in template.specials.values() if t)
    for cut in range(len(short), -1, -1):
        tail = short[cut:]
        if long.startswith(short[:cut]) and long.endswith(tail) and starts and tail.startswith(starts):
            return tail
    return ""


def learn_pieces(template: ResolvedTemplate) -> TurnPieces:
    """Probe ``template`` for its turn headers, closings, generation prompt and conversation tail."""
    hi, ok = {"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}
    out = TurnPieces(tail=_probe_tail(template, [hi], [hi, ok]))
    for role in ("system", "user", "assistant"):
        for first, context in ((True, []), (False, [hi, ok] if role == "user" else [hi])):
            found = _probe_turn(template, context, role, out.tail)
            if found is None or out.closes.get(role, found[1]) != found[1] \
                    or out.strips.get(role, found[2]) != found[2]:
                continue
            out.heads[(first, role)], out.closes[role], out.strips[role] = found
    try:
        base, gen = _without(template.render([hi]), out.tail) or "", template.render([hi], True)
        out.gen = gen[len(base):] if base and gen.startswith(base) else None
    except TemplateError:
        pass
    return out


def _raise(message: str) -> None:
    import jinja2.exceptions

    raise jinja2.exceptions.TemplateError(message)


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    # transformers overrides Jinja's tojson, which would HTML-escape characters.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=2)
def _environment(sandboxed: bool = True):
    """The Jinja environment, configured as transformers configures its own.

    ``sandboxed=False`` gives the same configuration without the sandbox, for the templates
    Studio ships (see :func:`compile_template`).
    """
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTag(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}`` renders its body, and notes where it lies in the text.

        As in transformers' assistant tracker: while :func:`render_spans` renders, each body's
        character span is recorded (those spans are what TRL's assistant-only loss trains).
        """

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            body = caller()
            track = _TRACK.get()
            if track is not None:  # the body starts where the text yielded so far ends
                track[1].append((track[0][0], track[0][0] + len(body)))
            return body

    kind = ImmutableSandboxedEnvironment if sandboxed else jinja2.Environment
    env = kind(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals.update(raise_exception=_raise, strftime_now=_strftime_now)
    return env


@functools.lru_cache(maxsize=32)
def compile_template(source: str):
    """A compiled template (cached by source).

    A template is a program, so it runs in Jinja's immutable sandbox (as in transformers), except
    the built-in templates and TRL's training variants, whose text comes with Studio or TRL: they
    run without the sandbox, whose check of every attribute access and call is a third of the time
    of a render. The output is the same (the sandbox only refuses unsafe operations, which these
    templates do not use).

    Raises:
        TemplateError: the source is not valid Jinja.
    """
    import jinja2

    try:
        return _environment(not _trusted(source)).from_string(source)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"the chat template is not valid Jinja: {exc}",
                            f"fix the template or choose a built-in one ({BUILTIN_NAMES})") from exc


def _trusted(source: str) -> bool:
    """Templates whose text comes with Studio or TRL (built-ins and TRL's training variants)."""
    from studio.core.families import trl_variants

    return source in BUILTIN_TEMPLATES.values() or any(v.training == source for v in trl_variants().values())


def as_dicts(messages: list) -> list[dict]:
    """Messages as the plain ``{"role", "content"}`` dicts templates expect (plus ``tool_calls`` and
    ``name`` where a message has them)."""
    return [m if isinstance(m, dict) else m.template_dict() for m in messages]


def render(source: str, messages: list, add_generation_prompt: bool = False,
           specials: dict[str, str] | None = None, tools: list | None = None) -> str:
    """Render ``messages`` with a template exactly as transformers' ``apply_chat_template(tokenize=False)``.

    Raises:
        TemplateError: the template raised or failed on these messages.
    """
    template = compile_template(source)
    try:
        # What Template.render does, minus merging the globals ChainMap again on every call
        # (a third of the time of a short conversation).
        return template.environment.concat(template.root_render_func(_context(template, source, messages,
                                                                              add_generation_prompt, specials, tools)))
    except Exception as exc:  # a template is a program: any failure is reported as the template's
        raise _render_error(exc) from exc


def render_spans(source: str, messages: list, add_generation_prompt: bool = False,
                 specials: dict[str, str] | None = None, tools: list | None = None) -> tuple[str, list[tuple[int, int]]]:
    """The text of :func:`render` and the character spans of its ``{% generation %}`` bodies.

    Raises:
        TemplateError: the template raised or failed on these messages.
    """
    template = compile_template(source)
    done, spans, parts = [0], [], []
    token = _TRACK.set((done, spans))
    try:
        for block in template.root_render_func(_context(template, source, messages, add_generation_prompt, specials,
                                                        tools)):
            parts.append(block)
            done[0] += len(block)
    except Exception as exc:
        raise _render_error(exc) from exc
    finally:
        _TRACK.reset(token)
    return "".join(parts), spans


def _context(template, source: str, messages: list, add_generation_prompt: bool, specials: dict | None,
             tools: list | None = None):
    context = {**_globals(source), **(specials or {}), "messages": as_dicts(messages), "tools": tools or None,
               "documents": None, "add_generation_prompt": add_generation_prompt}
    return template.new_context(context, shared=True)


def _render_error(exc: Exception) -> TemplateError:
    return TemplateError(f"the chat template cannot render this conversation: {exc}",
                         "check the roles and their order, or choose another template")


@functools.lru_cache(maxsize=32)
def _globals(source: str) -> dict:
    return dict(compile_template(source).globals)


def _source_warnings(source: str, tokenizer) -> list[str]:
    """Warnings read from a template's source: today's date, markers missing from the vocabulary."""
    out = []
    if "strftime_now" in source:
        out.append("the template writes today's date (strftime_now), so the same row gives different tokens "
                   "on different days; Llama 3.1's built-in template (llama3.1) uses a fixed date")
    missing = sorted({m for m in _MARKER.findall(source) if tokenizer.token_to_id(m) is None})
    if not missing:
        return out
    return out + [f"the template writes {', '.join(missing)}, which the tokenizer does not have as tokens; "
            "they will be split into pieces of text. Choose the template the model was trained with"]


def resolve_template(tokenizer, name: str = "auto", reasoning: str = "keep") -> ResolvedTemplate:
    """The template to use: the model's own for ``"auto"``, else a built-in by name.

    Args:
        tokenizer: a core :class:`~studio.core.tokenizer.Tokenizer`.
        name: ``"auto"`` or a built-in name (:data:`BUILTIN_TEMPLATES`).
        reasoning: ``"keep"`` or ``"drop"`` the reasoning of earlier turns, for a template that
            drops it itself (Qwen3): keep renders with TRL's prefix-preserving variant.

    Raises:
        TemplateError: an unknown name, or ``"auto"`` with a model that has no template.
    """
    own = tokenizer.chat_template
    specials = dict(tokenizer.specials)
    if name in ("auto", "", None):
        if not own:
            raise TemplateError(f"the model at {tokenizer.path} has no chat template",
                                f"set model.template (or --template) to a built-in one: {BUILTIN_NAMES}")
        builtin = next((n for n, s in BUILTIN_TEMPLATES.items() if s == own), "model")
        return _with_variant(ResolvedTemplate(builtin, own, _source_warnings(own, tokenizer), "model", specials),
                             reasoning)
    if name not in BUILTIN_TEMPLATES:
        raise TemplateError(f"unknown chat template {name!r}",
                            f"use auto or one of: {', '.join(BUILTIN_TEMPLATES)}")
    source = BUILTIN_TEMPLATES[name]
    warnings = _source_warnings(source, tokenizer)
    if own and own != source:
        warnings.insert(0, f"the built-in template {name!r} differs from the model's own chat template; the model "
                        "will learn a format other than the one it was built for (use 'auto' to keep its own)")
    return _with_variant(ResolvedTemplate(name, source, warnings, "builtin", specials), reasoning)


def template_from_source(tokenizer, source: str) -> ResolvedTemplate:
    """A template given as text (as the model's own would be), with TRL's training variant if it has one."""
    name = next((n for n, s in BUILTIN_TEMPLATES.items() if s == source), "model")
    return _with_variant(ResolvedTemplate(name, source, [], "model", dict(tokenizer.specials)))


def _with_variant(template: ResolvedTemplate, reasoning: str = "keep") -> ResolvedTemplate:
    """``template`` rendered with TRL's training variant of it, when TRL ships one (TRL's own rule).

    A template that drops earlier reasoning itself keeps its own text with ``reasoning="drop"``.
    """
    from studio.core.families import rewrites_history, variant_for

    variant = variant_for(template.source)
    if variant is None:
        return template
    if rewrites_history(template):
        template.history = reasoning
        if reasoning == "drop":
            template.notes.append("earlier reasoning dropped (data.reasoning_history: drop): the model's own template, "
                                  "which leaves out the <think> blocks of earlier turns as the model sees its history "
                                  "when it answers; those turns are then context only, and only the final assistant "
                                  "turn carries loss")
            return template
        template.notes.append("earlier reasoning kept (data.reasoning_history: keep): every assistant turn keeps its "
                              "<think> block and carries loss, so each trained turn looks as the model writes it "
                              "(the model's own template would drop earlier reasoning)")
    template.family, template.training = variant.family, variant.training
    template.notes.append(f"rendered with TRL's training variant of the {variant.family} template "
                          f"({variant.family}_training.jinja): its {{% generation %}} blocks are the trained tokens, "
                          "as in TRL's assistant-only loss")
    return template
