"""The worker, with every process sending itself SIGTERM right after optimizer step N.

Run as ``accelerate launch ... tests/integration/stop_probe.py RUN_DIR N [worker args]``: the
stop arrives at the same step on every process whatever the machine's speed, and goes through
the worker's real signal handler (the one Ctrl-C and the window's Stop reach).
"""

from __future__ import annotations

import os
import signal
import sys


def _stop_after(step_number: int) -> None:
    from studio.worker.recipes.sft import SFTRecipe

    step = SFTRecipe.optimizer_step

    def stepped(self, micro, n_batches):
        step(self, micro, n_batches)
        if self.state.step == step_number:
            os.kill(os.getpid(), signal.SIGTERM)

    SFTRecipe.optimizer_step = stepped


if __name__ == "__main__":
    run_dir, stop_step, rest = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    _stop_after(stop_step)
    from studio.worker.main import main

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main([run_dir, *rest]))
