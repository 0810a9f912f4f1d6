"""The window's one owner of training runs: start, resume, branch, reattach, stop.

Imported through :mod:`studio.gui.runner`, which the main window and pages use.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from studio.core import config as configmod
from studio.core import runs
from studio.core.run_index import segment_start
from studio.core.models import resolve_config_paths
from studio.core.resume_check import check_init, check_resume, compare
from studio.gui.pages.method_support import changed_fields
from studio.gui.runner import RunOutcome, RunProcess
from studio.gui.standby import StandbyWorker, standby_wanted

log = logging.getLogger("studio.gui.runner")


class RunsController(QObject):
    """Starts, resumes, reattaches to and stops runs, and keeps the registry up to date.

    The window creates one controller and hands it to the pages that show runs; a page asks it
    for the :class:`RunProcess` of a run and connects to that process's signals. The worker
    keeps its own registry row current while it lives; the controller records what only the
    window can see (a worker that died without a word).

    Signals:
        run_started(object): a :class:`RunProcess` now followed (launched, resumed or reattached).
        run_finished(object): the :class:`RunOutcome` of a followed run that ended.
        runs_changed(): the registry changed (a run was added or its status changed).
    """

    run_started = Signal(object)
    run_finished = Signal(object)
    runs_changed = Signal()

    def __init__(self, parent: QObject | None = None, registry: runs.Registry | None = None) -> None:
        super().__init__(parent)
        self._registry = registry
        self._procs: dict[str, RunProcess] = {}
        self.standby: StandbyWorker | None = None
        self._standby_on = False

    @property
    def registry(self) -> runs.Registry:
        if self._registry is None:
            self._registry = runs.Registry()
        return self._registry

    # -- launching ------------------------------------------------------------------------

    def start_run(self, cfg: configmod.RunConfig, run_dir: str | Path | None = None, processes: int = 1,
                  cpu: bool = False) -> RunProcess:
        """Write a run folder for ``cfg``, register it and launch its worker.

        Args:
            cfg: the validated run configuration.
            run_dir: the folder (default: a new one under the Studio data folder).
            processes: more than one launches ``accelerate launch`` with that many processes.
            cpu: with several processes, train on CPU processes (DDP over gloo).
        """
        run_dir = self._new_folder(cfg, run_dir)
        if processes > 1:
            return self._launch(run_dir, _accelerate_args(cfg, run_dir, processes, cpu))
        return self._launch(run_dir, ["-m", "studio.worker", str(run_dir)])

    def resume(self, run_dir: str | Path, checkpoint: str | None = None, launched_from: str | Path | None = None
               ) -> RunProcess:
        """Continue a stopped or failed run in its own folder, from ``checkpoint`` (default: latest).

        A run of several processes resumes on as many (the checkpoint's batch and place in the
        data depend on it), read from the accelerate config of ``launched_from`` (default the run).

        Raises:
            RunError: config.yaml was edited in a way the checkpoint cannot continue with (the
                message lists the settings); the worker would refuse it the same way.
        """
        from studio.core.launch import launched_with

        check_resume(run_dir, checkpoint)
        run_dir = Path(run_dir)
        resume = ["--resume", str(checkpoint)] if checkpoint else ["--resume"]
        processes, cpu = launched_with(launched_from or run_dir)
        if processes > 1:
            cfg = configmod.load(run_dir / "config.yaml")
            return self._launch(run_dir, _accelerate_args(cfg, run_dir, processes, cpu) + resume)
        return self._launch(run_dir, ["-m", "studio.worker", str(run_dir), *resume])

    def branch(self, run_dir: str | Path, checkpoint: str, cfg: configmod.RunConfig | None = None) -> RunProcess:
        """A new run (``cfg``, default the old run's config) that starts from another run's checkpoint.

        With the checkpoint's settings it continues the checkpoint (optimizer, schedule, data
        position). With settings a checkpoint cannot continue with (data, batch, learning rate...)
        it starts from the checkpoint's weights only (``model.init_from``: fresh optimizer,
        schedule and data order), as ``studio train CONFIG --init-from CHECKPOINT`` does.

        Raises:
            RunError: the checkpoint's weights do not fit ``cfg`` (another method or rank); no
                folder is made.
        """
        cfg = cfg or configmod.load(Path(run_dir) / "config.yaml")
        cfg.name = f"{cfg.name or Path(run_dir).name}-branch"
        checkpoint = str(Path(checkpoint).resolve())
        saved = Path(checkpoint) / "config.yaml"
        if saved.is_file() and compare(configmod.load(saved), resolve_config_paths(cfg)).refused:
            from studio.core.launch import launched_with

            cfg.model.init_from = checkpoint
            check_init(cfg)
            processes, cpu = launched_with(run_dir)
            return self.start_run(cfg, processes=processes, cpu=cpu)
        new_dir = self._new_folder(cfg, None)
        return self.resume(new_dir, checkpoint, launched_from=run_dir)

    def _new_folder(self, cfg: configmod.RunConfig, run_dir: str | Path | None) -> Path:
        cfg.name = distinct_name(cfg, self._named_runs())
        run_dir = Path(run_dir) if run_dir else runs.new_run_dir(cfg.name)
        run_dir.mkdir(parents=True, exist_ok=True)
        # The worker starts in its run folder: paths relative to the window's folder must not move.
        configmod.save(resolve_config_paths(cfg), run_dir / "config.yaml")
        self.registry.add(run_dir, cfg, cfg.name or run_dir.name)
        return run_dir.resolve()

    def _named_runs(self) -> list[tuple[str, str]]:
        """(name, run folder) of every registered run; none when the registry cannot be read."""
        try:
            return [(rec.name, rec.run_dir) for rec in self.registry.list()]
        except Exception:
            log.exception("could not read the run registry for names")
            return []

    def _launch(self, run_dir: Path, args: list[str]) -> RunProcess:
        old = self._procs.get(str(run_dir))
        if old is not None and old.is_running() and old.is_alive():
            raise RuntimeError(f"run {run_dir} is still training; stop it first")
        proc = self._adopt(RunProcess(run_dir, self))
        plain = args[:2] == ["-m", "studio.worker"]  # accelerate launches start their own processes
        pid = self.standby.hand_over(args[2:]) if plain and self.standby is not None else None
        if pid:
            proc.take_over(pid)
        else:
            proc.launch(args)
        self._record_start(run_dir, proc.pid)
        self.run_started.emit(proc)
        return proc

    def _adopt(self, proc: RunProcess) -> RunProcess:
        self._procs[proc.run_dir] = proc
        proc.finished.connect(self._on_finished)
        return proc

    # -- a worker started ahead of time ------------------------------------------------------

    def enable_standby(self) -> None:
        """Keep a worker that has done its imports waiting for the next run (unless
        ``STUDIO_STANDBY=0``); the window calls this once it has started."""
        self._standby_on = standby_wanted()
        self._refill_standby()

    def _refill_standby(self) -> None:
        """A fresh standby when the last one was used, once no run is training."""
        if not self._standby_on or self.live_runs():
            return
        if self.standby is not None and not self.standby.used and self.standby.is_alive():
            return
        try:
            self.standby = StandbyWorker()
        except OSError as exc:
            log.warning("could not start a standby worker (runs start from scratch): %s", exc)
            self.standby = None

    def close_standby(self) -> None:
        """The window is closing: the unused standby exits (a run it took goes on)."""
        self._standby_on = False
        if self.standby is not None:
            self.standby.close()

    # -- following --------------------------------------------------------------------------

    def reattach(self) -> list[RunProcess]:
        """Follow every registered run still training (its worker alive), e.g. after a restart."""
        self.registry.refresh_status()  # settles runs whose worker died while the window was closed
        found = []
        for rec in reversed(self.registry.list()):  # oldest first: the newest is started (and shown) last
            if rec.status == "running" and runs.pid_alive(rec.pid) and rec.run_dir not in self._procs:
                proc = self._adopt(RunProcess(rec.run_dir, self))
                proc.follow(rec.pid)
                found.append(proc)
                self.run_started.emit(proc)
        if found:
            log.info("reattached to %d live run(s)", len(found))
        return found

    def process(self, run_dir: str | Path) -> RunProcess | None:
        """The process followed for ``run_dir``, if any."""
        return self._procs.get(str(run_dir))

    def open_run(self, run_dir: str | Path) -> RunProcess:
        """The followed process of a run, following it now if nobody does (live or finished)."""
        proc = self._procs.get(str(run_dir))
        if proc is None:
            rec = self.registry.find(run_dir)
            pid = rec.pid if rec is not None and rec.status == "running" else None
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
        if outcome.final_event is None:  # died without a word: only the window can record it
            self._record(Path(outcome.run_dir), status="failed", error=outcome.error, hint=outcome.hint)
        else:
            self.runs_changed.emit()
        self.run_finished.emit(outcome)
        self._refill_standby()

    def _record_start(self, run_dir: Path, pid: int | None) -> None:
        """The row reads running at once; a resumed run keeps its first start and time trained."""
        try:
            rec = self.registry.find(run_dir)
            part = segment_start(dataclasses.asdict(rec) if rec else {}, time.time())
        except Exception:
            log.exception("could not read the registry for %s", run_dir)
            part = {"ended": None}
        self._record(run_dir, status="running", pid=pid, error="", hint="", **part)

    def _record(self, run_dir: Path, **fields) -> None:
        """Update the registry row of ``run_dir``; a registry problem never breaks the window."""
        try:
            rec = self.registry.find(run_dir)
            if rec is not None:
                self.registry.update(rec.id, **fields)
        except Exception:
            log.exception("could not update the registry for %s", run_dir)
        self.runs_changed.emit()


def default_run_name(cfg: configmod.RunConfig) -> str:
    """The name of a run not named by the person: model folder, method and objective."""
    return f"{Path(cfg.model.path).name or 'model'}-{cfg.method.name}-{cfg.train.objective}"


#: Settings named first when two runs would have the same name: what people change most.
NAME_FIRST = ("train.objective", "method.name", "data.train", "model.path", "train.learning_rate")


def distinct_name(cfg: configmod.RunConfig, named_runs: list[tuple[str, str]]) -> str:
    """A run name no registered run has, saying how this run differs from the last one so named.

    ``demo-lora`` twice, the second with DPO, gives ``demo-lora (objective dpo)``; the same
    settings again give ``demo-lora #2``. Runs compared side by side can then be told apart.
    """
    base = cfg.name or default_run_name(cfg)
    taken = {name for name, _ in named_runs}
    if base not in taken:
        return base
    previous = next(run_dir for name, run_dir in named_runs if name == base)  # newest first
    name = base
    changes = _differences(cfg, Path(previous) / "config.yaml")
    if changes:
        name = f"{base} ({', '.join(changes)})"
    number = 2
    while name in taken:
        name, number = f"{base} #{number}", number + 1
    return name


def _differences(cfg: configmod.RunConfig, previous_config: Path, most: int = 2) -> list[str]:
    """``field value`` for the settings of ``cfg`` that differ from a saved config (at most ``most``)."""
    try:
        old = configmod.load(previous_config)
    except Exception:  # an unreadable old config: the run is then told apart by number
        return []
    changed = changed_fields(cfg, old)
    keys = [k for k in changed if k != "name"]
    keys.sort(key=lambda k: (NAME_FIRST.index(k) if k in NAME_FIRST else len(NAME_FIRST), k))
    words = [f"{_setting_word(k)} {_short(changed[k])}" for k in keys[:most]]
    return words + ([f"+{len(keys) - most} more"] if len(keys) > most else [])


def _setting_word(key: str) -> str:
    """``train.learning_rate`` -> ``learning_rate``; ``method.name`` -> ``method``."""
    section, field = key.split(".", 1)
    return section if field == "name" else field


def _short(value: object) -> str:
    """A setting's value as a name shows it: file names without folders, lists joined."""
    if isinstance(value, str) and ("/" in value or "\\" in value):
        return Path(value).stem
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value))
    return str(value)


def _accelerate_args(cfg: configmod.RunConfig, run_dir: Path, processes: int, cpu: bool) -> list[str]:
    """``-m accelerate.commands.launch ...``: the launch command studio.core.launch writes, run
    with this Python (so the worker gets the same environment as the window)."""
    from studio.core.launch import launch_commands  # light: yaml and the core config only

    command = shlex.split(launch_commands(cfg, run_dir, gpus_per_node=processes, cpu=cpu)[0])
    return ["-m", "accelerate.commands.launch", *command[2:]]
