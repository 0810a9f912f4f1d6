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


def apply() -> dict[str, str]:
    """Set every variable of :data:`SETTINGS` not already set; returns the values in effect."""
    return {name: os.environ.setdefault(name, value) for name, value in SETTINGS.items()}
