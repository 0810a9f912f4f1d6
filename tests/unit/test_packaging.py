"""The Linux installer really installs a working `studio` into a private environment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "packaging" / "linux" / "install.sh"


@pytest.mark.slow
def test_linux_installer_creates_a_working_studio(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    result = subprocess.run(
        ["bash", str(INSTALL), "--prefix", str(tmp_path / "app"), "--system-site-packages", "--cpu"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    studio = tmp_path / "app" / "venv" / "bin" / "studio"
    assert subprocess.run([str(studio), "--help"], capture_output=True, text=True).returncode == 0
    desktop = (tmp_path / "home" / ".local" / "share" / "applications" / "studio.desktop").read_text()
    assert f"Exec={studio}" in desktop


def test_installer_explains_a_bad_option():
    result = subprocess.run(["bash", str(INSTALL), "--frobnicate"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "unknown option --frobnicate" in result.stderr and "--help" in result.stderr
