"""The GPU -> PyTorch wheel table, from recorded nvidia-smi, /proc, rocminfo outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.core.accelerator import TORCH_VERSION, GpuInfo, choose_torch, nvidia_driver, probe

REC = Path(__file__).resolve().parents[2] / "fixtures" / "gpu"


def info(smi: str = "", proc: str = "", rocm: str = "", rocm_version: str = "", **kw) -> GpuInfo:
    read = lambda name: (REC / name).read_text() if name else ""  # noqa: E731
    return GpuInfo(nvidia_smi=read(smi), proc_nvidia=read(proc), rocminfo=read(rocm),
                   rocm_version=read(rocm_version), **kw)


@pytest.mark.parametrize(("recorded", "backend"), [
    (info("smi-580.csv"), "cu130"),
    (info("smi-570.csv"), "cu128"),
    (info("smi-550.csv"), "cu126"),     # below cu126's own 560 but CUDA 12 minor-version compatible
    (info("smi-535.csv"), "cu126"),
    (info("smi-525.csv"), "cu126"),
    (info(proc="proc-580.txt"), "cu130"),   # no nvidia-smi (container without the tools): /proc
    (info(proc="proc-550.txt"), "cu126"),
    (info("smi-580-pascal.csv"), "cu126"),  # cu128+ dropped compute capability < 7.0
])
def test_nvidia_driver_picks_the_newest_cuda_family_it_supports(recorded, backend):
    choice = choose_torch(recorded, env={})
    assert choice.backend == backend
    assert choice.index_url == f"https://download.pytorch.org/whl/{backend}"
    assert choice.requirement == f"torch=={TORCH_VERSION}+{backend}"
    assert choice.expects_gpu and not choice.warning


def test_the_gpu_is_named_with_its_memory_and_driver():
    assert choose_torch(info("smi-550.csv"), env={}).gpu == "NVIDIA A100-SXM4-80GB, 81920 MiB, driver 550.54.15"


@pytest.mark.parametrize("recorded", [info("smi-470.csv"), info(proc="proc-470.txt")])
def test_a_driver_too_old_says_the_minimum_and_how_to_update(recorded):
    choice = choose_torch(recorded, env={})
    assert choice.backend == "cpu" and not choice.expects_gpu
    assert "470.256.02" in choice.warning and "525.60.13" in choice.warning
    assert "Update it" in choice.warning and "Repair" in choice.warning


def test_windows_uses_the_windows_driver_minimums():
    # 570.26 is enough on Linux for cu128, but Windows needs 570.65.
    smi = "NVIDIA GeForce RTX 5080, 16303 MiB, 570.50, 12.0\n"
    assert choose_torch(GpuInfo(system="Linux", nvidia_smi=smi), env={}).backend == "cu128"
    assert choose_torch(GpuInfo(system="Windows", nvidia_smi=smi), env={}).backend == "cu126"


def test_rocm_on_linux_where_rocminfo_finds_a_gpu():
    choice = choose_torch(info(rocm="rocminfo.txt", rocm_version="rocm-version.txt"), env={})
    assert (choice.backend, choice.gpu, choice.expects_gpu) == ("rocm6.4", "AMD Radeon RX 7900 XTX", True)
    old = choose_torch(info(rocm="rocminfo.txt", rocm_version="rocm-version-old.txt"), env={})
    assert old.backend == "cpu" and "ROCm 6.4 or newer" in old.warning
    assert choose_torch(info(rocm="rocminfo-cpu-only.txt"), env={}).backend == "cpu"


def test_macos_takes_the_standard_wheels():
    arm = choose_torch(GpuInfo(system="Darwin", machine="arm64"), env={})
    assert (arm.backend, arm.index_url, arm.requirement) == ("default", None, f"torch=={TORCH_VERSION}")
    assert "MPS" in arm.reason
    assert "Intel Macs" in choose_torch(GpuInfo(system="Darwin", machine="x86_64"), env={}).warning


def test_no_gpu_takes_the_cpu_build():
    choice = choose_torch(GpuInfo(), env={})
    assert (choice.backend, choice.requirement, choice.expects_gpu) == ("cpu", f"torch=={TORCH_VERSION}+cpu", False)


def test_the_choice_can_be_overridden_with_a_backend_and_an_index_url():
    env = {"STUDIO_TORCH_BACKEND": "cu128", "STUDIO_TORCH_INDEX_URL": "https://mirror.example/torch/cu128"}
    choice = choose_torch(info("smi-580.csv"), env=env)
    assert (choice.backend, choice.index_url, choice.overridden) == ("cu128", env["STUDIO_TORCH_INDEX_URL"], True)
    assert "detected: cu130" in choice.reason
    with pytest.raises(ValueError, match="STUDIO_TORCH_BACKEND=cu999"):
        choose_torch(GpuInfo(), env={"STUDIO_TORCH_BACKEND": "cu999"})


def test_nvidia_smi_lines_that_are_errors_fall_back_to_proc():
    bad = GpuInfo(nvidia_smi='Field "compute_cap" is not a valid field to query.\n',
                  proc_nvidia=(REC / "proc-470.txt").read_text())
    assert nvidia_driver(bad) == (470, 256, 2)


def test_probe_on_this_machine_returns_something_choose_torch_accepts():
    assert choose_torch(probe(), env={}).backend in {"cpu", "default", "cu126", "cu128", "cu130",
                                                     "rocm6.4", "rocm7.0", "rocm7.1"}
