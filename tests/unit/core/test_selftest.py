"""The self-test's verdicts: a GPU that PyTorch does not see is a failure, said in words."""

from __future__ import annotations

from studio.core.selftest import Check, Report, check_torch


def test_a_gpu_machine_whose_torch_sees_no_gpu_fails_and_says_why():
    # This machine's torch is the CPU build: on a machine with an NVIDIA GPU that must fail.
    checks = {c.name: c for c in check_torch(expect_gpu=True, gpu_seen="NVIDIA GeForce RTX 4090, driver 580.95.05")}
    assert checks["PyTorch"].ok and "torch 2.13.0" in checks["PyTorch"].detail
    acc = checks["accelerator"]
    assert not acc.ok and "RTX 4090" in acc.detail and "PyTorch sees none" in acc.detail
    assert "driver" in acc.hint and "Repair" in acc.hint
    assert {c.name: c.ok for c in check_torch(expect_gpu=False, gpu_seen="")}["accelerator"]


def test_the_verdict_names_the_failed_checks():
    report = Report([Check("PyTorch", True, "torch 2.13.0"), Check("window", False, "no Qt", "repair")])
    assert not report.ok and "window failed" in report.verdict() and "NOT ready" in report.verdict()
    assert Report([Check("PyTorch", True, "")]).verdict().startswith("Studio is installed correctly")


def test_the_training_check_names_the_preset_by_its_full_path(monkeypatch):
    """Its child runs in an empty folder: a preset path relative to where the check was started
    (Studio's own folder) would not be found there."""
    from pathlib import Path

    from studio.core import selftest

    seen = []
    monkeypatch.chdir(Path(selftest.__file__).resolve().parents[2])
    monkeypatch.setattr(selftest, "_child", lambda args, timeout, env=None: (seen.append(args), (1, "", ""))[1])
    selftest.check_training()
    assert Path(seen[0][3]).is_absolute() and Path(seen[0][3]).exists()
