"""Which device a run trains on, in which number format, and the accelerate object for it."""

from __future__ import annotations

from studio.core.config import RunConfig
from studio.core.errors import ConfigError

_MIXED = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def pick_device(requested: str) -> str:
    """``cpu``, ``cuda`` or ``mps`` for the config's ``train.device`` (``auto`` takes the best present)."""
    import torch

    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if requested == "auto":
        return "cuda" if available["cuda"] else "mps" if available["mps"] else "cpu"
    if not available.get(requested):
        raise ConfigError([("train.device", f"{requested} was requested but this machine has none; use auto or cpu")])
    return requested


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); otherwise bf16 autocast is slow."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(requested: str, device) -> str:
    """``fp32``, ``bf16`` or ``fp16``; ``auto`` picks bf16 where the hardware has it."""
    import torch

    kind = getattr(device, "type", str(device))
    if requested != "auto":
        return requested
    if kind == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if kind == "cpu":
        return "bf16" if cpu_has_bf16() else "fp32"
    return "fp32"


def make_accelerator(cfg: RunConfig):
    """An :class:`accelerate.Accelerator` for the config's device and precision.

    Gradient accumulation is done by the recipes themselves (they know the loss-token counts
    of every micro-batch), so the accelerator is created with one step per update.
    """
    import os

    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        # Accelerate keeps one global state per process and refuses a second precision. A
        # single-process run owns its process, but in-process runs (tests, a notebook) come
        # one after another with different settings, so start each from a clean state.
        AcceleratorState._reset_state(reset_partial_state=True)
    device = pick_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device)
    return Accelerator(cpu=device == "cpu", mixed_precision=_MIXED[precision])
