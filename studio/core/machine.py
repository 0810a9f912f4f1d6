"""What this machine can train on: its GPUs and the devices ``train.device`` may name.

Read without importing torch (the window never does): the GPU facts come from
:func:`studio.core.accelerator.probe` (``nvidia-smi``, ``/proc/driver/nvidia``, ``rocminfo``), the
installed PyTorch build from its package metadata. Read once per process.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from importlib import metadata

from studio.core import accelerator


@dataclass(frozen=True)
class Machine:
    """Training devices found on this machine.

    Attributes:
        gpus: NVIDIA or AMD GPUs found (0 on a CPU-only machine or a Mac).
        devices: what ``train.device`` may name here: ``cpu`` always, ``cuda`` with an NVIDIA or
            AMD GPU, ``mps`` on Apple silicon.
        torch_version: the installed PyTorch (``2.13.0+cpu`` for a CPU-only build), or empty.
    """

    gpus: int
    devices: frozenset[str]
    torch_version: str = ""

    def gpu_text(self) -> str:
        if self.gpus:
            return f"{self.gpus} GPU{'s' if self.gpus > 1 else ''}"
        return "an Apple GPU (mps)" if "mps" in self.devices else "no GPU"


def from_info(info: accelerator.GpuInfo, torch_version: str = "", nvidia_device_files: bool = False) -> Machine:
    """The machine described by probed facts (kept apart from probing so it can be tested)."""
    nvidia = len(accelerator.nvidia_gpus(info))
    amd = 1 if accelerator.rocm_gpu(info) else 0
    devices = {"cpu"}
    # A driver seen any way at all counts: refusing a GPU that is there is worse than letting a
    # run find out at start-up.
    if nvidia or amd or info.proc_nvidia.strip() or nvidia_device_files:
        devices.add("cuda")
    if info.system == "Darwin" and info.machine == "arm64":
        devices.add("mps")
    return Machine(gpus=nvidia + amd, devices=frozenset(devices), torch_version=torch_version)


@functools.lru_cache(maxsize=1)
def this_machine() -> Machine:
    """This machine's devices (probed once per process)."""
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = ""
    return from_info(accelerator.probe(), torch_version, os.path.exists("/dev/nvidia0"))


def device_problem(device: str, machine: Machine) -> tuple[str, str] | None:
    """(message, hint) when ``train.device`` names a device this machine lacks, else None."""
    if device in ("auto", "cpu"):
        return None
    hint = "set train.device to auto (it takes the best device this machine has) or cpu"
    if device not in machine.devices:
        lacks = {"cuda": "no NVIDIA or AMD GPU (nvidia-smi and rocminfo find none)",
                 "mps": "no Apple GPU (mps is only on Macs with Apple silicon)"}.get(device, f"no {device} device")
        return f"train.device is {device}, but this machine has {lacks}", hint
    if device == "cuda" and machine.torch_version.endswith("+cpu"):
        return (f"train.device is cuda, but the installed PyTorch ({machine.torch_version}) is the CPU-only build",
                "install a CUDA build of PyTorch (Studio's installer picks one for this GPU), or set "
                "train.device to cpu")
    return None


def free_memory(device: str) -> tuple[int, str] | None:
    """(bytes free now, where) on the device a run of ``train.device`` would use; None when unknown.

    A GPU's free memory comes from ``nvidia-smi`` (the first GPU: each process of a run holds a
    copy of the model on its own), the CPU's from the memory the system says is available.
    """
    if device in ("cuda", "auto") and this_machine().gpus:
        return _nvidia_free()
    if device in ("cpu", "auto"):
        return _ram_available()
    return None


def _nvidia_free() -> tuple[int, str] | None:
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.free,name", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
        free, name = out.splitlines()[0].split(",", 1)
        return int(free) * 2**20, f"GPU 0 ({name.strip()})"
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def _ram_available() -> tuple[int, str] | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            info = dict(line.split(":", 1) for line in fh if ":" in line)
        return int(info["MemAvailable"].split()[0]) * 1024, "this machine's RAM"
    except (OSError, KeyError, ValueError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available), "this machine's RAM"
    except Exception:  # psutil missing: the check is skipped, never the report
        return None
