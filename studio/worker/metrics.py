"""Small measurements shared by the recipes: memory in use, perplexity."""

from __future__ import annotations

import math


def memory_mib() -> float:
    """Peak CUDA memory allocated by this process when on a GPU, else its resident set size (MiB)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    try:
        import psutil

        return round(psutil.Process().memory_info().rss / 2**20, 1)
    except ImportError:  # psutil is optional; /proc works on Linux
        return _rss_from_proc()


def _rss_from_proc() -> float:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    import os

    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def perplexity(loss: float) -> float:
    """exp(loss), capped so a diverged run still reports a finite number."""
    if loss != loss:
        return float("nan")
    return math.exp(min(loss, 50.0))
