"""Launching, following and stopping training runs from the window.

A run must outlive the window (close the studio, and training goes on), so the worker is not a
plain ``QProcess`` child, which Qt kills when its ``QProcess`` object is destroyed: it is started
with ``QProcess.startDetached`` (its own session, no parent to die with), in its run folder,
with its stderr in ``RUN_DIR/worker.log``, and the window follows ``RUN_DIR/events.jsonl`` on a
timer. Following the file is the single code path for a run just
launched, a run reattached after a restart, and a finished run opened from the registry.

Status is the truth (DESIGN.md): completed/stopped/failed come only from the worker's own final
event; a run whose process died without one is failed, with its last error and log tail; a run
whose process is alive is never failed.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QMetaMethod, QObject, QProcess, QTimer, Signal

from studio.core.runs import pid_alive
from studio.gui.run_files import LOG_TAIL_LINES, events_size, log_tail, read_history, read_span

log = logging.getLogger("studio.gui.runner")

POLL_MS = 200
CATCH_UP_MS = 30
#: Longest time one poll spends reading a backlog before letting the window paint and take input
#: (with a redraw in the same pass, this stays under the 50 ms a person notices).
SLICE_BUDGET_S = 0.025
#: After its final event a worker still writes its last lines (a traceback) to worker.log and
#: exits; the outcome waits this long for the exit so its log tail holds those lines.
EXIT_GRACE_S = 3.0
#: Bytes of event log read per poll (about 500 step events): replaying a million-step log then
#: takes many short slices between which the window keeps painting, instead of one long freeze.
MAX_READ = 128 * 1024
#: Unread bytes that make a backlog worth reading again within one poll (about 140 step events).
BACKLOG_BYTES = MAX_READ // 4
#: The source checkout (or site-packages) holding the ``studio`` package, for the child's path.
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
#: Run by the detached Python before it becomes the worker (``exec`` keeps the process id that
#: ``startDetached`` returned): stdin and stdout to the null device, stderr appended to the log
#: file named in the working directory, ``studio`` on the path, then ``python ARGS...``.
#: PySide6 returns the pid only from the static ``startDetached(program, arguments, workingDirectory)``,
#: which takes no stderr file or environment; these few lines give it both.
DETACHED_BOOT = (
    "import os, sys\n"
    "log_name, path, args = sys.argv[1], sys.argv[2], sys.argv[3:]\n"
    "null = os.open(os.devnull, os.O_RDWR)\n"
    "log = os.open(log_name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)\n"
    "os.dup2(null, 0); os.dup2(null, 1); os.dup2(log, 2)\n"
    "os.environ['PYTHONPATH'] = os.pathsep.join(p for p in (path, os.environ.get('PYTHONPATH', '')) if p)\n"
    "os.environ.setdefault('PYTHONUNBUFFERED', '1')\n"
    "os.execv(sys.executable, [sys.executable, *args])\n"
)


def start_detached(args: list[str], folder: str | Path, log_name: str = "worker.log") -> int:
    """Start ``python args...`` with ``QProcess.startDetached`` in ``folder``; returns its pid.

    The process has its own session and no parent to die with, so it outlives the window and a
    Ctrl+C in the studio's terminal does not reach it; its stderr is appended to
    ``folder/log_name``. Raises OSError when it cannot be started.
    """
    ok, pid = QProcess.startDetached(sys.executable, ["-c", DETACHED_BOOT, log_name, PACKAGE_PARENT, *args],
                                     str(folder))
    if not ok or not pid:
        raise OSError(f"could not start {sys.executable} in {folder}")
    return int(pid)


@dataclass
class RunOutcome:
    """How a run ended (or that it is still going), as the window reports it.

    Attributes:
        run_dir: the run folder.
        status: ``completed``, ``stopped`` or ``failed`` from the worker's final event;
            ``failed`` when the process died without one; ``running`` while it is alive.
        pid: the worker's process id when known.
        pid_alive: whether that process was alive when the outcome was taken.
        error: the error message (from the final event, or why the process is thought dead).
        hint: what the person can do about it.
        log_tail: the last lines of ``worker.log`` (tracebacks and library messages).
        final_event: the worker's ``finished`` event, if any.
    """

    run_dir: str
    status: str
    pid: int | None = None
    pid_alive: bool = False
    error: str = ""
    hint: str = ""
    log_tail: str = ""
    final_event: dict | None = field(default=None, repr=False)

    def was_successful(self) -> bool:
        return self.status == "completed"

    def was_sigterm(self) -> bool:
        return self.status == "stopped"


class RunProcess(QObject):
    """Follows one run: its worker process (launched here or found alive) and its event log.

    Modelled on qutebrowser's ``GUIProcess``: one object per child, forwarding what happens as
    signals and recording the result in a :class:`RunOutcome`.

    Events already in the log when following starts are replayed first (so a page shows the
    whole curve); a ``finished`` event among them ends the run only if no new worker was launched
    (a resumed run appends to the log of its stopped predecessor).

    Signals:
        event(dict): one protocol event, in log order.
        events(list): the same events, a slice at a time (cheaper for views that take many).
        finished(object): the :class:`RunOutcome` once the run has ended.
    """

    event = Signal(dict)
    events = Signal(list)
    finished = Signal(object)

    def __init__(self, run_dir: str | Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.run_dir = str(run_dir)
        self.pid: int | None = None
        self.offset = 0
        self._history_end = 0
        self._final: dict | None = None
        self._final_at = 0.0
        self._outcome: RunOutcome | None = None
        self._last_error = ("", "")
        self._logs: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._timer = QTimer(self)
        self._timer.setObjectName("runPollTimer")  # named for profiles (benchmarks/gui_stream.py)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)

    # -- starting ---------------------------------------------------------------------

    def launch(self, args: list[str]) -> None:
        """Start ``python args...`` detached from the window, in the run folder, and follow the run.

        See :func:`start_detached`; raises OSError when the process cannot be started.
        """
        self._history_end = events_size(self.run_dir)
        self.pid = start_detached(args, self.run_dir)
        log.info("launched %s (pid %d) for %s", " ".join(args), self.pid, self.run_dir)
        self._start_timer()

    def take_over(self, pid: int) -> None:
        """Follow a run just handed to a worker started ahead of time (:mod:`studio.gui.standby`)."""
        self._history_end = events_size(self.run_dir)
        self.pid = pid
        log.info("run %s went to the standby worker (pid %d)", self.run_dir, pid)
        self._start_timer()

    def follow(self, pid: int | None = None) -> None:
        """Follow a run that is already going (``pid`` alive) or has finished (replay its log)."""
        self.pid = pid
        self._history_end = 0
        self._start_timer()

    def _start_timer(self) -> None:
        # The first read waits for the event loop, so whoever connected to our signals right
        # after launch()/follow() still receives every event.
        QTimer.singleShot(0, self.poll)
        self._timer.start()

    # -- following ----------------------------------------------------------------------

    def is_alive(self) -> bool:
        return pid_alive(self.pid)

    def is_running(self) -> bool:
        """Still being followed: no final event and not yet found dead."""
        return self._outcome is None

    def poll(self) -> None:
        """Read new events; end the run on its final event or when its process is gone."""
        if self._outcome is not None:
            return
        alive = self.is_alive()  # taken before reading, so no event written before death is missed
        deadline = time.monotonic() + SLICE_BUDGET_S
        waiting = self._read_new()
        while self._backlog(waiting, alive) and self._final is None and time.monotonic() < deadline:
            waiting = self._read_new()
        behind = waiting > 0
        self._timer.setInterval(POLL_MS)
        if self._final is not None:
            if alive and time.monotonic() - self._final_at < EXIT_GRACE_S:
                return  # the final event is in: let the process finish writing worker.log and exit
            self._finish(self._outcome_from_final())
        elif behind:
            self._timer.setInterval(CATCH_UP_MS)  # one slice per tick; input and painting run between
        elif not alive:
            self._finish(self._outcome_dead())

    def _backlog(self, waiting: int, alive: bool) -> bool:
        """Whether to read again within this poll: unread history, a dead worker's last lines, or
        a real backlog. The few lines a live worker appends while a slice is read are not one:
        reading them at once kept a poll reading until its budget ran out whenever the worker
        wrote faster than one read took, which stalled the window for the whole budget."""
        return waiting > 0 and (self.offset < self._history_end or not alive or waiting >= BACKLOG_BYTES)

    def _read_new(self) -> int:
        """Read one slice of new events; the bytes still waiting after it (0: none worth a read)."""
        history = self.offset < self._history_end
        limit = min(MAX_READ, self._history_end - self.offset) if history else MAX_READ
        events, offset = read_span(self.run_dir, self.offset, limit)
        if history and offset == self.offset:
            offset = self._history_end  # an unfinished line left by a worker that died mid-write
        self.offset = offset
        # An emit costs tens of microseconds even with no receiver: skip per-event signals
        # nobody listens to (views take the cheaper per-slice ``events`` signal).
        per_event = self.isSignalConnected(QMetaMethod.fromSignal(self.event))
        for ev in events:
            self._dispatch(ev, history, per_event)
        if events:
            self.events.emit(events)
        return max(events_size(self.run_dir) - self.offset, 0) if (events or history) else 0

    def _dispatch(self, ev: dict, history: bool, emit: bool = True) -> None:
        kind = ev.get("type")
        if kind == "finished" and not history:
            self._final, self._final_at = ev, time.monotonic()
        elif kind == "log":
            self._logs.append(ev.get("text", ""))
        if ev.get("error"):
            self._last_error = (str(ev.get("error")), str(ev.get("hint", "")))
        if emit:
            self.event.emit(ev)

    def _finish(self, outcome: RunOutcome) -> None:
        self._timer.stop()
        self._outcome = outcome
        log.info("run %s ended: %s", self.run_dir, outcome.status)
        self.finished.emit(outcome)

    def _outcome_from_final(self) -> RunOutcome:
        final = self._final or {}
        return RunOutcome(self.run_dir, final.get("status", "failed"), self.pid, self.is_alive(),
                          error=str(final.get("error", "")), hint=str(final.get("hint", "")),
                          log_tail=log_tail(self.run_dir), final_event=final)

    def _outcome_dead(self) -> RunOutcome:
        error, hint = self._last_error
        if not error:
            # A detached worker is nobody's child: its exit code is not known, only that it is gone.
            error = "The training process ended without reporting a result (its process is gone)."
            hint = ("Read the end of worker.log below. If the machine ran out of memory, lower "
                    "train.batch_size or data.max_length; then resume from the last checkpoint.")
        tail = log_tail(self.run_dir) or "\n".join(self._logs)
        return RunOutcome(self.run_dir, "failed", self.pid, False, error, hint, tail, None)

    # -- outcome and control ---------------------------------------------------------------

    def outcome(self) -> RunOutcome:
        """The recorded outcome, or a ``running`` one while the run goes on."""
        if self._outcome is not None:
            return self._outcome
        error, hint = self._last_error
        return RunOutcome(self.run_dir, "running", self.pid, self.is_alive(), error, hint, log_tail(self.run_dir))

    def history(self) -> list[dict]:
        """Every event read so far (re-read from the log: nothing is held in memory)."""
        return read_history(self.run_dir, self.offset)

    def stop(self) -> bool:
        """Ask the worker to checkpoint and stop (SIGTERM); returns False if it was not running."""
        if not self.pid or not self.is_alive():
            return False
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        log.info("asked run %s (pid %d) to stop", self.run_dir, self.pid)
        return True

    def detach(self) -> None:
        """Stop following (the window is closing); the worker itself goes on."""
        self._timer.stop()


def __getattr__(name: str):
    """``RunsController`` lives in its own module (file size) but is imported from here."""
    if name == "RunsController":
        from studio.gui.run_controller import RunsController

        return RunsController
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RunOutcome", "RunProcess", "RunsController", "log_tail", "pid_alive"]
