"""Launching, following and stopping training runs from the window.

A run must outlive the window (close the studio, and training goes on), so the worker is not a
plain ``QProcess`` child, which Qt kills when its ``QProcess`` object is destroyed. The worker
is started in its own session with its stderr in ``RUN_DIR/worker.log``, and the window follows
``RUN_DIR/events.jsonl`` on a timer. Following the file is the single code path for a run just
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
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QMetaMethod, QObject, QTimer, Signal

from studio.core.protocol import LineReader

log = logging.getLogger("studio.gui.runner")

POLL_MS = 200
CATCH_UP_MS = 30
#: Longest time one poll spends reading a backlog before letting the window paint and take input.
SLICE_BUDGET_S = 0.05
#: Bytes of event log read per poll (about 500 step events): replaying a million-step log then
#: takes many short slices between which the window keeps painting, instead of one long freeze.
MAX_READ = 128 * 1024
LOG_TAIL_LINES = 30
#: The source checkout (or site-packages) holding the ``studio`` package, for the child's path.
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


@dataclass
class RunOutcome:
    """How a run ended (or that it is still going), as the window reports it.

    Attributes:
        run_dir: the run folder.
        status: ``completed``, ``stopped`` or ``failed`` from the worker's final event;
            ``failed`` when the process died without one; ``running`` while it is alive.
        pid: the worker's process id when known.
        pid_alive: whether that process was alive when the outcome was taken.
        exit_code: the worker's exit code when this window launched it (negative = signal).
        error: the error message (from the final event, or why the process is thought dead).
        hint: what the person can do about it.
        log_tail: the last lines of ``worker.log`` (tracebacks and library messages).
        final_event: the worker's ``finished`` event, if any.
    """

    run_dir: str
    status: str
    pid: int | None = None
    pid_alive: bool = False
    exit_code: int | None = None
    error: str = ""
    hint: str = ""
    log_tail: str = ""
    final_event: dict | None = field(default=None, repr=False)

    def was_successful(self) -> bool:
        return self.status == "completed"

    def was_sigterm(self) -> bool:
        return self.status == "stopped"


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists (signal 0 checks without sending anything)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A dead child not yet reaped still answers signal 0; /proc tells the difference on Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def log_tail(run_dir: str | Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a run's ``worker.log`` (empty when there is none)."""
    path = Path(run_dir) / "worker.log"
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def read_span(run_dir: str | Path, offset: int, limit: int) -> tuple[list[dict], int]:
    """Complete event lines of a run's ``events.jsonl`` within ``limit`` bytes from ``offset``.

    Returns the events and the offset after the last complete line; a partial line (a worker
    still writing it) is left for the next read, like :func:`studio.core.protocol.read_events`.
    """
    try:
        with open(Path(run_dir) / "events.jsonl", "rb") as fh:
            fh.seek(offset)
            data = fh.read(limit)
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    return LineReader().feed(data[:end]), offset + end


def read_history(run_dir: str | Path, end: int) -> list[dict]:
    """Events of a run's ``events.jsonl`` from its start up to byte ``end`` (a follower's offset)."""
    return read_span(run_dir, 0, end)[0]


def events_size(run_dir: str | Path) -> int:
    try:
        return (Path(run_dir) / "events.jsonl").stat().st_size
    except OSError:
        return 0


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
        self._popen: subprocess.Popen | None = None
        self.offset = 0
        self._history_end = 0
        self._final: dict | None = None
        self._outcome: RunOutcome | None = None
        self._last_error = ("", "")
        self._logs: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)

    # -- starting ---------------------------------------------------------------------

    def launch(self, args: list[str]) -> None:
        """Start ``python args...`` detached from the window and follow the run.

        Uses ``subprocess.Popen`` in a new session rather than ``QProcess.startDetached``
        because PySide6's binding of the latter does not return the child's pid, which stop
        and reattach need. The new session keeps a Ctrl+C in the studio's terminal, or the
        window closing, from reaching the worker.
        """
        self._history_end = events_size(self.run_dir)
        logfile = open(Path(self.run_dir) / "worker.log", "ab")
        try:
            self._popen = subprocess.Popen(
                [sys.executable, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=logfile, env=_child_env(), start_new_session=True)
        finally:
            logfile.close()
        self.pid = self._popen.pid
        log.info("launched %s (pid %d) for %s", " ".join(args), self.pid, self.run_dir)
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
        if self._popen is not None:
            return self._popen.poll() is None
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
        behind = self._read_new()
        while behind and self._final is None and time.monotonic() < deadline:
            behind = self._read_new()
        self._timer.setInterval(POLL_MS)
        if self._final is not None:
            self._finish(self._outcome_from_final())
        elif behind:
            self._timer.setInterval(CATCH_UP_MS)  # one slice per tick; input and painting run between
        elif not alive:
            self._finish(self._outcome_dead())

    def _read_new(self) -> bool:
        """Read one slice of new events; True when more complete data is waiting."""
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
        return events_size(self.run_dir) - self.offset > 0 and (bool(events) or history)

    def _dispatch(self, ev: dict, history: bool, emit: bool = True) -> None:
        kind = ev.get("type")
        if kind == "finished" and not history:
            self._final = ev
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
        return RunOutcome(self.run_dir, final.get("status", "failed"), self.pid, self.is_alive(), self.exit_code(),
                          error=str(final.get("error", "")), hint=str(final.get("hint", "")),
                          log_tail=log_tail(self.run_dir), final_event=final)

    def _outcome_dead(self) -> RunOutcome:
        error, hint = self._last_error
        code = self.exit_code()
        if not error:
            how = f"exit code {code}" if code is not None and code >= 0 else (
                f"killed by signal {-code}" if code is not None else "its process is gone")
            error = f"The training process ended without reporting a result ({how})."
            hint = ("Read the end of worker.log below. If the machine ran out of memory, lower "
                    "train.batch_size or data.max_length; then resume from the last checkpoint.")
        tail = log_tail(self.run_dir) or "\n".join(self._logs)
        return RunOutcome(self.run_dir, "failed", self.pid, False, code, error, hint, tail, None)

    def exit_code(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    # -- outcome and control ---------------------------------------------------------------

    def outcome(self) -> RunOutcome:
        """The recorded outcome, or a ``running`` one while the run goes on."""
        if self._outcome is not None:
            return self._outcome
        error, hint = self._last_error
        return RunOutcome(self.run_dir, "running", self.pid, self.is_alive(), None, error, hint, log_tail(self.run_dir))

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


def _child_env() -> dict[str, str]:
    """The window's environment plus the folder holding ``studio`` on the child's path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class RunsController(QObject):
    """Starts, resumes, reattaches to and stops runs, and keeps the registry up to date.

    The window creates one controller and hands it to the pages that show runs; a page asks it
    for the :class:`RunProcess` of a run and connects to that process's signals.

    Signals:
        run_started(object): a :class:`RunProcess` now followed (launched, resumed or reattached).
        run_finished(object): the :class:`RunOutcome` of a followed run that ended.
        runs_changed(): the registry changed (a run was added or its status changed).
    """

    run_started = Signal(object)
    run_finished = Signal(object)
    runs_changed = Signal()

    def __init__(self, parent: QObject | None = None, registry=None) -> None:
        super().__init__(parent)
        self._registry = registry
        self._procs: dict[str, RunProcess] = {}

    @property
    def registry(self):
        if self._registry is None:
            from studio.core.runs import Registry

            self._registry = Registry()
        return self._registry

    # -- launching ----------------------------------------------------------------------

    def start_run(self, cfg, run_dir: str | Path | None = None) -> RunProcess:
        """Write a run folder for ``cfg``, register it and launch its worker."""
        from studio.core import runs

        run_dir = Path(run_dir) if run_dir else runs.new_run_dir(cfg)
        run_dir.mkdir(parents=True, exist_ok=True)
        from studio.core import config as configmod

        configmod.save(cfg, run_dir / "config.yaml")
        self.registry.add(str(run_dir), cfg, cfg.name or run_dir.name)
        return self._launch(run_dir, _worker_args(cfg, run_dir))

    def resume(self, run_dir: str | Path, checkpoint: str | None = None) -> RunProcess:
        """Continue a stopped or failed run in its own folder, from ``checkpoint`` (default: latest)."""
        args = ["-m", "studio", "train", "--resume", str(run_dir)]
        if checkpoint:
            args += ["--from", str(checkpoint)]
        return self._launch(Path(run_dir), args)

    def branch(self, run_dir: str | Path, checkpoint: str, cfg=None) -> RunProcess:
        """A new run with ``cfg`` (default: the old run's config) that starts from another run's checkpoint."""
        from studio.core import config as configmod
        from studio.core import runs

        cfg = cfg or configmod.load(Path(run_dir) / "config.yaml")
        new_dir = runs.new_run_dir(cfg)
        new_dir.mkdir(parents=True, exist_ok=True)
        configmod.save(cfg, new_dir / "config.yaml")
        self.registry.add(str(new_dir), cfg, cfg.name or new_dir.name)
        return self.resume(new_dir, checkpoint)

    def _launch(self, run_dir: Path, args: list[str]) -> RunProcess:
        old = self._procs.get(str(run_dir))
        if old is not None and old.is_running() and old.is_alive():
            raise RuntimeError(f"run {run_dir} is still training")
        proc = self._adopt(RunProcess(run_dir, self))
        proc.launch(args)
        self._record(run_dir, status="running", pid=proc.pid)
        self.run_started.emit(proc)
        return proc

    def _adopt(self, proc: RunProcess) -> RunProcess:
        self._procs[proc.run_dir] = proc
        proc.finished.connect(self._on_finished)
        return proc

    # -- following ----------------------------------------------------------------------

    def reattach(self) -> list[RunProcess]:
        """Follow every registered run still marked running whose worker is alive."""
        self.registry.refresh_status()
        found = []
        for row in self.registry.list():
            run_dir, pid = _field(row, "run_dir"), _field(row, "pid")
            if _field(row, "status") == "running" and pid_alive(pid) and str(run_dir) not in self._procs:
                proc = self._adopt(RunProcess(run_dir, self))
                proc.follow(pid)
                found.append(proc)
                self.run_started.emit(proc)
        return found

    def process(self, run_dir: str | Path) -> RunProcess | None:
        """The process followed for ``run_dir``, if any."""
        return self._procs.get(str(run_dir))

    def open_run(self, run_dir: str | Path, pid: int | None = None) -> RunProcess:
        """The followed process of a run, following it now if nobody does (live or finished)."""
        proc = self._procs.get(str(run_dir))
        if proc is None:
            proc = self._adopt(RunProcess(run_dir, self))
            proc.follow(pid)
        return proc

    def live_runs(self) -> list[RunProcess]:
        """Runs whose worker is alive and still training (asked when the window closes)."""
        return [p for p in self._procs.values() if p.is_running() and p.is_alive()]

    def stop(self, run_dir: str | Path) -> bool:
        proc = self._procs.get(str(run_dir))
        return bool(proc and proc.stop())

    def stop_all(self) -> int:
        """Ask every live run to checkpoint and stop; returns how many were asked."""
        return sum(p.stop() for p in self.live_runs())

    def detach_all(self) -> None:
        """Stop following (the window is closing and the person left the runs training)."""
        for proc in self._procs.values():
            proc.detach()

    def _on_finished(self, outcome: RunOutcome) -> None:
        fields = {"status": outcome.status}
        final = outcome.final_event or {}
        for key in ("final_eval_loss", "best_eval_loss"):
            if final.get(key) is not None:
                fields[key] = final[key]
        if outcome.error:
            fields["error"] = outcome.error
        self._record(Path(outcome.run_dir), **fields)
        self.run_finished.emit(outcome)

    def _record(self, run_dir: Path, **fields) -> None:
        """Update the registry row of ``run_dir``; a registry problem never breaks the window."""
        try:
            row = self.registry.find(str(run_dir))
            if row is not None:
                self.registry.update(_field(row, "id"), **fields)
        except Exception:
            log.exception("could not update the registry for %s", run_dir)
        self.runs_changed.emit()


def _worker_args(cfg, run_dir: Path) -> list[str]:
    """``-m studio.worker RUN_DIR``, or the accelerate launcher when the config asks for several processes."""
    processes = int(getattr(cfg.distributed, "num_processes", 1) or 1)
    module = "studio.worker.launch" if processes > 1 else "studio.worker"
    return ["-m", module, str(run_dir)]


def _field(row, name: str):
    """A registry row's field whether rows are mappings or objects."""
    return row.get(name) if isinstance(row, dict) else getattr(row, name, None)
