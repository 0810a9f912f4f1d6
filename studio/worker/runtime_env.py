"""Settings of the native libraries under torch, made before torch loads them.

Each is set only where the person has not set it (``os.environ.setdefault``), so an exported
variable still wins. The worker (``python -m studio.worker``) and the standby worker apply them
first thing; they must be in the environment before torch starts its OpenMP runtime and before
oneDNN builds its first kernel.
"""

from __future__ import annotations

import os

# How many compiled matrix-product kernels oneDNN (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``) and
# PyTorch's ideep layer above it (``LRU_CACHE_CAPACITY``) keep. Under bf16 autocast every CPU
# matrix product goes through them, and each cache keeps an entry per shape (with the weights
# reordered for that kernel), 1,024 of each by default. A packed batch has a new token count
# almost every step, so a run fills both caches slowly and its memory grows until they are
# full: the demo preset grew by 120 MiB between steps 200 and 2,000, and a synthetic mix of
# shapes by 570 MiB, all of it in these entries (malloc's bytes in use; fp32 or both caches
# off: flat). One step meets about sixty shapes (each linear layer and LoRA factor, forward and
# backward); 128 entries keep a step's own reuse and bound the rest. 0 for ideep is not usable
# (it crashes); 1 is its smallest.
KERNEL_CACHE_ENTRIES = "128"

SETTINGS = {
    # Idle OpenMP threads sleep instead of spinning. With spinning, a CPU run on a busy machine
    # (the window, a browser, another run) spent four times the CPU of the useful work: the
    # demo preset took 114 s instead of 29 s on two shared cores.
    "OMP_WAIT_POLICY": "PASSIVE",
    "ONEDNN_PRIMITIVE_CACHE_CAPACITY": KERNEL_CACHE_ENTRIES,
    "LRU_CACHE_CAPACITY": KERNEL_CACHE_ENTRIES,
}


# Blocks of at least this many bytes get their own mapping from glibc's malloc, returned to the
# system when freed. glibc starts at 128 KiB but raises the threshold each time such a block is
# freed (up to 32 MiB), so after the first step nearly every tensor of a step lives in its heaps,
# and with sizes that change from step to step the freed holes spread them: the demo preset's
# resident set at the end of a step was 820-910 MiB, 570 MiB of it in use. Fixed at 4 MiB (which
# also ends the raising: activations, logits chunks and their gradients are mapped), the same
# steps end at about 775 MiB, at the same tokens per CPU-second; at 1 MiB they end lower still
# (630-690 MiB), but the page faults of mapping every block cost a sixth of the speed.
# ``STUDIO_MMAP_THRESHOLD`` sets another size (0 leaves glibc's own behaviour); glibc's
# ``MALLOC_MMAP_THRESHOLD_`` wins.
MMAP_THRESHOLD = 4 << 20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h


def apply() -> dict[str, str]:
    """Set every variable of :data:`SETTINGS` not already set, and malloc's mapping threshold;
    returns the variables in effect."""
    fix_mmap_threshold()
    return {name: os.environ.setdefault(name, value) for name, value in SETTINGS.items()}


def fix_mmap_threshold() -> int:
    """Fix glibc malloc's mapping threshold (see :data:`MMAP_THRESHOLD`); returns the bytes set,
    0 where it is left alone (not glibc, set by the person, or switched off)."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return 0
    try:
        size = int(os.environ.get("STUDIO_MMAP_THRESHOLD", MMAP_THRESHOLD))
    except ValueError:
        size = MMAP_THRESHOLD
    if size <= 0:
        return 0
    from studio.worker.metrics import glibc

    libc = glibc()
    return size if libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, size) == 1 else 0
