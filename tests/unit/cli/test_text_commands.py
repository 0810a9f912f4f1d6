"""`studio inspect` and `studio preview` on a raw-text corpus: read as a stream (counts of the whole file,
only the first documents and blocks kept), never loaded whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.core import data, data_files, text_scan
from studio.core.text_stream import open_text, split_blocks
from studio.core.tokenizer import load_tokenizer

from tests.unit.cli.test_preview_inspect import DEMO, cli, json_lines
from tests.unit.core.test_text_stream import documents, write


@pytest.fixture
def corpus(tmp_path, monkeypatch) -> Path:
    """3000 documents; the commands may not load it whole (the loaders of whole files refuse), and keep
    its first 2000 tokens only (the same code keeps 1M)."""
    path = write(tmp_path, "txt", documents(3000))

    def whole(*args, **kwargs):
        raise AssertionError("the raw-text corpus was loaded whole")

    monkeypatch.setattr(data, "load_examples", whole)
    monkeypatch.setattr(data_files, "read_table", whole)
    monkeypatch.setattr(text_scan, "KEPT_TOKENS", 2000)
    return path


def test_inspect_counts_a_raw_text_file_read_as_a_stream(capsys, corpus):
    expected = split_blocks(open_text(corpus), load_tokenizer(DEMO), 64)[0]
    code, out, _ = cli(capsys, "inspect", "--model", DEMO, "--data", corpus, "--max-length", "64", "--json")
    report = json.loads(out)
    assert code == 0 and report["data"]["usable_rows"] == 3000 and report["data"]["total_rows"] == 3000
    text = report["text"]
    assert (text["documents"], text["tokens"], text["blocks"], text["remainder"]) == \
           (expected.documents, expected.tokens, expected.count, expected.remainder)
    assert sum(b["count"] for b in text["lengths"]["histogram"]) == 3000
    assert text["lengths"]["percentiles"]["max"] == max(len(d) for d in _lengths(corpus))
    code, out, _ = cli(capsys, "inspect", "--model", DEMO, "--data", corpus, "--max-length", "64")
    assert code == 0 and expected.summary() in out and "Document lengths in tokens: 3,000 documents" in out


def _lengths(path: Path) -> list:
    from studio.core.pretrain import document_ids

    return document_ids(load_tokenizer(DEMO), path.read_text(encoding="utf-8").splitlines())


def test_preview_shows_the_first_blocks_of_a_raw_text_file_read_as_a_stream(capsys, corpus):
    expected = split_blocks(open_text(corpus), load_tokenizer(DEMO), 64)[0]
    args = ("preview", "--model", DEMO, "--data", corpus, "--max-length", "64")
    code, out, _ = cli(capsys, *args, "--rows", "0:3", "--json")
    assert code == 0 and [b["input_ids"] for b in json_lines(out)] == [b.input_ids for b in expected.blocks[:3]]
    code, out, _ = cli(capsys, *args, "--rows", "0:1", "--color", "never")
    assert code == 0 and f"block 1 of {expected.count}" in out and expected.summary() in out
    code, _, err = cli(capsys, *args, "--rows=-2:")  # the last blocks are not kept
    assert code == 2 and "read as a stream" in err and "only the first 31 are kept" in err
    code, out, _ = cli(capsys, "preview", "--model", DEMO, "--data", corpus, "--rows", "1:3", "--json")
    assert code == 0 and [r["row"] for r in json_lines(out)] == [2, 3]
