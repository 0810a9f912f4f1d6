"""Which PyTorch build fits this machine: the GPU, its driver, and the wheel index to install from.

Pure standard library (the installer imports this module before any environment exists).
:func:`probe` reads the machine (``nvidia-smi``, ``/proc/driver/nvidia/version``, ``rocminfo``);
:func:`choose_torch` turns what it read into a :class:`TorchChoice`, so the table can be tested
from recorded outputs. The CUDA families below are the ones PyTorch publishes for the torch
release Studio pins (``TORCH_VERSION``); update them together.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import asdict, dataclass, field

#: The torch release Studio installs; the installer asks for exactly this version.
TORCH_VERSION = "2.13.0"
#: Where PyTorch publishes its builds; ``STUDIO_TORCH_INDEX_URL`` replaces it (mirrors, proxies).
PYTORCH_INDEX = "https://download.pytorch.org/whl"

#: CUDA wheel families, newest first: (family, minimum Linux driver, minimum Windows driver).
#: The minimum is the driver that shipped with that CUDA release, so every feature works.
CUDA_FAMILIES = (
    ("cu130", (580, 65, 6), (580, 88)),
    ("cu128", (570, 26), (570, 65)),
    ("cu126", (560, 28, 3), (560, 76)),
)
#: CUDA 12 builds also run on any driver from 525.60.13 on (NVIDIA's minor-version compatibility),
#: so drivers between this and the oldest family's own minimum take the oldest family.
CUDA12_FLOOR = {"Linux": (525, 60, 13), "Windows": (528, 33)}
#: cu128 and newer builds dropped GPUs older than compute capability 7.0 (Pascal, Maxwell).
CUDA_NEWEST_FOR_OLD_GPUS = "cu126"
#: ROCm wheel families, newest first: (family, minimum ROCm release found on the machine).
ROCM_FAMILIES = (("rocm7.1", (7, 1)), ("rocm7.0", (7, 0)), ("rocm6.4", (6, 4)))

BACKENDS = ("cpu", "default", *(f for f, *_ in CUDA_FAMILIES), *(f for f, _ in ROCM_FAMILIES))


@dataclass
class GpuInfo:
    """What the machine told us about its GPUs (every field may be empty)."""

    system: str = "Linux"                   # platform.system(): Linux, Windows, Darwin
    machine: str = "x86_64"                 # platform.machine()
    nvidia_smi: str = ""                    # `nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader`
    proc_nvidia: str = ""                   # /proc/driver/nvidia/version
    rocminfo: str = ""                      # `rocminfo`
    rocm_version: str = ""                  # /opt/rocm/.info/version


@dataclass
class TorchChoice:
    """The torch build to install and why, in words a person can read."""

    backend: str                            # cpu, default (the registry's own wheels), cu128, rocm7.0, ...
    index_url: str | None                   # None: the ordinary package index
    reason: str
    gpu: str = ""                           # e.g. "NVIDIA GeForce RTX 4090, 24564 MiB, driver 550.54.15"
    warning: str = ""                       # e.g. a driver too old for any CUDA build
    overridden: bool = False
    expects_gpu: bool = False               # torch must see a GPU after install (else the self-test says so)
    extra: dict = field(default_factory=dict)

    @property
    def requirement(self) -> str:
        """``torch==2.13.0+cu128``: exact, local label included, so a mismatched build is replaced."""
        return f"torch=={TORCH_VERSION}{self.local_label}"

    @property
    def local_label(self) -> str:
        return "" if self.backend == "default" else f"+{self.backend}"

    def to_dict(self) -> dict:
        return asdict(self)


def parse_version(text: str) -> tuple[int, ...] | None:
    """``"550.54.15"`` -> ``(550, 54, 15)``; None when there is no version in the text."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def nvidia_driver(info: GpuInfo) -> tuple[int, ...] | None:
    """The NVIDIA driver version from nvidia-smi's CSV line, else from /proc/driver/nvidia/version."""
    for line in info.nvidia_smi.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parse_version(parts[2]):
            return parse_version(parts[2])
    m = re.search(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)", info.proc_nvidia)
    return parse_version(m.group(1)) if m else None


def nvidia_gpus(info: GpuInfo) -> list[dict]:
    """One dict per GPU line of nvidia-smi: name, memory, compute capability (when reported)."""
    gpus = []
    for line in info.nvidia_smi.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parse_version(parts[2]):
            cap = parse_version(parts[3]) if len(parts) > 3 else None
            gpus.append({"name": parts[0], "memory": parts[1], "compute_cap": cap})
    return gpus


def rocm_gpu(info: GpuInfo) -> str:
    """The first GPU agent's marketing name in rocminfo's output ('' when there is none)."""
    for block in info.rocminfo.split("*******"):
        if re.search(r"Device Type:\s+GPU", block):
            m = re.search(r"Marketing Name:\s+(.+)", block)
            return m.group(1).strip() if m else "AMD GPU"
    return ""


def _fmt(version: tuple[int, ...]) -> str:
    """``(470, 256, 2)`` -> ``470.256.02``, as NVIDIA writes its driver versions."""
    return ".".join([str(v) for v in version[:2]] + [f"{v:02d}" for v in version[2:]])


def _choose_cuda(info: GpuInfo, driver: tuple[int, ...]) -> TorchChoice:
    gpus = nvidia_gpus(info)
    desc = (f"{gpus[0]['name']}, {gpus[0]['memory']}, " if gpus else "NVIDIA GPU, ") + f"driver {_fmt(driver)}"
    column = 2 if info.system == "Windows" else 1
    family = next((row[0] for row in CUDA_FAMILIES if driver >= row[column]), None)
    floor = CUDA12_FLOOR.get(info.system, CUDA12_FLOOR["Linux"])
    if family is None and driver >= floor:
        family = CUDA_FAMILIES[-1][0]
    if family is None:
        return TorchChoice(
            "cpu", None, f"NVIDIA driver {_fmt(driver)} is too old for PyTorch {TORCH_VERSION}'s CUDA builds; "
            "installing the CPU build", gpu=desc,
            warning=f"Your NVIDIA driver {_fmt(driver)} is older than {_fmt(floor)}, the oldest that PyTorch "
                    f"{TORCH_VERSION} supports. Update it (Linux: your distribution's driver manager or "
                    "'sudo ubuntu-drivers install'; Windows: GeForce Experience or nvidia.com/drivers), "
                    "then choose Repair to switch to the GPU build. Until then Studio trains on the CPU.")
    old_gpu = [g for g in gpus if g["compute_cap"] and g["compute_cap"] < (7, 0)]
    names = [row[0] for row in CUDA_FAMILIES]
    if old_gpu and names.index(family) < names.index(CUDA_NEWEST_FOR_OLD_GPUS):
        family = CUDA_NEWEST_FOR_OLD_GPUS
        why = f"{old_gpu[0]['name']} (compute capability {_fmt(old_gpu[0]['compute_cap'])}) needs {family}"
    else:
        why = f"the newest CUDA build driver {_fmt(driver)} supports"
    return TorchChoice(family, f"{PYTORCH_INDEX}/{family}", f"NVIDIA GPU found: {why}", gpu=desc, expects_gpu=True)


def _choose_rocm(info: GpuInfo, name: str) -> TorchChoice:
    version = parse_version(info.rocm_version) or ()
    family = next((f for f, need in ROCM_FAMILIES if version >= need), None)
    if family is None:
        oldest = _fmt(ROCM_FAMILIES[-1][1])
        found = _fmt(version) if version else "an unknown ROCm release"
        return TorchChoice("cpu", None, f"AMD GPU found but {found} is older than ROCm {oldest}; installing the CPU build",
                           gpu=name, warning=f"Install ROCm {oldest} or newer (AMD's amdgpu-install), then choose "
                                             "Repair to switch to the GPU build.")
    return TorchChoice(family, f"{PYTORCH_INDEX}/{family}", f"AMD GPU found with ROCm {_fmt(version)}",
                       gpu=name, expects_gpu=True)


def choose_torch(info: GpuInfo, env: dict | None = None) -> TorchChoice:
    """The torch build for this machine; ``STUDIO_TORCH_BACKEND`` / ``STUDIO_TORCH_INDEX_URL`` override it."""
    env = os.environ if env is None else env
    choice = _detected_choice(info)
    backend = env.get("STUDIO_TORCH_BACKEND", "").strip().lower()
    if backend and backend != "auto":
        if backend not in BACKENDS:
            raise ValueError(f"STUDIO_TORCH_BACKEND={backend} is not one of: auto, {', '.join(BACKENDS)}")
        index = None if backend == "default" else f"{PYTORCH_INDEX}/{backend}"
        choice = TorchChoice(backend, index, f"chosen by STUDIO_TORCH_BACKEND={backend} (detected: {choice.backend})",
                             gpu=choice.gpu, overridden=True, expects_gpu=backend.startswith(("cu", "rocm")))
    url = env.get("STUDIO_TORCH_INDEX_URL", "").strip()
    if url:
        choice.index_url, choice.overridden = url, True
        choice.reason += f"; wheels from STUDIO_TORCH_INDEX_URL={url}"
    return choice


def _detected_choice(info: GpuInfo) -> TorchChoice:
    if info.system == "Darwin":
        if info.machine == "arm64":
            return TorchChoice("default", None, "Apple silicon Mac: the standard build, which trains on the GPU through MPS",
                               gpu="Apple GPU (MPS)")
        return TorchChoice("default", None, "Intel Mac: the standard build (CPU only)",
                           warning=f"PyTorch {TORCH_VERSION} publishes no builds for Intel Macs; the install will fail "
                                   "there. Studio needs an Apple-silicon Mac.")
    driver = nvidia_driver(info)
    if driver:
        return _choose_cuda(info, driver)
    name = rocm_gpu(info) if info.system == "Linux" else ""
    if name:
        return _choose_rocm(info, name)
    return TorchChoice("cpu", None, "no NVIDIA or AMD GPU found: the CPU build")


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def _nvidia_smi() -> str:
    """nvidia-smi's GPU lines; drivers before 510 do not know ``compute_cap``, so ask again without it."""
    fields = "name,memory.total,driver_version"
    out = _run(["nvidia-smi", f"--query-gpu={fields},compute_cap", "--format=csv,noheader"])
    if not nvidia_gpus(GpuInfo(nvidia_smi=out)):
        out = _run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"])
    return out


def probe() -> GpuInfo:
    """Read this machine's GPU facts (each command or file may be missing)."""
    import platform

    return GpuInfo(
        system=platform.system(), machine=platform.machine(),
        nvidia_smi=_nvidia_smi(),
        proc_nvidia=_read("/proc/driver/nvidia/version"),
        rocminfo=_run(["rocminfo"]) if platform.system() == "Linux" else "",
        rocm_version=_read("/opt/rocm/.info/version"),
    )
