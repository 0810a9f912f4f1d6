"""``studio train``: validate a config, create the run folder, run the worker, show progress.

::

    studio train CONFIG.yaml [--run-dir DIR] [section.field=value ...]
    studio train --resume RUN_DIR [--from CHECKPOINT]
    studio train CONFIG.yaml --init-from CHECKPOINT      # a new run from a checkpoint's weights
    studio train CONFIG.yaml --dry-run
    studio train CONFIG.yaml --print-launch-command --nodes N --gpus-per-node M

The worker runs as a child process (``python -m studio.worker RUN_DIR``) so that a crash in
training can never take the command down without a final status. Ctrl-C reaches both: the
worker finishes its step, saves a checkpoint and reports "stopped".
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from studio.core import config as configmod
from studio.core.errors import RunError, StudioError, disk_error
from studio.core.memory import trainable_text
from studio.core.models import resolve_config_paths
from studio.core.protocol import OBJECTIVE_METRICS, LineReader, silence

#: Config fields that name files; made absolute so the run folder works from anywhere.
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="run configuration (YAML), e.g. resources/presets/demo.yaml")
    parser.add_argument("overrides", nargs="*", metavar="section.field=value",
                        help="override config fields, e.g. train.learning_rate=1e-4 method.name=dora")
    parser.add_argument("--run-dir", help="run folder to create (default: <user data>/runs/<name>-<time>)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped or failed run")
    parser.add_argument("--from", dest="from_checkpoint", metavar="CHECKPOINT",
                        help="with --resume: the checkpoint folder (default: the latest)")
    parser.add_argument("--init-from", metavar="CHECKPOINT",
                        help="start a new run from this checkpoint's trainable weights (a checkpoint folder, or a run "
                             "folder for its latest) with a fresh optimizer, schedule and data order: for settings a "
                             "resume cannot continue with; kept in config.yaml as model.init_from")
    parser.add_argument("--dry-run", action="store_true", help="print the preflight report (memory, lints) and exit")
    parser.add_argument("--print-launch-command", action="store_true",
                        help="print the accelerate launch command for several GPUs/nodes and exit")
    parser.add_argument("--nodes", type=int, default=1, help="with --print-launch-command: machines")
    parser.add_argument("--gpus-per-node", type=int, default=1, help="with --print-launch-command: GPUs per machine")
    parser.add_argument("--json", action="store_true", help="print the worker's raw JSON events instead of a summary")
    _accept_late_overrides(parser)


def _accept_late_overrides(parser: argparse.ArgumentParser) -> None:
    """Let ``key=value`` overrides come after options too (``CONFIG --run-dir D a.b=1``).

    argparse fills both positionals from the first run of them, so an override after an
    option would be "unrecognized"; here such leftovers that look like overrides join them.
    """
    parse_known = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        ns, extras = parse_known(args, namespace)
        late = [a for a in extras if "=" in a and not a.startswith("-")]
        ns.overrides = list(getattr(ns, "overrides", None) or []) + late
        return ns, [a for a in extras if a not in late]

    parser.parse_known_args = parse_known_args


def run(args: argparse.Namespace) -> int:
    if args.resume:
        if args.init_from:
            raise StudioError("--init-from starts a new run and --resume continues one; give only one",
                              "to train with changed settings from a checkpoint's weights: studio train CONFIG "
                              "--init-from CHECKPOINT")
        return _resume(args)
    if not args.config:
        raise StudioError("no config file given", "pass one, e.g. studio train resources/presets/demo.yaml")
    cfg = configmod.load(args.config, args.overrides, check_files=True)
    resolve_config_paths(cfg)  # the worker runs in its run folder: paths must be absolute
    if args.init_from:
        cfg.model.init_from = args.init_from
    from studio.core.resume_check import check_init

    check_init(cfg)  # before a run folder exists: a checkpoint whose weights cannot fit is refused here
    if args.dry_run:
        return _dry_run(cfg)
    from studio.core.data_fit import check_config

    check_config(cfg)  # an objective the data cannot train stops here, before a run folder exists
    run_dir = create_run_dir(cfg, args.run_dir)
    if args.print_launch_command:
        return _print_launch(cfg, run_dir, args.nodes, args.gpus_per_node)
    print(f"run folder: {run_dir}", file=sys.stderr)
    if cfg.model.init_from:
        print(f"trainable weights start from {cfg.model.init_from}; optimizer, schedule and data order start fresh",
              file=sys.stderr)
    return run_worker(run_dir, raw=args.json)


def default_name(cfg: configmod.RunConfig) -> str:
    return cfg.name or f"{Path(cfg.model.path).name or 'model'}-{cfg.method.name}-{cfg.train.objective}"


def create_run_dir(cfg: configmod.RunConfig, run_dir: str | None = None) -> Path:
    """Make the run folder, write the resolved config.yaml and register the run."""
    from studio.cli.runs import open_registry
    from studio.core.runs import new_run_dir

    cfg.name = default_name(cfg)
    path = Path(run_dir) if run_dir else new_run_dir(cfg.name)
    if (path / "config.yaml").exists():
        raise RunError(f"{path} already holds a run", f"continue it with studio train --resume {path}, "
                       "or pick another --run-dir")
    registry = open_registry()  # before anything is written: a failure leaves nothing to clean up
    try:
        path.mkdir(parents=True, exist_ok=True)
        configmod.save(cfg, path / "config.yaml")
    except OSError as exc:
        raise disk_error(path, exc, "create the run folder", then="or pick another --run-dir") from None
    try:
        registry.add(path, cfg, cfg.name)
    except (OSError, sqlite3.Error) as exc:
        (path / "config.yaml").unlink(missing_ok=True)  # so that trying again is not "already holds a run"
        raise RunError(f"could not register the run in {registry.path}: {exc}",
                       f"make {registry.path.parent} writable or set STUDIO_HOME to another folder, "
                       "then run the same command again") from None
    return path.resolve()


def run_worker(run_dir: Path, resume: str | None = None, raw: bool = False) -> int:
    """Run ``python -m studio.worker`` on ``run_dir``, printing progress; returns its exit code.

    Ctrl-C, SIGTERM and SIGHUP (the terminal closed) all end in the worker's graceful stop: the
    terminal's Ctrl-C and hang-up reach the worker directly, and a SIGTERM or SIGHUP sent to this
    command alone is passed on to it. This command then keeps reading until the worker has saved
    a checkpoint and ended, printing where it still can.
    """
    cmd = [sys.executable, "-m", "studio.worker", str(run_dir)]
    if resume:
        cmd += ["--resume", resume]
    # No stdin: nothing in training may wait for an answer typed into the terminal.
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, bufsize=1)
    printer = ProgressPrinter(raw)
    previous = _pass_stop_signals_to(proc)
    try:
        while True:
            try:
                for line in proc.stdout:
                    printer.feed(line)
                break
            except KeyboardInterrupt:
                # The terminal sent SIGINT to the worker too; keep reading until it has saved and stopped.
                _say("\nstopping: the worker finishes its step and saves a checkpoint (Ctrl-C again to abort)")
        printer.flush()
        return proc.wait()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _pass_stop_signals_to(proc: subprocess.Popen) -> dict:
    """SIGTERM/SIGHUP to this command: ask the worker to stop (it saves a checkpoint first)."""
    def handler(signum, _frame):
        _say(f"\n{signal.Signals(signum).name}: the worker finishes its step, saves a checkpoint and stops")
        try:
            proc.send_signal(signal.SIGTERM)
        except OSError:
            pass

    names = ("SIGTERM", "SIGHUP")
    return {sig: signal.signal(sig, handler) for sig in (getattr(signal, n) for n in names if hasattr(signal, n))}


def _say(text: str) -> None:
    """Print to stderr unless the terminal is gone."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        silence(sys.stderr)


def _objective(numbers: dict) -> str:
    """``"  margin 0.250  ranked right 0.750"``: how a DPO, KTO, ORPO, reward or GRPO run is going."""
    return "".join(f"  {short} {numbers[key]:.3f}" for key, (short, _) in OBJECTIVE_METRICS.items()
                   if isinstance(numbers.get(key), (int, float)))


class ProgressPrinter:
    """Worker events -> one readable line each (or the raw JSON with ``--json``)."""

    def __init__(self, raw: bool = False) -> None:
        self.raw = raw
        self.reader = LineReader()
        self.max_steps = 0
        self.gone = False

    def feed(self, chunk: str) -> None:
        for event in self.reader.feed(chunk):
            self.show(event)

    def flush(self) -> None:
        for event in self.reader.flush():
            self.show(event)

    def show(self, event: dict) -> None:
        text = json.dumps(event, ensure_ascii=False) if self.raw else self.describe(event)
        if text and not self.gone:
            try:
                print(text, flush=True)
            except (OSError, ValueError):  # the terminal closed: the run goes on, events.jsonl has it all
                self.gone = True
                silence(sys.stdout)

    def describe(self, e: dict) -> str | None:
        kind = e.get("type")
        if kind == "started":
            self.max_steps = e["max_steps"]
            return (f"started: {e['config']['method']['name']} {e['config']['train']['objective']} on {e['device']} "
                    f"({e.get('precision', '')}), {trainable_text(e['params_trainable'], e['params_total'])}, "
                    f"{e['train_rows']} train / {e['eval_rows']} eval rows, {e['max_steps']} steps")
        if kind == "step":
            return (f"step {e['step']}/{self.max_steps}  loss {e['loss']:.4f}{_objective(e)}  "
                    f"lr {e['learning_rate']:.2e}  {e['tokens_per_second']:.0f} tok/s  {e['memory_mib']:.0f} MiB")
        if kind == "eval":
            extra = f"  general {e['general_loss']:.4f}" if e.get("general_loss") is not None else ""
            metrics = e.get("metrics") or {}
            # Per-task scores (BLEU, ROUGE, F1...) in full; of a TRL objective's flat numbers, the
            # ones that say how it is going (the rest are in events.jsonl and TensorBoard).
            tasks = {k: v for k, v in metrics.items() if isinstance(v, dict)}
            ppl = f"  perplexity {e['perplexity']:.2f}" if e.get("perplexity") is not None else ""
            return (f"eval at step {e['step']}: loss {e['eval_loss']:.4f}{ppl}{extra}{_objective(metrics)}"
                    + (f"  {json.dumps(tasks)}" if tasks else ""))
        if kind == "checkpoint":
            return f"checkpoint: {e['path']}"
        if kind == "sample":
            return f"sample at step {e['step']}: {e['prompt']!r} -> {e['text']!r}"
        if kind == "warning":
            return f"warning [{e['code']}]: {e['message']}"
        if kind == "finished":
            if e["status"] == "failed":
                return f"finished: failed\nerror: {e.get('error')}\nhint: {e.get('hint')}"
            return f"finished: {e['status']}" + (f" (final: {e['final_dir']})" if e.get("final_dir") else "")
        if kind == "log":
            return e.get("text")
        return None


def _resume(args: argparse.Namespace) -> int:
    run_dir = Path(args.resume).resolve()
    if not (run_dir / "config.yaml").exists():
        raise RunError(f"{run_dir} is not a run folder (no config.yaml)", "pass the folder studio train created")
    from studio.cli.runs import open_registry
    from studio.core.runs import pid_alive

    rec = open_registry().find(run_dir)
    if rec and rec.status == "running" and pid_alive(rec.pid):
        raise RunError(f"{run_dir} is still training (worker pid {rec.pid})", "stop it first, then resume")
    print(f"resuming {run_dir}", file=sys.stderr)
    _check_changes(run_dir, args.from_checkpoint)
    return run_worker(run_dir, resume=args.from_checkpoint or "latest", raw=args.json)


def _check_changes(run_dir: Path, checkpoint: str | None) -> None:
    """Refuse config edits the checkpoint cannot continue with; say which edits apply from now."""
    from studio.core.resume_check import check_resume

    text = check_resume(run_dir, checkpoint).announcement()
    if text:
        print(text, file=sys.stderr)


def _dry_run(cfg: configmod.RunConfig) -> int:
    try:
        from studio.core import preflight
    except ImportError:
        print("the preflight report is not available in this Studio build", file=sys.stderr)
        return 1
    report = preflight.report(cfg)
    print(report.text())
    return 1 if getattr(report, "errors", None) else 0


def _print_launch(cfg: configmod.RunConfig, run_dir: Path, nodes: int, gpus_per_node: int) -> int:
    try:
        from studio.core.launch import launch_commands
    except ImportError:
        print("multi-GPU launch commands are not available in this Studio build", file=sys.stderr)
        return 1
    for line in launch_commands(cfg, run_dir, nodes, gpus_per_node):
        print(line)
    return 0
