"""Memory of continued pre-training's blocks: a raw-text file read as a stream against loaded whole.

Run: ``python benchmarks/text_stream.py [MEGABYTES]`` (default 8). Writes a ``.txt`` corpus of
about that size, then cuts it into 512-token blocks of the demo tokenizer twice: loaded whole
(``load_examples`` + ``Encoder.encode_blocks``, blocks in memory) and read as a stream
(``text_stream.split_blocks``, blocks written to a folder, as a training run does). Prints each
one's peak Python memory (tracemalloc) and CPU seconds, and the ratios to the stream's figures;
the stream's peak should not grow with the file. Also the pass the Inspect page, ``studio inspect``
and ``studio preview`` make (:func:`studio.core.text_scan.scan`: every document tokenized and
counted, the first documents kept, the first 256 blocks cut): its peak is bounded by the kept
documents (1M tokens), not by the file.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from studio.core.data import load_examples
from studio.core.encoding import EncodeOptions, Encoder
from studio.core.models import REPO_ROOT
from studio.core.text_scan import scan
from studio.core.text_stream import open_text, split_blocks
from studio.core.tokenizer import load_tokenizer

WORDS = "the model reads every document once and cuts the stream into blocks of tokens".split()


def corpus(path: Path, megabytes: float) -> None:
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as handle:
        while handle.tell() < megabytes * 1e6:
            handle.write(" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 80))) + "\n")


def measured(fn) -> tuple[float, float, object]:
    """(peak MB of Python memory, CPU seconds, result) of ``fn()``."""
    cpu = time.process_time()
    tracemalloc.start()
    try:
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak / 1e6, time.process_time() - cpu, out


def main() -> None:
    megabytes = float(sys.argv[1]) if len(sys.argv) > 1 else 8.0
    tok = load_tokenizer(str(REPO_ROOT / "resources" / "demo-model"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.txt"
        corpus(path, megabytes)
        encoder = Encoder(tok, EncodeOptions(max_length=512))
        s_peak, s_cpu, blocks = measured(lambda: split_blocks(open_text(path), tok, 512, folder=Path(tmp) / "b")[0])
        w_peak, w_cpu, _ = measured(lambda: len(encoder.encode_blocks(load_examples(path).examples).blocks))
        v_peak, v_cpu, _ = measured(lambda: scan(open_text(path), tok).blocks(tok, 512))
    size = path.stat().st_size / 1e6 if path.exists() else megabytes
    print(f"corpus: {size:.1f} MB, {blocks.summary()}")
    print(f"stream: peak {s_peak:8.2f} MB, {s_cpu:6.2f} s CPU")
    print(f"whole : peak {w_peak:8.2f} MB, {w_cpu:6.2f} s CPU")
    print(f"view  : peak {v_peak:8.2f} MB, {v_cpu:6.2f} s CPU (counts of the whole file, the first 256 blocks)")
    print(f"whole / stream: memory x{w_peak / s_peak:.1f}, CPU x{w_cpu / s_cpu:.2f}")
    print(f"whole / view  : memory x{w_peak / v_peak:.1f}, CPU x{w_cpu / v_cpu:.2f}")


if __name__ == "__main__":
    main()
