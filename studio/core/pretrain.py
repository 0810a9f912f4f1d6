"""Continued pre-training on raw text: documents -> one token stream -> ``max_length`` blocks.

A text row (a ``text`` column, or a document of a ``.txt`` file) is not a conversation: no chat
template is applied. Each document is tokenized on its own, preceded by BOS when the tokenizer
starts text with one, and followed by the end-of-text token (``<|end_of_text|>`` for Llama 3,
``<|endoftext|>`` for Qwen and GPT-2 vocabularies, else the tokenizer's EOS), so the model learns
where a document ends. The documents are concatenated and cut into blocks of exactly
``max_length`` tokens, loss on every token, as transformers' ``run_clm`` groups texts: a long
document spans several blocks instead of being cut, and nothing is dropped but the final
remainder shorter than a block, which is reported. Within a block, tokens attend across
documents (``data.text_attention=block``) or only within their own document (``document``:
:func:`collate_blocks` packs a block from its documents as SFT packs rows).

Documents are consumed as an iterable in chunks (:class:`BlockWriter`), so a generator reading a
large file (:mod:`studio.core.text_stream`) never holds the whole text at once, and the blocks
go to a :class:`BlockStore`: in memory for the preview, in files on disk for a training run, read
back block by block.
"""

from __future__ import annotations

import mmap
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterable

#: End-of-document tokens of common vocabularies, most specific first (an instruct model's EOS is
#: usually its end-of-turn token, which is not what ends a document).
END_OF_TEXT = ("<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>", "<|end|>")
#: Documents tokenized per batch.
CHUNK = 256
#: ``data.text_attention``: what a token of a block attends to.
ATTENTION = ("block", "document")


def block_size(max_length: int | None) -> int:
    """``data.max_length``, the tokens of every block; a ConfigError when it is not set."""
    if not max_length:
        from studio.core.errors import ConfigError

        raise ConfigError([("data.max_length", "raw text is cut into blocks of data.max_length tokens; set it")])
    return max_length


def document_end(tokenizer) -> tuple[str | None, int | None]:
    """The token written after every document: a known end-of-text token of the vocabulary, else EOS."""
    for token in END_OF_TEXT:
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return token, token_id
    return tokenizer.eos_token, tokenizer.eos_id


def document_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """Each text as ``[BOS] + tokens + [end of text]`` (BOS only when the tokenizer adds one by default)."""
    _, end = document_end(tokenizer)
    head = [tokenizer.bos_id] if tokenizer.adds_bos_by_default and tokenizer.bos_id is not None else []
    tail = [end] if end is not None else []
    return [head + ids + tail for ids in tokenizer.encode_batch(texts)]


def encode_documents(tokenizer, examples: list) -> list:
    """Text rows as whole documents (no blocks), every token carrying loss: what the general-text
    loss and the Inspect page's row view use."""
    from studio.core.encoding import Encoded

    out = []
    for ex, ids in zip(examples, document_ids(tokenizer, [ex.text for ex in examples])):
        out.append(Encoded(ex.row, ids, list(ids), _roles(tokenizer, ids), original_length=len(ids),
                           documents=[(0, ex.row)]))
    return out


def _roles(tokenizer, ids: list[int]) -> list[str]:
    _, end = document_end(tokenizer)
    bos = tokenizer.bos_id if tokenizer.adds_bos_by_default else None
    return ["bos" if t == bos and k == 0 else "eos" if t == end and k == len(ids) - 1 else "text"
            for k, t in enumerate(ids)]


class BlockStore:
    """Blocks of token ids, in memory or in files on disk, read back one block at a time.

    Token ids are kept as unsigned 32-bit integers; in a folder they are the raw file
    ``blocks.u32`` (``size`` ids per block) beside ``starts.i64`` and ``rows.i64`` (each
    document's position in the token stream and its source row). Reading maps the files, so a
    corpus larger than memory trains block by block. ``limit`` keeps only the first blocks
    (preflight counts the rest without keeping them).

    Indexing gives :class:`~studio.core.encoding.Encoded` blocks (a slice gives a list).
    """

    def __init__(self, tokenizer, size: int, folder: Path | None = None, limit: int | None = None) -> None:
        self.size, self.limit, self.folder = size, limit, folder
        self._end, self._bos = document_end(tokenizer)[1], tokenizer.bos_id if tokenizer.adds_bos_by_default else None
        self._count = 0
        self._ids, self._starts, self._rows = array("I"), array("q"), array("q")
        self._files: list = []
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self._files = [(folder / name).open("wb") for name in FILES]

    def append(self, block: list[int], starts: list[tuple[int, int]]) -> None:
        """Add one block and the (position in the block, row) of each document starting in it."""
        if self.limit is not None and self._count >= self.limit:
            return
        at = self._count * self.size
        parts = (array("I", block), array("q", [at + pos for pos, _ in starts]), array("q", [r for _, r in starts]))
        if self._files:
            for handle, part in zip(self._files, parts):
                part.tofile(handle)
        else:
            for kept, part in zip((self._ids, self._starts, self._rows), parts):
                kept.extend(part)
        self._count += 1

    def close(self) -> None:
        """Finish writing; the files are then read through memory maps."""
        for handle in self._files:
            handle.close()
        self._files = []
        if self.folder is not None and self._count:
            maps = [_map(self.folder / name) for name in FILES]
            self._ids, self._starts, self._rows = [memoryview(m).cast(code) if m is not None else array(code)
                                                   for m, code in zip(maps, "Iqq")]

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        from studio.core.encoding import Encoded

        at = k * self.size
        block = list(self._ids[at:at + self.size])
        first, stop = bisect_left(self._starts, at), bisect_left(self._starts, at + self.size)
        inside = [(self._starts[i] - at, self._rows[i]) for i in range(first, stop)]
        roles = ["bos" if t == self._bos else "eos" if t == self._end else "text" for t in block]
        return Encoded(k + 1, block, list(block), roles, original_length=self.size, documents=inside)

    def __iter__(self):
        return (self[k] for k in range(len(self)))


#: The files of a :class:`BlockStore` folder.
FILES = ("blocks.u32", "starts.i64", "rows.i64")


def _map(path: Path):
    """A read-only memory map of a file (``None`` for an empty one, which cannot be mapped)."""
    if not path.stat().st_size:
        return None
    with path.open("rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


@dataclass
class Blocks:
    """Documents cut into blocks.

    Attributes:
        blocks: the :class:`BlockStore` of blocks of exactly ``size`` tokens (a sequence of
            :class:`~studio.core.encoding.Encoded`); each block's ``row`` is its 1-based number and
            ``documents`` lists (token position, source row) of every document that starts in it.
        size: tokens per block (``data.max_length``).
        documents: documents read.
        tokens: tokens of all documents, end-of-text tokens included.
        remainder: tokens after the last full block, not trained on.
        end_token: the token written after every document.
        count: blocks cut (``len(blocks)`` unless the store kept only the first ones).
    """

    blocks: BlockStore | list = field(default_factory=list)
    size: int = 0
    documents: int = 0
    tokens: int = 0
    remainder: int = 0
    end_token: str | None = None
    count: int = 0

    def summary(self) -> str:
        return (f"{self.documents} documents, {self.tokens} tokens, {self.count} blocks of {self.size} tokens "
                f"(each document ends with {self.end_token}); the last {self.remainder} tokens do not fill a block "
                "and are not trained on")


class BlockWriter:
    """Cuts documents into blocks as they come: only the tokens of the block being filled (and
    of the chunk of documents being tokenized) are held; full blocks go to a :class:`BlockStore`.

    Call :meth:`add` with text rows in order, then :meth:`finish`.
    """

    def __init__(self, tokenizer, size: int, folder: Path | None = None, limit: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.out = Blocks(BlockStore(tokenizer, size, folder, limit), size=size, end_token=document_end(tokenizer)[0])
        self._ids: list[int] = []
        self._starts: list[tuple[int, int]] = []  # (position in ``_ids``, source row) of each document

    def add(self, examples: list) -> None:
        """Tokenize a chunk of text rows and store every block they fill."""
        out, size = self.out, self.out.size
        for ex, doc in zip(examples, document_ids(self.tokenizer, [ex.text for ex in examples])):
            self._starts.append((len(self._ids), ex.row))
            self._ids += doc
            out.documents += 1
            out.tokens += len(doc)
        at = 0
        while len(self._ids) - at >= size:
            out.blocks.append(self._ids[at:at + size], [(pos - at, row) for pos, row in self._starts
                                                         if at <= pos < at + size])
            out.count += 1
            at += size
        self._ids, self._starts = self._ids[at:], [(pos - at, row) for pos, row in self._starts if pos >= at]

    def finish(self) -> Blocks:
        self.out.remainder = len(self._ids)
        self.out.blocks.close()
        return self.out


def pack_blocks(tokenizer, examples: Iterable, size: int, folder: Path | None = None,
                limit: int | None = None) -> Blocks:
    """Concatenate text rows (each ``[BOS] + text + [end of text]``) and cut the stream into blocks.

    Args:
        tokenizer: the core tokenizer.
        examples: text :class:`~studio.core.conversation.Example` rows, in order (any iterable:
            a generator reading a file keeps memory bounded).
        size: tokens per block.
        folder: where the blocks are written (:class:`BlockStore`); ``None`` keeps them in memory.
        limit: keep only the first ``limit`` blocks (the others are counted).
    """
    writer = BlockWriter(tokenizer, size, folder, limit)
    rows = iter(examples)
    while chunk := list(islice(rows, CHUNK)):
        writer.add(chunk)
    return writer.finish()


def document_pieces(block) -> list:
    """A block cut where each document starts: the pieces :func:`collate_blocks` packs with ``document``
    attention (a block that starts inside a document begins with that document's rest)."""
    from studio.core.encoding import Encoded

    cuts = sorted({0, *(pos for pos, _ in block.documents)}) + [len(block.input_ids)]
    return [Encoded(block.row, block.input_ids[a:b], block.labels[a:b], block.roles[a:b], original_length=b - a)
            for a, b in zip(cuts, cuts[1:]) if b > a]


def collate_blocks(blocks: list, options, attention: str = "block") -> dict:
    """A batch of blocks as the trainer (and the Inspect page) collates it.

    ``block`` attention: every token attends to every earlier token of its block; the blocks are
    collated as any rows (with ``padding=packing``, each block one batch row). ``document``: each block is packed from its document pieces
    as SFT packs rows (:func:`~studio.core.padding.collate` with ``packing``, one pack per batch row):
    position ids restart at every document, no attention mask is passed so transformers separates
    the documents by their positions, and the first token of each document carries no loss (nothing
    of its own document comes before it).
    """
    from dataclasses import replace

    from studio.core.padding import collate, stack_packs

    if attention not in ATTENTION:
        from studio.core.errors import ConfigError

        raise ConfigError([("data.text_attention", f"{attention!r} is not one of {', '.join(ATTENTION)}")])
    if attention == "block" and options.strategy != "packing":
        return collate(blocks, options)
    pieces = document_pieces if attention == "document" else (lambda block: [block])
    packing = replace(options, strategy="packing")  # with padding=packing, a block is a pack of its own
    batch = stack_packs([collate(pieces(b), packing) for b in blocks], options.pad_id)
    batch["rows"] = [b.row for b in blocks]
    return batch
