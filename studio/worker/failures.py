"""Turn any exception that ends a run into a message and a hint a person can act on."""

from __future__ import annotations

import errno

from studio.core.errors import ConfigError, StudioError
from studio.core.memory import memory_advice

OOM_HINT = ("reduce train.batch_size or data.max_length, enable train.gradient_checkpointing, "
            "or use a lighter method (lora, qlora)")


#: How allocators word "out of memory": CUDA and ROCm (HIP), Apple MPS, XPU, torch's CPU
#: allocator ("DefaultCPUAllocator: can't allocate memory", "not enough memory"), the C library.
OOM_WORDS = ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory",
             "failed to allocate memory", "insufficient memory", "std::bad_alloc")


def explain(exc: BaseException, cfg=None) -> tuple[str, str]:
    """(error, hint) for the ``finished`` event of a failed run.

    Args:
        cfg: the run's config when it was read: an out-of-memory hint then names the setting
            to lower first and by how much.
    """
    if isinstance(exc, ConfigError):
        return exc.message, exc.hint
    if isinstance(exc, StudioError):
        return exc.message, exc.hint or "see worker.log in the run folder for details"
    if _is_oom(exc):
        return f"out of memory: {_first_line(exc)}", memory_advice(cfg) if cfg is not None else OOM_HINT
    if isinstance(exc, FileNotFoundError):
        name = exc.filename or _first_line(exc)
        return (f"file not found: {name}",
                "the file was moved or deleted after the run started; restore it or fix the path in config.yaml")
    if isinstance(exc, KeyboardInterrupt):
        return ("interrupted twice: stopped without saving the current step",
                "resume from the last checkpoint with studio train --resume RUN_DIR")
    return (f"{type(exc).__name__}: {_first_line(exc)}",
            "see worker.log in the run folder for the full traceback")


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return True
    text = str(exc).lower()
    return any(words in text for words in OOM_WORDS)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
