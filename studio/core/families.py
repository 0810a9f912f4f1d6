"""Model families whose chat templates TRL knows, and the training variants TRL trains them with.

TRL 1.16 ships, for each family it supports (Qwen, Gemma, DeepSeek, GLM, gpt-oss, Phi, Cohere,
LFM, Nemotron...), the model's own template (``NAME.jinja``) and a training variant
(``NAME_training.jinja``). With assistant-only loss TRL recognises the model's template by its
exact text and renders with the variant instead, whose ``{% generation %}`` blocks mark the
trained tokens. The variants also fix what the originals get wrong for training: GLM-4 ends an
answer only with the next role's token, so the variant writes ``<|user|>`` after the last one;
Qwen3 drops the reasoning of earlier turns, so the variant keeps it (prefix-preserving).

Studio follows TRL, since that is what people compare against: a template byte-equal to one of
TRL's originals is rendered with its variant, and the loss is what the ``{% generation %}``
blocks cover. The files are read from the installed TRL package without importing it (importing
TRL imports torch, which the window never does).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

#: Probe conversation for templates that rewrite history: reasoning in an earlier answer.
REASONING_PROBE = [
    {"role": "user", "content": "q1"},
    {"role": "assistant", "content": "<think>\nr1\n</think>\n\na1"},
    {"role": "user", "content": "q2"},
    {"role": "assistant", "content": "a2"},
]


@dataclass(frozen=True)
class Variant:
    """The training variant TRL uses for one family's template.

    Attributes:
        family: TRL's name for the template (``qwen3``, ``gemma``, ``glm4moe``...).
        original: the model's template text this variant replaces.
        training: the variant's text, with ``{% generation %}`` blocks.
    """

    family: str
    original: str
    training: str


def trl_template_folder() -> Path | None:
    """The ``chat_templates`` folder of the installed TRL package, found without importing TRL."""
    spec = importlib.util.find_spec("trl")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "chat_templates"
    return folder if folder.is_dir() else None


@functools.lru_cache(maxsize=1)
def trl_variants() -> dict[str, Variant]:
    """Every training variant TRL ships, keyed by the text of the original template it replaces."""
    folder = trl_template_folder()
    out: dict[str, Variant] = {}
    for file in sorted(folder.glob("*_training.jinja")) if folder else []:
        family = file.name.removesuffix("_training.jinja")
        original = folder / f"{family}.jinja"
        if original.is_file():
            text = original.read_text(encoding="utf-8")
            out[text] = Variant(family, text, file.read_text(encoding="utf-8"))
    return out


def variant_for(source: str) -> Variant | None:
    """The training variant TRL would render ``source`` with, or None (TRL compares the exact text)."""
    return trl_variants().get(source)


def rewrites_history(template) -> bool:
    """Whether ``template`` (its own text, not the variant) drops reasoning from earlier answers:
    a conversation with reasoning in its first answer does not start with that answer as rendered alone."""
    from studio.core.errors import TemplateError
    from studio.core.templates import render

    try:
        alone = render(template.source, REASONING_PROBE[:2], False, template.specials)
        whole = render(template.source, REASONING_PROBE, False, template.specials)
    except TemplateError:
        return False
    return "r1" in alone and not whole.startswith(alone)


def renders_like_original(template, messages: list[dict]) -> bool:
    """Whether ``template``'s training variant writes ``messages`` as its own text does."""
    from studio.core.errors import TemplateError
    from studio.core.templates import render

    try:
        return render(template.source, messages, False, template.specials) == template.render(messages)
    except TemplateError:
        return False


def has_generation_markers(source: str) -> bool:
    """Whether a template marks its trained text with ``{% generation %}`` (TRL's test)."""
    import re

    return re.search(r"\{%-?\s*generation\s*-?%\}", source) is not None


def merge_system(example):
    """``example`` with its system messages written at the start of its first user turn.

    For templates that refuse a system role (Gemma 1 and 2): the text goes where Gemma 3's own
    template puts it, before the user's words and a blank line. A row without a user turn gets
    one holding the system text. Returns ``example`` itself when it has no system message.
    """
    from dataclasses import replace

    from studio.core.conversation import Message

    messages = list(example.messages)
    system = [m.content for m in messages if m.role == "system"]
    if not system:
        return example
    rest = [m for m in messages if m.role != "system"]
    text = "\n\n".join(system)
    first = next((i for i, m in enumerate(rest) if m.role == "user"), None)
    if first is None:
        rest.insert(0, Message("user", text))
    else:
        rest[first] = replace(rest[first], content=f"{text}\n\n{rest[first].content}")
    start = example.completion_start
    if start is not None:
        start -= sum(1 for m in messages[:start] if m.role == "system") - (first is None)
    return replace(example, messages=rest, completion_start=start)


def training_notes(template, options) -> list[str]:
    """How rows are trained with ``template`` and the encode ``options``, as the Inspect page states it:
    a refused system message, and where Studio deliberately differs from TRL."""
    notes = []
    if template.refuses_system:
        notes.append("this template refuses system messages: rows that have one are skipped and listed as bad rows "
                     "(data.system_message: skip)" if options.system_message == "skip" else
                     "this template refuses system messages: a row's system message is written at the start of its "
                     "first user turn, followed by a blank line (data.system_message: merge)")
    # TRL renders the model's own template for these losses (its variant only serves assistant-only
    # loss); Studio keeps the variant, so the end-of-turn token is trained whatever the loss.
    if options.loss in ("all", "completion") and template.training and not renders_like_original(template,
                                                                                                  REASONING_PROBE):
        notes.append(f"with data.loss {options.loss}, TRL renders the model's own {template.family} template, which "
                     "differs from its training variant (a trailing end-of-turn token, or earlier reasoning); Studio "
                     "keeps the variant so the model still learns to stop, so these tokens differ from TRL's")
    return notes
