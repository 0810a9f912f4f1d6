"""The worker, with each process recording which dataset rows it trained on (multi-process test aid).

Run as ``accelerate launch ... tests/integration/shard_probe.py RUN_DIR OUT_DIR``. Before the
worker starts, the SFT recipe's optimizer step is wrapped so every micro-batch's row numbers
are appended to ``OUT_DIR/rank-N.txt``; training itself is unchanged.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _record_rows(out_dir: Path) -> None:
    from studio.worker.recipes.sft import SFTRecipe

    step = SFTRecipe.optimizer_step

    def recorded(self, micro, n_batches):
        rows = [self.train_rows[i].row for batch in micro for i in batch]
        with open(out_dir / f"rank-{self.acc.process_index}.txt", "a", encoding="utf-8") as fh:
            fh.write(" ".join(map(str, rows)) + "\n")
        return step(self, micro, n_batches)

    SFTRecipe.optimizer_step = recorded


if __name__ == "__main__":
    run_dir, out_dir = sys.argv[1], Path(sys.argv[2])
    _record_rows(out_dir)
    from studio.worker.main import main

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main([run_dir]))
