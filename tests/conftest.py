"""Test-wide settings: Qt offscreen, an isolated Studio home, GUI tests auto-marked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "resources" / "demo-model"
DATASETS = ROOT / "resources" / "datasets"


@pytest.fixture(autouse=True)
def studio_home(tmp_path_factory, monkeypatch):
    """Each test gets its own run registry and user data folder."""
    home = tmp_path_factory.mktemp("studio-home")
    monkeypatch.setenv("STUDIO_HOME", str(home))
    return home


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/gui" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.gui)
