"""Raw text read as a stream: the same documents, bad rows and blocks as a file loaded whole, with
memory bounded by a chunk of documents and one block, not by the file."""

from __future__ import annotations

import csv
import json
import random
import tracemalloc
from pathlib import Path

import pytest

from studio.core.data import load_examples, split
from studio.core.pretrain import pack_blocks
from studio.core.text_stream import open_text, split_blocks
from studio.core.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "data"
DEMO = ROOT / "resources" / "demo-model"
WORDS = "the model reads every document once and cuts the stream into blocks of tokens".split()


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(DEMO)


def documents(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40))) for _ in range(n)]


def write(folder: Path, kind: str, texts: list) -> Path:
    """``texts`` as a .txt, .jsonl (with a broken line and a number for text) or .csv file."""
    path = folder / f"corpus.{kind}"
    if kind == "txt":
        path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    elif kind == "jsonl":
        lines = [json.dumps({"body": t, "source": "web"}) for t in texts]
        lines[3], lines[7] = '{"body": "broken', json.dumps({"body": 12})
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "body"])
            writer.writerows([i, t] for i, t in enumerate(texts))
    return path


def ids(blocks) -> list:
    return [(b.row, b.input_ids, b.labels, b.roles, b.documents) for b in blocks.blocks]


@pytest.mark.parametrize("kind", ["txt", "jsonl", "csv"])
@pytest.mark.parametrize("on_disk", [False, True])
def test_streamed_blocks_equal_the_blocks_of_the_file_loaded_whole(tok, tmp_path, kind, on_disk):
    path = write(tmp_path, kind, documents(120))
    columns = None if kind == "txt" else {"text": "body"}
    whole = load_examples(path, columns=columns)
    train, held = split(whole.examples, 0.25, seed=7)
    source = open_text(path, "auto", columns)
    assert source is not None
    got_train, got_eval = split_blocks(source, tok, 32, 0.25, 7, tmp_path / "blocks" if on_disk else None)
    assert ids(got_train) == ids(pack_blocks(tok, train, 32)) and len(got_train.blocks) > 50
    assert ids(got_eval) == ids(pack_blocks(tok, held, 32)) and len(got_eval.blocks) > 10
    assert (source.total_rows, source.usable) == (whole.total_rows, len(whole.examples))
    assert [(b.row, b.reason) for b in source.bad_rows] == [(b.row, b.reason) for b in whole.bad_rows]
    assert (tmp_path / "blocks" / "train" / "blocks.u32").is_file() == on_disk
    if on_disk:
        assert (tmp_path / "blocks" / "train" / "blocks.u32").stat().st_size == 4 * 32 * len(got_train.blocks)


def test_only_raw_text_files_that_can_be_read_as_a_stream_are(tmp_path):
    assert open_text(FIXTURES / "long.txt") is not None
    assert open_text(FIXTURES / "general.jsonl") is not None
    assert open_text(FIXTURES / "documents.jsonl", columns={"text": "content"}).cols == {"text": "content"}
    assert open_text(FIXTURES / "documents.jsonl") is None  # no text column: loading it whole says what to map
    assert open_text(FIXTURES / "chat.jsonl") is None  # conversations are loaded whole
    assert open_text(FIXTURES / "general.jsonl", format="messages") is None
    (tmp_path / "array.json").write_text(json.dumps([{"text": "one"}]))
    assert open_text(tmp_path / "array.json") is None  # one JSON document is parsed whole


@pytest.mark.slow
def test_a_large_text_file_is_cut_into_blocks_in_bounded_memory(tok, tmp_path):
    path = tmp_path / "corpus.txt"
    rng = random.Random(1)
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(16000):
            handle.write(" ".join(rng.choice(WORDS) for _ in range(35)) + "\n")
    size = path.stat().st_size
    assert size > 3_000_000
    tracemalloc.start()
    try:
        blocks = split_blocks(open_text(path), tok, 512, folder=tmp_path / "blocks")[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert blocks.documents == 16000 and blocks.count == blocks.tokens // 512 > 1500
    # The text alone is `size` bytes and its tokens as Python lists ~30 times more: a stream holds a
    # chunk of documents and one block.
    assert peak < size / 2, f"peak {peak / 1e6:.2f} MB of Python memory for a {size / 1e6:.1f} MB file"
    last = blocks.blocks[-1]
    assert len(last.input_ids) == 512 and last.row == blocks.count


@pytest.mark.parametrize("padding", ["longest", "packing"])
def test_document_attention_restarts_positions_at_every_document(tok, padding):
    from studio.core.encoding import IGNORE, PadOptions, collate
    from studio.core.pretrain import collate_blocks

    docs = load_examples(FIXTURES / "long.txt", text_split="paragraph").examples
    blocks = pack_blocks(tok, docs, 24).blocks[:]
    options = PadOptions(strategy=padding, pad_id=0, max_length=24)
    plain, separate = collate_blocks(blocks, options, "block"), collate_blocks(blocks, options, "document")
    assert separate["attention_mask"] is None and separate["rows"] == [b.row for b in blocks]
    for b, block in enumerate(blocks):
        starts = sorted({0, *(pos for pos, _ in block.documents)})
        want = [k - max(s for s in starts if s <= k) for k in range(24)]
        assert separate["position_ids"][b] == want and separate["input_ids"][b] == block.input_ids
        assert separate["labels"][b] == [IGNORE if k in starts else t for k, t in enumerate(block.input_ids)]
        assert plain["position_ids"][b] == list(range(24))
    assert any(len(b.documents) > 1 or (b.documents and b.documents[0][0]) for b in blocks)
    if padding == "longest":  # block attention collates the blocks as before
        assert plain == collate(blocks, options)
