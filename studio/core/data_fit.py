"""Does the data fit the objective? Checked before a run folder exists.

Each objective trains on one kind of row: SFT on conversations, prompt/completion rows or raw
text; DPO, ORPO and reward modelling on preference pairs; KTO on preference pairs or on rows
labelled desirable/undesirable; GRPO on anything with a prompt. :func:`objective_problems` says,
as preflight problems with a stable code, where a config asks for something its data cannot
give (a preference objective on chat rows, KTO without labels, SFT on a preference file), and
:func:`skipped_problem` where a run would train on too small a share of its rows.

SFT on a file with desirability labels trains on the rows labelled desirable only
(:func:`sft_rows`) and says so; with none labelled desirable it refuses.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

PAIR_OBJECTIVES = ("dpo", "orpo", "reward")
#: Default for ``data.max_skipped``: the largest share of a file's rows a run may skip (bad rows, rows
#: left without a loss token, undesirable rows of SFT) before it refuses to start.
MAX_SKIPPED = 0.1
LABEL_HINT = ("map the column that marks each answer good or bad with data.columns={label: <column>} (Data page: "
              "Column for label)")


class Problem(NamedTuple):
    """One preflight problem: stable code, what is wrong, what to do, ``warning`` or ``error``."""

    code: str
    message: str
    hint: str
    severity: str = "error"


def describe(examples: list) -> str:
    """What the rows are, e.g. "120 chat rows" or "40 chat rows labelled desirable/undesirable"."""
    kinds = Counter("labelled" if ex.label is not None else ex.kind for ex in examples)
    names = {"chat": "chat rows", "completion": "prompt/completion rows", "preference": "preference pairs",
             "text": "text documents", "labelled": "rows labelled desirable/undesirable"}
    return ", ".join(f"{n} {names[k]}" for k, n in kinds.most_common())


def objective_problems(objective: str, examples: list, setting: str = "data.train") -> list[Problem]:
    """Where ``examples`` cannot train ``objective`` (an empty list when they can)."""
    if not examples:
        return []
    kinds = {ex.kind for ex in examples}
    labelled = [ex for ex in examples if ex.label is not None]
    what = describe(examples)
    code = "objective_data"
    if "text" in kinds and objective != "sft":
        return [text_objective_problem(objective, what, setting)]
    if objective in PAIR_OBJECTIVES and "preference" not in kinds:
        hint = ("these rows are unpaired answers marked good or bad: set train.objective=kto" if labelled else
                "pick a file of preference pairs (prompt, chosen, rejected), or set train.objective=sft")
        return [Problem(code, f"train.objective={objective} trains on preference pairs (chosen and rejected "
                        f"answers to one prompt), but {setting} holds {what}", hint)]
    if objective == "kto" and "preference" not in kinds:
        unlabelled = [ex.row for ex in examples if ex.label is None]
        if unlabelled:
            return [Problem(code, f"train.objective=kto needs every answer marked desirable or not, but {len(unlabelled)} "
                            f"of the {len(examples)} rows of {setting} have no label (rows {unlabelled[:10]}); it holds "
                            f"{what}", f"{LABEL_HINT}, or pick preference pairs, or set train.objective=sft")]
    if objective == "sft" and "preference" in kinds:
        return [Problem(code, f"train.objective=sft trains on conversations, but {setting} holds {what}: SFT would "
                        "learn only the chosen answers and ignore the rejected ones",
                        "set train.objective to dpo, kto, orpo or reward to learn from the pairs")]
    if objective == "sft" and labelled:
        kept, dropped = sft_rows(examples)
        if not kept:
            return [Problem(code, f"train.objective=sft on {setting}: every labelled row is marked undesirable, so "
                            "there is nothing to imitate", "set train.objective=kto to learn from these labels")]
        return [Problem("sft_labels", f"{setting} marks answers desirable or not: SFT trains on the {len(kept)} "
                        f"desirable rows and skips the {len(dropped)} undesirable ones",
                        "set train.objective=kto to learn from both", "warning")]
    return []


def text_objective_problem(objective: str, what: str, setting: str = "data.train") -> Problem:
    """Raw text (``what``: e.g. "30 text documents") under an objective other than SFT."""
    return Problem("objective_data", f"train.objective={objective} needs conversations, but {setting} holds {what}: "
                   "raw text has no prompt or answer", "continued pre-training on raw text uses train.objective=sft")


def sft_rows(examples: list) -> tuple[list, list[int]]:
    """SFT on labelled rows: (the rows to train on, the row numbers of undesirable rows skipped).
    Rows without a label are kept."""
    kept = [ex for ex in examples if ex.label is not False]
    return kept, [ex.row for ex in examples if ex.label is False]


def skipped_problem(skipped: int, total: int, limit: float, setting: str = "data.train",
                    what: str = "rows") -> Problem | None:
    """An error when more than ``limit`` of ``total`` rows would be skipped, else None.

    A run never ends "completed" after quietly training on a fraction of its file.
    """
    if not total or skipped <= limit * total:
        return None
    return Problem("skipped_rows", f"{setting}: {skipped} of {total} {what} ({skipped / total:.0%}) would be skipped, "
                   f"more than data.max_skipped={limit:g} allows", "fix the rows listed, pick the right format or "
                   "column mapping, or raise data.max_skipped if training on the rest is what you want")


def check_config(cfg) -> None:
    """Raise a DataError when a config's training data cannot train its objective, so ``studio train``
    stops before it makes a run folder (the worker would fail on the same rows moments later)."""
    from studio.core.data import load_examples
    from studio.core.errors import DataError
    from studio.core.models import resource_path
    from studio.core.text_stream import open_text

    source = open_text(resource_path(cfg.data.train), cfg.data.format, cfg.data.columns or None, cfg.data.text_split)
    if source is not None:  # raw text: not read here (it may be larger than memory); only SFT trains on it
        if cfg.train.objective != "sft":
            problem = text_objective_problem(cfg.train.objective, "raw text documents")
            raise DataError(problem.message, problem.hint)
        return
    data = load_examples(str(resource_path(cfg.data.train)), format=cfg.data.format,
                         columns=cfg.data.columns or None, text_split=cfg.data.text_split)
    for problem in objective_problems(cfg.train.objective, data.examples):
        if problem.severity == "error":
            raise DataError(problem.message, problem.hint)
