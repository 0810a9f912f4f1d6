"""A training worker started ahead of time, so that Train answers within seconds.

Most of the time between pressing Train and the first step of a small run is a new Python
process importing torch, transformers, PEFT and accelerate. The window therefore keeps one
worker process that has done those imports and waits (``python -m studio.worker.standby``,
see that module for the hand-over through files). Pressing Train hands the run to it; the
next run gets a fresh standby, started once no run is training (on a two-core machine a
standby importing beside a training run would slow the run down). A standby is never used
for two runs, and it exits by itself when the window is gone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

from studio.core.runs import pid_alive
from studio.gui.runner import start_detached

log = logging.getLogger("studio.gui.runner")

#: Set to ``0`` to start every run in a fresh process (no worker waits in the background).
ENV_SWITCH = "STUDIO_STANDBY"


def standby_wanted() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


class StandbyWorker:
    """One waiting worker process and its hand-over folder.

    Attributes:
        folder: where ``ready``, ``request.json`` and ``taken`` appear.
        pid: the waiting process (it becomes the run's worker after :meth:`hand_over`).
    """

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="studio-standby-"))
        self.used = False
        # Detached in its own session, like every worker: the run it takes must outlive the window.
        self.pid = start_detached(["-m", "studio.worker.standby", str(self.folder), "--parent", str(os.getpid())],
                                  self.folder, "standby.log")
        log.info("standby worker started (pid %d)", self.pid)

    def is_ready(self) -> bool:
        """Imports done, alive, and not yet given a run."""
        return not self.used and (self.folder / "ready").exists() and self.is_alive()

    def is_alive(self) -> bool:
        return pid_alive(self.pid)

    def hand_over(self, worker_args: list[str]) -> int | None:
        """Give it the run (``python -m studio.worker`` arguments); its pid, or None if it is not ready."""
        if not self.is_ready():
            return None
        tmp = self.folder / "request.tmp"
        tmp.write_text(json.dumps({"args": worker_args}), encoding="utf-8")
        os.replace(tmp, self.folder / "request.json")
        self.used = True
        log.info("run %s handed to the standby worker (pid %d)", worker_args[0], self.pid)
        return self.pid

    def close(self) -> None:
        """Send an unused standby away (the window is closing). A used one is a run: left alone,
        and its folder is the worker's to remove once it has read the request."""
        if self.used:
            return
        if self.is_alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)
