"""Continued pre-training on raw text: documents -> one token stream -> ``max_length`` blocks.

A text row (a ``text`` column, or a document of a ``.txt`` file) is not a conversation: no chat
template is applied. Each document is tokenized on its own, preceded by BOS when the tokenizer
starts text with one, and followed by the end-of-text token (``<|end_of_text|>`` for Llama 3,
``<|endoftext|>`` for Qwen and GPT-2 vocabularies, else the tokenizer's EOS), so the model learns
where a document ends. The documents are concatenated and cut into blocks of exactly
``max_length`` tokens, loss on every token, as transformers' ``run_clm`` groups texts: a long
document spans several blocks instead of being cut, and nothing is dropped but the final
remainder shorter than a block, which is reported.

Documents are consumed as an iterable in chunks, so a generator reading a large file line by
line never holds the whole text at once; only the blocks (token ids) are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import Iterable

#: End-of-document tokens of common vocabularies, most specific first (an instruct model's EOS is
#: usually its end-of-turn token, which is not what ends a document).
END_OF_TEXT = ("<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>", "<|end|>")
#: Documents tokenized per batch.
CHUNK = 256


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


@dataclass
class Blocks:
    """Documents cut into blocks.

    Attributes:
        blocks: :class:`~studio.core.encoding.Encoded` rows of exactly ``size`` tokens; each
            block's ``row`` is its 1-based number and ``documents`` lists (token position, source
            row) of every document that starts in it.
        size: tokens per block (``data.max_length``).
        documents: documents read.
        tokens: tokens of all documents, end-of-text tokens included.
        remainder: tokens after the last full block, not trained on.
        end_token: the token written after every document.
    """

    blocks: list = field(default_factory=list)
    size: int = 0
    documents: int = 0
    tokens: int = 0
    remainder: int = 0
    end_token: str | None = None

    def summary(self) -> str:
        return (f"{self.documents} documents, {self.tokens} tokens, {len(self.blocks)} blocks of {self.size} tokens "
                f"(each document ends with {self.end_token}); the last {self.remainder} tokens do not fill a block "
                "and are not trained on")


def pack_blocks(tokenizer, examples: Iterable, size: int) -> Blocks:
    """Concatenate text rows (each ``[BOS] + text + [end of text]``) and cut the stream into blocks.

    Args:
        tokenizer: the core tokenizer.
        examples: text :class:`~studio.core.conversation.Example` rows, in order (any iterable).
        size: tokens per block.
    """
    from studio.core.encoding import Encoded

    out = Blocks(size=size, end_token=document_end(tokenizer)[0])
    ids: list[int] = []
    starts: list[tuple[int, int]] = []  # (position in ``ids``, source row) of each document
    rows = iter(examples)
    while chunk := list(islice(rows, CHUNK)):
        for ex, doc in zip(chunk, document_ids(tokenizer, [ex.text for ex in chunk])):
            starts.append((len(ids), ex.row))
            ids += doc
            out.documents += 1
            out.tokens += len(doc)
        at = 0
        while len(ids) - at >= size:
            block = ids[at:at + size]
            inside = [(pos - at, row) for pos, row in starts if at <= pos < at + size]
            out.blocks.append(Encoded(len(out.blocks) + 1, block, list(block), _block_roles(tokenizer, block),
                                      original_length=size, documents=inside))
            at += size
        ids, starts = ids[at:], [(pos - at, row) for pos, row in starts if pos >= at]
    out.remainder = len(ids)
    return out


def _block_roles(tokenizer, block: list[int]) -> list[str]:
    _, end = document_end(tokenizer)
    bos = tokenizer.bos_id if tokenizer.adds_bos_by_default else None
    return ["bos" if t == bos else "eos" if t == end else "text" for t in block]
