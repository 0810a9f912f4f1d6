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


def release_freed_memory() -> None:
    """Give the memory that glibc's ``malloc`` keeps after ``free`` back to the system (``malloc_trim``).

    A training step frees tensors of sizes that change from step to step (each batch has its
    own width); glibc keeps the freed blocks in its heaps and arenas for reuse, and with ever
    new sizes the holes pile up: a CPU run of the demo preset grew by ~5 MiB of resident memory
    a step with nothing alive in them (the live tensors stayed at 6 MiB). ``malloc_trim(0)``
    returns every free page of every arena; called after each step it bounds the growth, at
    the cost of faulting in the next step's buffers again (a few milliseconds). A no-op where
    the C library is not glibc.
    """
    libc = glibc()
    if libc is not None:
        libc.malloc_trim(0)


_LIBC: list = []


def glibc():
    """The C library when it is glibc (its ``malloc_trim`` and ``mallopt``), else ``None``; loaded once."""
    if not _LIBC:
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            _LIBC.append(libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None)
        except OSError:
            _LIBC.append(None)
    return _LIBC[0]


def perplexity(loss: float) -> float:
    """exp(loss), capped so a diverged run still reports a finite number."""
    if loss != loss:
        return float("nan")
    return math.exp(min(loss, 50.0))
