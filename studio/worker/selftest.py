"""``python -m studio.worker.selftest``: what PyTorch sees on this machine, as one JSON line.

Run as a child of the self-test (:mod:`studio.core.selftest`) so the window never imports torch.
"""

from __future__ import annotations

import json
import platform
import sys


def _device(torch) -> tuple[str, str, float]:
    """(device, name, memory in GiB) of the best accelerator, else the CPU."""
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return "cuda", props.name, props.total_memory / 2**30
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps", "Apple GPU (MPS)", 0.0
    return "cpu", _cpu_name(), 0.0


def _cpu_name() -> str:
    """The processor's model name (Linux reports it only in /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _bf16(torch, device: str) -> str:
    """'native', 'emulated (slow)' or 'unsupported: ...' after a real bf16 matrix product."""
    from studio.worker.device import cpu_has_bf16

    try:
        x = torch.ones(8, 8, dtype=torch.bfloat16, device=device)
        assert float((x @ x)[0, 0]) == 8.0
    except Exception as exc:  # the point is to report any failure in words
        return f"unsupported: {exc}"
    if device == "cuda":
        return "native" if torch.cuda.is_bf16_supported() else "emulated (slow)"
    if device == "cpu":
        return "native" if cpu_has_bf16() else "emulated (slow)"
    return "native"


def facts() -> dict:
    import torch

    device, name, memory = _device(torch)
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "hip": getattr(torch.version, "hip", None),
            "device": device, "name": name, "memory_gib": round(memory, 1), "bf16": _bf16(torch, device),
            "python": sys.version.split()[0]}


if __name__ == "__main__":
    print(json.dumps(facts()), flush=True)
