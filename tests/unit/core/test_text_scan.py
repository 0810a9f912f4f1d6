"""One pass over a raw-text file for the pages and commands that show it: counts of the whole file,
the first documents and blocks kept, progress in bytes."""

from __future__ import annotations

import pytest

from studio.core import text_scan
from studio.core.data import load_examples
from studio.core.text_scan import held_marks, scan
from studio.core.text_stream import open_text, split_blocks

from tests.unit.core.test_text_stream import documents, tok, write  # noqa: F401 - tok is a fixture


@pytest.mark.parametrize("kind", ["txt", "jsonl", "csv"])
def test_a_scan_counts_the_whole_file_and_keeps_its_first_documents(tmp_path, tok, kind, monkeypatch):
    monkeypatch.setattr(text_scan, "KEPT_TOKENS", 600)
    path = write(tmp_path, kind, documents(800))
    columns = None if kind == "txt" else {"text": "body"}
    whole = load_examples(path, columns=columns)
    seen = []
    found = scan(open_text(path, "auto", columns), tok, progress=lambda done, total: seen.append((done, total)))
    report = found.report()
    assert (report.usable_rows, report.total_rows, report.bad_total) == \
           (whole.usable_rows, whole.total_rows, len(whole.bad_rows))
    assert [e.text for e in report.examples] == [e.text for e in whole.examples[:len(report.examples)]]
    assert found.kept_tokens >= 600 and len(report.examples) < 100
    size = path.stat().st_size
    assert seen[-1] == (size, size) and all(t == size for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    for length in (16, 50):  # one pass answers every max_length
        blocks, expected = found.blocks(tok, length), split_blocks(open_text(path, "auto", columns), tok, length)[0]
        assert (blocks.documents, blocks.tokens, blocks.count, blocks.remainder) == \
               (expected.documents, expected.tokens, expected.count, expected.remainder)
        assert len(blocks.blocks) == found.kept_tokens // length < blocks.count
        assert [b.input_ids for b in blocks.blocks] == [b.input_ids for b in expected.blocks[:len(blocks.blocks)]]
        assert [b.documents for b in blocks.blocks] == [b.documents for b in expected.blocks[:len(blocks.blocks)]]


def test_a_scan_without_a_tokenizer_keeps_the_rows_asked_for(tmp_path):
    path = write(tmp_path, "txt", documents(300))
    found = scan(open_text(path), rows=25)
    assert len(found.examples) == 25 and found.documents == 300 and found.tokens is None
    assert "the first 25 of 300 documents" in found.report().summary()


def test_documents_held_out_for_evaluation_are_in_no_block_as_in_training(tmp_path, tok):
    path = write(tmp_path, "txt", documents(400))
    held = held_marks(open_text(path), 0.2, 7)
    assert sum(held) == 80
    found = scan(open_text(path), tok, held=held)
    expected, evaluation = split_blocks(open_text(path), tok, 32, 0.2, 7)
    blocks = found.blocks(tok, 32)
    assert (blocks.documents, blocks.tokens, blocks.count, blocks.remainder) == \
           (expected.documents, expected.tokens, expected.count, expected.remainder)
    assert [b.input_ids for b in blocks.blocks] == [b.input_ids for b in expected.blocks[:len(blocks.blocks)]]
    assert found.documents == 400 and found.evaluation == evaluation.documents == 80
    assert len(found.held_rows) == 80 and len(found.examples) == 400  # shown, but in no block
    assert held_marks(open_text(path), 0.0, 7) is None
