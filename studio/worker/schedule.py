"""A learning-rate schedule that continues without a jump when a resumed SFT run gets longer or shorter.

transformers' schedules are functions of (step, warmup, total). Resuming at step ``s`` with a new
total would evaluate the new function at ``s``: 30 -> 60 steps of a linear decay makes the
learning rate jump from nearly zero back to half its peak. Instead the schedule is re-anchored:
from the anchor step ``a`` on, the multiplier is ``m * shape((t - a) / (total - a))`` where ``m`` is
the multiplier the old schedule had at ``a`` and ``shape`` the schedule's decay (cosine or linear
from 1 to 0, constant 1). A run stopped during warmup keeps its warmup steps and decays from
their end. The anchor is kept in the checkpoint's ``state.json`` so a later resume continues it.
"""

from __future__ import annotations

import math


def shape(kind: str, progress: float) -> float:
    """The schedule's decay at ``progress`` (0 at the anchor, 1 at the end of the run)."""
    x = min(max(progress, 0.0), 1.0)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * x))
    if kind == "linear":
        return 1.0 - x
    return 1.0


def plain(kind: str, warmup: int, total: int) -> dict:
    """The description of an unchanged schedule (transformers' own, anchored at the end of warmup)."""
    warmup = 0 if kind == "constant" else warmup
    return {"kind": kind, "warmup": warmup, "total": total, "anchor": warmup, "multiplier": 1.0}


def multiplier(schedule: dict, step: int) -> float:
    """The learning-rate multiplier of ``schedule`` at ``step``."""
    anchor, total = schedule["anchor"], schedule["total"]
    if step < anchor:
        return step / max(1, schedule["warmup"])
    return schedule["multiplier"] * shape(schedule["kind"], (step - anchor) / max(1, total - anchor))


def extended(schedule: dict, step: int, total: int) -> dict:
    """``schedule`` re-anchored at ``step`` to end at ``total`` instead, with no jump."""
    if step < schedule["anchor"]:  # still warming up: keep the warmup, decay over the new length after it
        return {**schedule, "total": total}
    return {**schedule, "anchor": step, "multiplier": multiplier(schedule, step), "total": total}


def install(scheduler, optimizer, schedule: dict) -> None:
    """Make a restored LambdaLR follow ``schedule`` from its current step on."""
    def fn(step: int) -> float:
        return multiplier(schedule, step)

    scheduler.lr_lambdas = [fn] * len(optimizer.param_groups)
    rates = [base * fn(scheduler.last_epoch) for base in scheduler.base_lrs]
    for group, rate in zip(optimizer.param_groups, rates):
        group["lr"] = rate
    scheduler._last_lr = rates
