"""``python -m studio.worker RUN_DIR [--resume [CHECKPOINT]]``: train the run in RUN_DIR."""

import sys

from studio.worker import runtime_env

runtime_env.apply()  # before torch loads OpenMP and oneDNN

from studio.worker.main import main  # noqa: E402  (after the environment is set)

sys.exit(main())
