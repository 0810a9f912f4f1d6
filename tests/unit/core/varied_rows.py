"""Rows for tests that compare two encoding paths row by row: seeded varied rows, and every fixture's.

System prompts or none, one to four exchanges, per-turn loss switches, consecutive assistant
turns, rows without an answer, prompt/completion rows, contents with surrounding whitespace,
newlines, text that looks like special tokens, and non-Latin scripts (CJK, Arabic, Cyrillic,
Devanagari, emoji).
"""

from __future__ import annotations

import random
from pathlib import Path

from studio.core.conversation import Example, Message

ROOT = Path(__file__).resolve().parents[3]
#: every dataset the project ships or tests with
DATASETS = sorted([*(ROOT / "resources" / "datasets").iterdir(), *(ROOT / "tests" / "fixtures" / "data").iterdir()])

TEXTS = ("Pack light and book early.", "  leading and trailing spaces  ", "two\nlines\n\nand a blank one",
         "東京の電車は時間通りです。", "القطار يغادر في الصباح", "Поезд уходит утром.", "ट्रेन सुबह जाती है।",
         "Emoji 🚆🌍 and ümlauts", "literal <|eot_id|> and <|start_header_id|> in the text", "x", "42",
         "\tTabbed\t", "Tokens like  double  spaces", "!?", "", "a" * 300, " ".join(["word"] * 120))


def message(rng: random.Random, role: str) -> Message:
    text = rng.choice(TEXTS)
    if rng.random() < 0.3:
        text = f"{text} {rng.choice(TEXTS)}"
    train = rng.choice((None, None, None, True, False))
    return Message(role, text, train)


def varied_rows(count: int = 240, seed: int = 3) -> list[Example]:
    """``count`` rows, the same for the same seed."""
    rng = random.Random(seed)
    out = []
    for row in range(1, count + 1):
        turns = [message(rng, "system")] if rng.random() < 0.5 else []
        for _ in range(rng.randint(1, 4)):
            turns.append(message(rng, "user"))
            turns.append(message(rng, "assistant"))
            if rng.random() < 0.1:
                turns.append(message(rng, "assistant"))  # two answers in a row: their loss spans touch
        if rng.random() < 0.08:
            turns = turns[:1] if turns[0].role == "user" else turns[:2]  # no answer at all
        completion = None
        if rng.random() < 0.15 and turns[-1].role == "assistant":
            completion = len(turns) - 1
        out.append(Example(row, turns, completion_start=completion))
    return out


def fixture_rows() -> list[Example]:
    """The rows of every dataset file in :data:`DATASETS` that loads (the others are fixtures of bad files)."""
    from studio.core.data import load_examples
    from studio.core.errors import StudioError

    rows = []
    for path in DATASETS:
        try:
            rows += load_examples(path).examples
        except StudioError:
            continue
    assert len(rows) > 1000
    return rows
