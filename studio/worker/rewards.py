"""Named reward functions for GRPO, chosen in the config by name (``train.reward_functions``).

A name may carry an argument after a colon: ``length:40`` rewards answers near 40 words,
``contains_keyword:museum,metro`` rewards answers that mention those words. Each function
follows TRL's reward signature ``f(prompts, completions, **columns) -> list[float]``; GRPO
sums them (each in [0, 1]) and compares the completions sampled for the same prompt.

=================  ==========================================================================
``length[:N]``     1 at N words (default 30), falling linearly to 0 at 0 or 2N words.
``no_repeat``      share of distinct word 3-grams: 1 when nothing repeats, low for loops.
``contains_keyword[:w1,w2]``  share of the keywords present; without keywords, the content
                   words (5+ letters) of the row's reference answer.
``format``         mean of four checks: not empty, starts with a capital or digit, ends a
                   sentence, no leftover template markup (``<|...|>``, role headers).
=================  ==========================================================================
"""

from __future__ import annotations

import re
from typing import Callable

from studio.core.errors import ConfigError

RewardFn = Callable[..., list[float]]
_WORD = re.compile(r"[A-Za-z0-9']+")
_MARKUP = re.compile(r"<\|[^|>]*\|>|^(system|user|assistant)\s*:", re.IGNORECASE | re.MULTILINE)


def completion_text(completion) -> str:
    """The text of one completion: a string, or the content of conversational turns."""
    if isinstance(completion, str):
        return completion
    return "".join(turn.get("content", "") for turn in completion if isinstance(turn, dict))


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def length_reward(target: int = 30) -> RewardFn:
    """Closeness of the answer's word count to ``target``."""
    def length(prompts, completions, **_):
        return [max(0.0, 1.0 - abs(len(_words(completion_text(c))) - target) / target) for c in completions]
    length.__name__ = f"length_{target}"
    return length


def no_repeat_reward() -> RewardFn:
    """Share of distinct word 3-grams (a completion stuck in a loop scores low)."""
    def no_repeat(prompts, completions, **_):
        scores = []
        for c in completions:
            words = _words(completion_text(c))
            grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
            scores.append(len(set(grams)) / len(grams) if grams else (1.0 if words else 0.0))
        return scores
    return no_repeat


def keyword_reward(keywords: list[str] | None = None) -> RewardFn:
    """Share of keywords (or of the reference answer's content words) the answer mentions."""
    wanted = [k.lower() for k in keywords or []]

    def contains_keyword(prompts, completions, reference=None, **_):
        scores = []
        for i, c in enumerate(completions):
            words = set(_words(completion_text(c)))
            keys = wanted or _content_words(reference[i] if reference else "")
            scores.append(sum(k in words for k in keys) / len(keys) if keys else 0.0)
        return scores
    return contains_keyword


def _content_words(text: str | None) -> list[str]:
    return sorted({w for w in _words(text or "") if len(w) >= 5})


def format_reward() -> RewardFn:
    """A well-formed answer: not empty, starts properly, ends a sentence, no template markup."""
    def format(prompts, completions, **_):  # noqa: A001 - the name users write in configs
        scores = []
        for c in completions:
            text = completion_text(c).strip()
            checks = [bool(text), bool(text) and (text[0].isupper() or text[0].isdigit()),
                      text.endswith((".", "!", "?", ")", '"')), not _MARKUP.search(text)]
            scores.append(sum(checks) / len(checks))
        return scores
    return format


def _length(arg: str) -> RewardFn:
    target = int(arg) if arg else 30
    if target <= 0:
        raise ValueError(arg)
    return length_reward(target)


def _keywords(arg: str) -> RewardFn:
    return keyword_reward([k.strip() for k in arg.split(",") if k.strip()])


#: name -> builder taking the text after the colon ("" when none).
REWARDS: dict[str, Callable[[str], RewardFn]] = {
    "length": _length,
    "no_repeat": lambda arg: no_repeat_reward(),
    "contains_keyword": _keywords,
    "format": lambda arg: format_reward(),
}


def resolve(names: list[str]) -> list[RewardFn]:
    """Reward functions for config names such as ``["length:40", "no_repeat"]``.

    Raises:
        ConfigError: listing every unknown name or bad argument at once.
    """
    found, errors = [], []
    for i, spec in enumerate(names):
        name, _, arg = str(spec).partition(":")
        builder = REWARDS.get(name.strip())
        if builder is None:
            errors.append((f"train.reward_functions[{i}]", f"unknown reward {name!r}; known: {', '.join(REWARDS)}"))
            continue
        try:
            found.append(builder(arg.strip()))
        except ValueError:
            errors.append((f"train.reward_functions[{i}]", f"bad argument {arg!r} for {name} (e.g. length:40)"))
    if errors:
        raise ConfigError(errors)
    return found
