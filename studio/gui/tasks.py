"""Background work off the GUI thread.

Pages hand slow pure-Python work (reading a dataset, tokenizing rows, describing a model)
to a :class:`TaskRunner`. The function runs in Qt's global thread pool; its result or
exception comes back on the GUI thread through a queued signal. Each request has a key:
a newer request for the same key makes older results stale, so a slow answer to an old
question never overwrites the answer to the new one. A function that reports progress is also
stopped there: once its request is stale (a newer one, :meth:`TaskRunner.discard`, or its page
closed), its next progress call raises :class:`Cancelled`, so a long pass over a big file does not
go on reading for nobody.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any, Callable

from PySide6.QtCore import QCoreApplication, QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger("studio.gui.tasks")

#: ids of relays whose result is not yet delivered, window-wide (for start-up screenshots).
#: A relay leaves this set when it delivers or when it is destroyed with its page.
_undelivered: set[int] = set()
_tokens = itertools.count()
#: jobs waiting for :func:`release` (held while the window paints for the first time)
_held: list | None = None


def hold() -> None:
    """Queue new background jobs instead of starting them.

    At start-up the pages ask for their data while the window is still being built; running
    those jobs at once would compete with the first paint for the interpreter lock.
    """
    global _held
    if _held is None:
        _held = []


def release() -> None:
    """Start every queued job (idempotent)."""
    global _held
    queued, _held = _held or [], None
    for job in queued:
        QThreadPool.globalInstance().start(job)


def _start(job: QRunnable) -> None:
    if _held is not None:
        _held.append(job)
    else:
        QThreadPool.globalInstance().start(job)


class Cancelled(Exception):
    """Raised in a background function's progress call when nobody waits for its answer any more."""


def pending() -> int:
    """How many background results are still to be delivered, window-wide."""
    return len(_undelivered)


def wait_idle(timeout_s: float) -> bool:
    """Process events until every background task has delivered, or the timeout passes."""
    release()
    deadline = time.monotonic() + timeout_s
    while _undelivered and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        QThreadPool.globalInstance().waitForDone(20)
    QCoreApplication.processEvents()
    return not _undelivered


class _Relay(QObject):
    """Lives on the GUI thread; the worker thread emits through it (queued delivery).

    Signals:
        done(object): the function's return value.
        failed(object): the exception it raised.
        progress(int, int): (done, total) reported by functions that take ``progress``.
    """

    done = Signal(object)
    failed = Signal(object)
    progress = Signal(int, int)


class _Job(QRunnable):
    def __init__(self, fn: Callable[..., Any], relay: _Relay, with_progress: bool,
                 wanted: Callable[[], bool] = lambda: True) -> None:
        super().__init__()
        self._fn, self._relay, self._with_progress, self._wanted = fn, relay, with_progress, wanted

    def run(self) -> None:
        try:
            result = self._fn(self._progress) if self._with_progress else self._fn()
        except BaseException as exc:  # delivered to the page, which shows it where the person looks
            self._emit(self._relay.failed, exc)
        else:
            self._emit(self._relay.done, result)

    def _progress(self, done: int, total: int) -> None:
        if not self._wanted():
            raise Cancelled("nobody waits for this answer any more")
        self._emit(self._relay.progress, done, total)

    @staticmethod
    def _emit(signal, *args) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the page (and its relay) was closed meanwhile: nobody to tell
            pass


class TaskRunner(QObject):
    """Runs callables in the thread pool and delivers their outcome on the GUI thread.

    Signals:
        busy_changed(bool): whether any task of this runner is running.
    """

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._generation: dict[str, int] = {}
        self._relays: set[_Relay] = set()

    @property
    def busy(self) -> bool:
        return bool(self._relays)

    def submit(self, key: str, fn: Callable[..., Any], on_done: Callable[[Any], None],
               on_error: Callable[[BaseException], None] | None = None,
               on_progress: Callable[[int, int], None] | None = None) -> None:
        """Run ``fn()`` (or ``fn(progress)`` when ``on_progress`` is given) in the background.

        ``progress(done, total)`` raises :class:`Cancelled` once the request is stale: let it pass.

        Args:
            key: what the result answers; only the newest request per key is delivered.
            fn: a callable with no Qt objects in it.
            on_done: called on the GUI thread with the result.
            on_error: called on the GUI thread with the exception.
            on_progress: called on the GUI thread with (done, total).
        """
        generation = self._generation.get(key, 0) + 1
        self._generation[key] = generation
        relay = _Relay(self)
        fresh = lambda: self._generation.get(key) == generation  # noqa: E731
        relay.done.connect(lambda r: self._finish(relay, fresh() and on_done, r))
        relay.failed.connect(lambda e: self._finish(relay, fresh() and (on_error or _log_error), e))
        if on_progress is not None:
            relay.progress.connect(lambda d, t: fresh() and on_progress(d, t))
        self._relays.add(relay)
        token = relay.token = next(_tokens)
        _undelivered.add(token)
        relay.destroyed.connect(lambda *_: _undelivered.discard(token))
        if len(self._relays) == 1:
            self.busy_changed.emit(True)
        _start(_Job(fn, relay, on_progress is not None, fresh))

    def discard(self, key: str) -> None:
        """Drop the answer still coming for ``key`` (the question no longer stands)."""
        self._generation[key] = self._generation.get(key, 0) + 1

    def _finish(self, relay: _Relay, callback, value) -> None:
        self._relays.discard(relay)
        _undelivered.discard(relay.token)
        relay.deleteLater()
        if not self._relays:
            self.busy_changed.emit(False)
        if callback:
            callback(value)


def _log_error(exc: BaseException) -> None:
    log.error("background task failed: %s", exc)
