"""Worker test fixtures: a tiny random Llama with the demo tokenizer (session-wide)."""

from __future__ import annotations

from pathlib import Path

import pytest
from worker_runs import DEMO_MODEL, build_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    if not (DEMO_MODEL / "tokenizer.json").exists():
        pytest.skip("resources/demo-model/tokenizer.json is missing (run resources/build_demo.py)")
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))

