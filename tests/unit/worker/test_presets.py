"""Every shipped preset loads and validates; there is one per fine-tuning method."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.core import config as configmod
from studio.core.config import METHODS

PRESETS = Path(__file__).resolve().parents[3] / "resources" / "presets"


@pytest.mark.parametrize("path", sorted(PRESETS.glob("*.yaml")), ids=lambda p: p.name)
def test_preset_loads_and_validates(path):
    cfg = configmod.load(path)
    assert configmod.validate(cfg) == []
    assert (PRESETS.parent.parent / cfg.data.train).exists(), f"{path.name}: data.train {cfg.data.train} is missing"


def test_one_preset_per_method_and_a_demo():
    names = {p.stem for p in PRESETS.glob("*.yaml")}
    assert set(METHODS) | {"demo"} <= names
    for method in METHODS:
        assert configmod.load(PRESETS / f"{method}.yaml").method.name == method
    demo = configmod.load(PRESETS / "demo.yaml")
    assert (demo.method.name, demo.train.objective, demo.model.path) == ("lora", "sft", "resources/demo-model")
