"""The three rooms: core is pure, the worker never touches Qt, the GUI never imports torch."""

from __future__ import annotations

import json
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import studio

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["torch", "transformers", "trl", "peft", "PySide6", "pyqtgraph"]


def _loaded_after_import(modules: list[str]) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(h for h in {HEAVY!r} if h in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_core_imports_nothing_heavy_at_module_level():
    core = [f"studio.core.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "studio" / "core")])]
    assert core, "no core modules found"
    assert _loaded_after_import(core) == []


def test_cli_starts_without_heavy_imports():
    assert _loaded_after_import(["studio.cli"]) == []


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed")
    result = subprocess.run([exe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
