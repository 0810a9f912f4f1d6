"""The worker process: train one run folder, report through events, end with one ``finished``.

Usage::

    python -m studio.worker RUN_DIR                      # fresh run from RUN_DIR/config.yaml
    python -m studio.worker RUN_DIR --resume             # continue from checkpoints/latest
    python -m studio.worker RUN_DIR --resume CHECKPOINT  # continue from that checkpoint

Exit code 0 when the run completed or was stopped (SIGTERM/SIGINT: the current step
finishes, a checkpoint is saved); 1 when it failed (the ``finished`` event carries ``error``
and ``hint``); 2 when the run folder itself is unusable or another worker is training it
(``worker.lock``: the second worker writes nothing and names the first one's pid).
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import importlib
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

from studio.core import config as configmod
from studio.core.checkpoints import resolve_resume
from studio.core.errors import RunError, StudioError
from studio.core.resume_check import check_init, check_resume
from studio.core.run_index import segment_start
from studio.core.run_lock import RunLock
from studio.core.runs import Registry, process_age_s
from studio.worker.events import Events
from studio.worker.failures import explain

log = logging.getLogger("studio.worker")

#: When this process's start-up phases ended (Unix times), sent in the ``started`` event's
#: ``startup`` field: ``process_start``, ``run_received`` (a standby worker), ``imports_done``,
#: ``data_done``, ``model_done``; ``standby`` is true when the run went to a worker started ahead.
STARTUP: dict = {}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m studio.worker", description="Train the run in RUN_DIR.")
    parser.add_argument("run_dir", help="run folder holding config.yaml")
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                        help="continue from a checkpoint (default: the latest)")
    return parser.parse_args(argv)


def is_main_process() -> bool:
    """Rank 0 under ``accelerate launch``/torchrun, or a single process."""
    return os.environ.get("RANK", "0") == "0"


def setup_logging(run_dir: Path, main: bool) -> None:
    """worker.log in the run folder (per rank when several processes train)."""
    name = "worker.log" if main else f"worker.rank{os.environ.get('RANK')}.log"
    handler = logging.FileHandler(run_dir / name, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    # Progress bars on stderr are noise in a log the window shows line by line.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass


class RegistryUpdater:
    """Keeps the run's registry row in step with the events (at most one write a second for steps)."""

    def __init__(self, registry: Registry, run_id: str) -> None:
        self.registry, self.run_id = registry, run_id
        self._last_write = 0.0
        self._step: int | None = None  # the newest step any event named

    def __call__(self, event: dict) -> None:
        kind = event["type"]
        if kind in ("step", "eval", "checkpoint"):
            self._step = event["step"]
        if kind in ("checkpoint", "finished") and self._step is not None:
            self.registry.update(self.run_id, step=self._step)  # the row never lags where the run ended
        elif kind == "started":
            self.registry.update(self.run_id, max_steps=event["max_steps"], step=event.get("start_step", 0))
        elif kind == "step" and time.monotonic() - self._last_write > 1.0:
            self._last_write = time.monotonic()
            self.registry.update(self.run_id, step=event["step"])
        elif kind == "eval":
            rec = self.registry.get(self.run_id)
            best = event["eval_loss"] if rec.best_eval_loss is None else min(rec.best_eval_loss, event["eval_loss"])
            self.registry.update(self.run_id, step=event["step"], final_eval_loss=event["eval_loss"],
                                 best_eval_loss=best)


#: Signals that ask for a graceful stop: Ctrl-C, ``kill``/the window's Stop, the terminal closing.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))


def install_stop_handlers(ctx) -> dict:
    """SIGTERM, SIGINT and SIGHUP ask the recipe to stop after the current step and save a checkpoint.

    Only a second Ctrl-C (SIGINT) abandons the step: SIGTERM and SIGHUP may arrive twice for one
    stop (a closing terminal hangs up the worker and ``studio train``, which passes the stop on),
    so repeating them changes nothing.

    Returns:
        The previous handlers, for :func:`restore_handlers`.
    """
    def handler(signum, _frame):
        if signum == getattr(signal, "SIGHUP", None):
            _stderr_to_log(ctx.run_dir)  # the terminal is gone: what would go there goes to worker.log
        if ctx.stop_requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        ctx.stop_requested = True
        ctx.events.log(f"stop requested ({signal.Signals(signum).name}): finishing the current step "
                       "and saving a checkpoint")

    return {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}


def _stderr_to_log(run_dir: Path) -> None:
    try:
        fd = os.open(Path(run_dir) / "worker.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    except OSError:
        pass


def restore_handlers(previous: dict) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_dir = Path(args.run_dir).resolve()
    if not (run_dir / "config.yaml").exists():
        print(f"error: {run_dir} has no config.yaml", file=sys.stderr)
        return 2
    if not STARTUP.get("standby"):
        STARTUP["process_start"] = round(time.time() - process_age_s(), 3)
    main_proc = is_main_process()
    try:  # before anything in the folder is written: a second worker on this run writes nothing
        lock = RunLock(run_dir) if main_proc else None
    except RunError as exc:
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return 2
    try:
        announce = _resume_changes(run_dir, args.resume)
    except RunError as exc:  # refused before the run is touched: it keeps its status
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return 2
    try:
        return _run(run_dir, args.resume, main_proc, announce)
    finally:
        if lock:
            lock.release()


def _resume_changes(run_dir: Path, resume: str | None) -> str:
    """What changed in config.yaml since the checkpoint and is applied (see core.resume_check).

    Raises:
        RunError: a change the checkpoint cannot continue with.
    """
    if resume is None:
        return ""
    return check_resume(run_dir, None if resume == "latest" else resume).announcement()


def _run(run_dir: Path, resume: str | None, main_proc: bool, announce: str = "") -> int:
    setup_logging(run_dir, main_proc)
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID` prints every thread's stack: what a hung process waits on
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    events = Events(run_dir / "events.jsonl", sys.stdout, enabled=main_proc)
    registry, run_id = _register(run_dir, main_proc)
    if registry:
        events.subscribe(RegistryUpdater(registry, run_id))
    if announce:
        events.warning("resume_changes", announce)
    status, error, hint = _train(run_dir, resume, events)
    fields = {"error": error, "hint": hint} if status == "failed" else {}
    if (run_dir / "final").is_dir() and status == "completed":
        fields["final_dir"] = str(run_dir / "final")
    events.emit("finished", status=status, **fields)
    if registry:
        registry.update(run_id, status=status, ended=time.time(), error=error or "", hint=hint or "")
    events.close()
    return 0 if status in ("completed", "stopped") else 1


def _register(run_dir: Path, main_proc: bool) -> tuple[Registry | None, str]:
    if not main_proc:
        return None, ""
    try:
        cfg_data = configmod.yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        registry = Registry()
        run_id = registry.add(run_dir, cfg_data, cfg_data.get("name") or run_dir.name)
        before = registry.find(run_dir)  # a resumed run keeps its first start and the time already trained
        part = segment_start(dataclasses.asdict(before) if before else {}, time.time())
        registry.update(run_id, status="running", pid=os.getpid(), host=socket.gethostname(), error="", hint="",
                        **part)
        return registry, run_id
    except (StudioError, OSError, ValueError) as exc:
        log.warning("the run registry is unavailable (%s); training continues", exc)
        return None, ""


def _train(run_dir: Path, resume: str | None, events: Events) -> tuple[str, str | None, str | None]:
    """Run the recipe; returns (status, error, hint)."""
    from studio.worker.context import RunContext

    previous: dict = {}
    cfg = None
    try:
        cfg = configmod.load(run_dir / "config.yaml")
        if resume is None:
            check_init(cfg)  # a new run from a checkpoint's weights: does it fit?
        _preload(cfg.train.objective)
        ctx = RunContext(cfg, run_dir, events, resolve_resume(run_dir, resume))
        ctx.startup = STARTUP
        previous = install_stop_handlers(ctx)
        from studio.worker.loggers import attach_loggers

        attach_loggers(ctx)
        status = _recipe(cfg.train.objective).run(ctx)
        if status not in ("completed", "stopped"):
            raise RunError(f"the {cfg.train.objective} recipe returned an unknown status {status!r}",
                           "this is a bug in the recipe; see worker.log")
        return status, None, None
    except BaseException as exc:  # every failure must end in a finished event, even ^C twice
        log.exception("run failed")
        error, hint = explain(exc, cfg)
        return "failed", error, hint
    finally:
        restore_handlers(previous)


def _preload(objective: str) -> None:
    """Import the libraries every run needs up front (a standby worker has done it already), so
    the ``startup`` times tell imports apart from loading the data and the model."""
    from studio.worker.standby import PRELOAD, preload

    preload(PRELOAD if objective != "sft" else tuple(n for n in PRELOAD if n != "trl"))
    STARTUP["imports_done"] = round(time.time(), 3)


def _recipe(objective: str):
    from studio.worker.recipes import RECIPES

    module = RECIPES.get(objective)
    if module is None:
        raise StudioError(f"no recipe for objective {objective!r}", f"use one of: {', '.join(RECIPES)}")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise StudioError(f"the {objective} recipe is not installed in this Studio build",
                              "update Studio, or train with train.objective=sft") from None
        raise
