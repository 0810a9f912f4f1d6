"""A worker started ahead of time: imports done, waiting for the one run it will train.

``python -m studio.worker.standby FOLDER --parent PID``

Starting a worker costs seconds before any training happens: the interpreter, then torch,
transformers, PEFT, accelerate and TensorBoard (about 8 s of a 2-core machine). The window
starts one of these while the person is still choosing settings, so pressing Train hands the
run to a process that is already warm. The hand-over goes through files in ``FOLDER``:

* the standby writes ``ready`` once its imports are done;
* the window writes ``request.json`` (``{"args": [RUN_DIR, "--resume", ...]}``, the arguments
  of ``python -m studio.worker``), renamed into place so it is never read half-written;
* the standby renames it to ``taken``, points its stderr at ``RUN_DIR/worker.log`` and trains
  exactly as ``python -m studio.worker`` would, then exits: it is never used for two runs.

The standby was started in its own session by the window, so the run outlives the window as
any other run does, and the window follows it through ``events.jsonl`` as usual. With no run
to train, it exits as soon as the window that started it is gone (or ``quit`` appears).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from studio.worker import runtime_env

#: Modules a run needs whatever its method; importing them is the work done ahead of time.
PRELOAD = ("torch", "transformers", "accelerate", "peft", "torch.utils.tensorboard",
           "transformers.models.llama.modeling_llama", "studio.worker.context", "studio.worker.methods",
           "studio.worker.device", "studio.worker.loggers", "studio.worker.recipes.sft", "trl")
#: How often the standby looks for a request (a stat call: costs nothing measurable).
POLL_S = 0.02
READY, REQUEST, TAKEN, QUIT = "ready", "request.json", "taken", "quit"


def preload(names: tuple[str, ...] = PRELOAD) -> float:
    """Import what training needs and run one tiny backward pass; returns the seconds it took.

    The backward pass makes torch set up its autograd engine and CPU kernels now rather than
    during the run's first step.
    """
    started = time.perf_counter()
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional library (trl for SFT-only installs): the run reports it
            pass
    import torch

    weight = torch.ones(8, 8, requires_grad=True)
    (torch.ones(4, 8) @ weight).sum().backward()
    return time.perf_counter() - started


#: The model loaded once ahead of time: transformers and PEFT do a second of one-off work on
#: their first load (lazy modules, registries), whatever the model.
WARM_UP_PRESET = "resources/presets/demo.yaml"


def warm_up_model() -> None:
    """Load the demo model with its preset's method and run one forward and backward pass, then
    drop it: the run's own load and first step then skip the one-off work. Optional: skipped
    quietly when the demo is not installed."""
    try:
        import torch

        from studio.core import config as configmod
        from studio.core.models import resolve_config_paths, resource_path
        from studio.worker.methods import load_model

        cfg = resolve_config_paths(configmod.load(resource_path(WARM_UP_PRESET)))
        model = load_model(cfg, Path(cfg.model.path), torch.device("cpu"), "fp32")
        ids = torch.arange(1, 17).unsqueeze(0)
        model(input_ids=ids, labels=ids).loss.backward()
        del model
    except Exception as exc:  # the demo is missing or unusable: the run just does the work itself
        print(f"standby: no warm-up load ({exc})", file=sys.stderr)


def wait_for_run(folder: Path, parent: int) -> list[str] | None:
    """The worker arguments of the run handed over, or ``None`` when the window went away."""
    from studio.core.runs import pid_alive

    request, checked = folder / REQUEST, 0.0
    while True:
        if request.exists():
            taken = folder / TAKEN
            request.rename(taken)
            args = [str(a) for a in json.loads(taken.read_text(encoding="utf-8"))["args"]]
            shutil.rmtree(folder, ignore_errors=True)  # the window leaves a used folder to us
            return args
        if (folder / QUIT).exists():
            shutil.rmtree(folder, ignore_errors=True)
            return None
        if time.monotonic() - checked > 1.0:  # the parent check reads /proc: once a second is plenty
            checked = time.monotonic()
            if not pid_alive(parent):
                shutil.rmtree(folder, ignore_errors=True)
                return None
        time.sleep(POLL_S)


def attach_log(run_dir: Path) -> None:
    """Point stderr (tracebacks, library messages) at the run's worker.log, as a fresh worker has it."""
    sys.stderr.flush()
    fd = os.open(run_dir / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.worker.standby", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="hand-over folder (ready, request.json, taken)")
    parser.add_argument("--parent", type=int, required=True, help="the window's process id")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    runtime_env.apply()  # as python -m studio.worker does, before torch loads
    started = time.perf_counter()
    preload()
    warm_up_model()
    seconds = round(time.perf_counter() - started, 3)
    (folder / (READY + ".tmp")).write_text(json.dumps({"pid": os.getpid(), "preload_s": round(seconds, 3)}))
    os.replace(folder / (READY + ".tmp"), folder / READY)
    worker_args = wait_for_run(folder, args.parent)
    if worker_args is None:
        return 0
    received = time.time()
    attach_log(Path(worker_args[0]))
    os.chdir(worker_args[0])
    from studio.worker import main as worker_main

    worker_main.STARTUP.update(standby=True, run_received=received, preload_s=round(seconds, 3))
    return worker_main.main(worker_args)


if __name__ == "__main__":
    sys.exit(main())
