"""``python -m studio.worker RUN_DIR [--resume [CHECKPOINT]]``: train the run in RUN_DIR."""

import os
import sys

# Set before torch loads its OpenMP runtime: idle OpenMP threads sleep instead of spinning.
# With spinning, a CPU run on a busy machine (the window, a browser, another run) spent four
# times the CPU of the useful work: the demo preset took 114 s instead of 29 s on two shared cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from studio.worker.main import main  # noqa: E402  (after the environment is set)

sys.exit(main())
