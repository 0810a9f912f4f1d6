"""Exporting a raw-text run takes a few documents of the corpus, read as a stream, never the whole corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.core import config as config_mod
from studio.core import data, data_files
from studio.worker import export, gguf_check
from studio.worker.context import RunContext
from studio.worker.events import Events

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "resources" / "demo-model"


@pytest.fixture
def text_run(tmp_path, monkeypatch) -> RunContext:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"Document {n} of a corpus too large to load.\n" for n in range(5000)), encoding="utf-8")

    def whole(*args, **kwargs):
        raise AssertionError("the raw-text corpus was loaded whole")

    monkeypatch.setattr(data, "load_examples", whole)
    monkeypatch.setattr(data_files, "read_table", whole)
    cfg = config_mod.from_dict({"model": {"path": str(DEMO)}, "data": {"train": str(corpus), "max_length": 64}})
    return RunContext(cfg, tmp_path / "run", Events(None, stdout=None))


def test_the_gguf_check_renders_the_first_documents_of_a_raw_text_run(text_run):
    rows = text_run.sample_examples(3)
    assert [r.text for r in rows] == [f"Document {n} of a corpus too large to load." for n in range(3)]
    conversations = gguf_check.sample_conversations(rows, 3)
    assert conversations[1] == [{"role": "user", "content": "Document 1 of a corpus too large to load."}]


def test_the_modelfile_of_a_raw_text_run_is_written_without_reading_the_corpus(text_run, tmp_path):
    files = export._write_ollama_files(text_run, tmp_path, "model.gguf")
    text = Path(files["modelfile"]).read_text(encoding="utf-8")
    assert text.startswith("FROM ./model.gguf") and "SYSTEM" not in text
