"""The worker's side of the event protocol: write events, fan them out to metric loggers.

Only the main process of a run writes events (a multi-process run would otherwise print
every step once per process); other processes get an :class:`Events` whose ``emit`` is a no-op.

``events.jsonl`` is the record and is written first; stdout is only a live view of it for
whoever started the worker. When that reader goes away (the terminal closed, ``studio train``
killed) writes to stdout fail, and the worker carries on writing the record alone: a run never
dies because nobody is watching.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import IO, Any, Callable

from studio.core.errors import DiskError, disk_error
from studio.core.protocol import EventLog, dumps, make_event, silence

log = logging.getLogger("studio.worker")

Listener = Callable[[dict], None]


class Events:
    """Writes protocol events to ``events.jsonl`` and stdout and tells listeners about them.

    Args:
        path: the run's ``events.jsonl`` (appended to, so a resumed run keeps its history).
        stdout: where live events go (the window reads the worker's stdout); ``None`` for none.
        enabled: ``False`` on non-main processes: nothing is written.
    """

    def __init__(self, path: str | Path | None, stdout: IO[str] | None = sys.stdout, enabled: bool = True) -> None:
        self.enabled = enabled
        self._record = EventLog(path) if (path and enabled) else None
        if self._record and self._record.repaired:
            log.warning("cut a torn last line (%d bytes) off %s", self._record.repaired, path)
        self._live = stdout if enabled else None
        self._listeners: list[Listener] = []
        self.finished = False

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(event)`` after every emitted event (metric loggers, the registry)."""
        self._listeners.append(listener)

    def emit(self, type_: str, **fields: Any) -> dict | None:
        """Write one event; returns it (``None`` on a non-main process)."""
        if not self.enabled:
            return None
        event = make_event(type_, **fields)
        line = dumps(event) + "\n"
        failure = self._write_record(line, final=type_ == "finished")
        self._show(line)
        if failure:
            raise failure
        if type_ == "finished":
            self.finished = True
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken logger must never stop training
                log.exception("event listener failed on %s", type_)
        return event

    def _write_record(self, line: str, final: bool) -> DiskError | None:
        """Append to events.jsonl; the error to raise when that fails (never for the last event)."""
        if self._record is None:
            return None
        try:
            self._record.append(line)
        except OSError as exc:
            log.error("cannot write %s: %s", self._record.path, exc)
            if final:  # the run is ending anyway: stdout and the registry still get the outcome
                return None
            return disk_error(self._record.path, exc, "write the event log",
                              then="then continue with studio train --resume RUN_DIR")
        return None

    def _show(self, line: str) -> None:
        """Best effort: a closed pipe or terminal ends the live view, never the run."""
        if self._live is None:
            return
        try:
            self._live.write(line)
            self._live.flush()
        except (OSError, ValueError) as exc:
            log.warning("stdout is gone (%s): events now go to %s only", exc,
                        self._record.path if self._record else "nowhere")
            silence(self._live)
            self._live = None

    def warning(self, code: str, message: str, **fields: Any) -> dict | None:
        """A ``warning`` event; ``code`` is a stable identifier such as ``"overfitting"``."""
        log.warning("%s: %s", code, message)
        return self.emit("warning", code=code, message=message, **fields)

    def log(self, text: str) -> dict | None:
        """A ``log`` event: free text shown in the run's console."""
        log.info("%s", text)
        return self.emit("log", text=text)

    def close(self) -> None:
        if self._record:
            self._record.close()
            self._record = None

