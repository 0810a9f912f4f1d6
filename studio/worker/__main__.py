"""``python -m studio.worker RUN_DIR [--resume [CHECKPOINT]]``: train the run in RUN_DIR."""

import sys

from studio.worker.main import main

sys.exit(main())
