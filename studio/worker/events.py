"""The worker's side of the event protocol: write events, fan them out to metric loggers.

Only the main process of a run writes events (a multi-process run would otherwise print
every step once per process); other processes get an :class:`Events` whose ``emit`` is a no-op.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import IO, Any, Callable

from studio.core.protocol import EventWriter

log = logging.getLogger("studio.worker")

Listener = Callable[[dict], None]


class Events:
    """Writes protocol events to stdout and ``events.jsonl`` and tells listeners about them.

    Args:
        path: the run's ``events.jsonl`` (appended to, so a resumed run keeps its history).
        stdout: where live events go (the window reads the worker's stdout); ``None`` for none.
        enabled: ``False`` on non-main processes: nothing is written.
    """

    def __init__(self, path: str | Path | None, stdout: IO[str] | None = sys.stdout, enabled: bool = True) -> None:
        self.enabled = enabled
        self._file = open(path, "a", encoding="utf-8") if (path and enabled) else None
        self._writer = EventWriter(stdout if enabled else None, self._file)
        self._listeners: list[Listener] = []
        self.finished = False

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(event)`` after every emitted event (metric loggers, the registry)."""
        self._listeners.append(listener)

    def emit(self, type_: str, **fields: Any) -> dict | None:
        """Write one event; returns it (``None`` on a non-main process)."""
        if not self.enabled:
            return None
        event = self._writer.emit(type_, **fields)
        if type_ == "finished":
            self.finished = True
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken logger must never stop training
                log.exception("event listener failed on %s", type_)
        return event

    def warning(self, code: str, message: str, **fields: Any) -> dict | None:
        """A ``warning`` event; ``code`` is a stable identifier such as ``"overfitting"``."""
        log.warning("%s: %s", code, message)
        return self.emit("warning", code=code, message=message, **fields)

    def log(self, text: str) -> dict | None:
        """A ``log`` event: free text shown in the run's console."""
        log.info("%s", text)
        return self.emit("log", text=text)

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None
