"""Checkpoints that a crash can never half-write, and everything needed for an exact resume.

A checkpoint folder ``checkpoints/step-000042/`` holds:

* ``trainable.safetensors`` - every trainable parameter by name (adapter or full weights);
* ``adapter/`` - for PEFT methods, the adapter in PEFT format (loadable on its own);
* ``optimizer.pt``, ``scheduler.pt`` - optimizer moments and the learning-rate schedule;
* ``rng.pt`` - Python, NumPy and torch (CPU and CUDA) random states, of every process when
  several trained the run (each resumes with its own: dropout masks continue exactly);
  stored as tensors, numbers and tuples only;
* ``state.json`` - step, data position (epoch + batch index), tokens seen, eval history;
* ``config.yaml`` - the configuration that produced it.

It is written into a hidden temporary folder, every file fsynced, then renamed into place
(rename is atomic), and only then is ``checkpoints/latest`` pointed at it. A crash at any
moment leaves the previous complete checkpoint and a correct ``latest``.

A checkpoint folder may come from anywhere (copied from a colleague, downloaded), so its
``.pt`` files are read with ``torch.load(weights_only=True)``: tensors, numbers, strings and
containers only, never an arbitrary pickled object (which could run code while loading).
``rng.pt`` files written before the NumPy state was stored as a tensor hold one NumPy array;
exactly the four NumPy names that rebuild it are allowed there, nowhere else.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.core.checkpoints import _PREFIX, LATEST, complete_checkpoints, latest_checkpoint  # noqa: F401
from studio.core.errors import RunError, disk_error

log = logging.getLogger("studio.worker")



@dataclass
class TrainState:
    """Where training stands: restored on resume so the run continues exactly.

    Attributes:
        step: optimizer steps done.
        epoch: the epoch the next batch comes from.
        batch_index: index (in that epoch's batch order) of the next micro-batch.
        tokens_seen: non-pad input tokens processed so far.
        eval_history: (step, eval loss, mean train loss since the previous eval) per evaluation.
        general_history: (step, general-text loss) per evaluation.
        best_eval_loss: lowest eval loss so far.
        best_eval_step: the step it was measured at (its checkpoint, if one was saved there, is
            never pruned).
        warned: warning codes already raised (so they are not repeated after a resume).
        recent_losses: step losses since the last evaluation (their mean is the eval event's
            ``train_loss``, so a resume does not change it).
        schedule: the learning-rate schedule once a resume changed the run's length
            (:mod:`studio.worker.schedule`); ``None`` while it is transformers' own.
    """

    step: int = 0
    epoch: int = 0
    batch_index: int = 0
    tokens_seen: int = 0
    eval_history: list = field(default_factory=list)
    general_history: list = field(default_factory=list)
    best_eval_loss: float | None = None
    best_eval_step: int | None = None
    warned: list = field(default_factory=list)
    recent_losses: list = field(default_factory=list)
    schedule: dict | None = None


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:06d}"


def save_checkpoint(checkpoints_dir: str | Path, model, optimizer, scheduler, state: TrainState,
                    config_yaml: str, keep: int = 0, rng_states: list[dict] | None = None,
                    weights: dict | None = None, optimizer_state: dict | None = None) -> Path:
    """Write one checkpoint atomically, point ``latest`` at it and prune old ones.

    Args:
        keep: newest checkpoints kept; 0 keeps all.
        rng_states: every process's :func:`rng_state`, by process index, when several train
            the run (the caller gathers them); default this process's alone.
        weights, optimizer_state: the trainable weights by name and the optimizer's state,
            when the caller gathered them from a sharded model; default read from ``model``
            and ``optimizer``.

    Returns:
        The checkpoint folder.
    """
    root = Path(checkpoints_dir)
    final = root / checkpoint_name(state.step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if weights is None:
        weights = {name: p.detach().to("cpu").contiguous() for name, p in model.named_parameters() if p.requires_grad}
    if optimizer_state is None:
        optimizer_state = optimizer.state_dict()
    doing = f"save checkpoint {final.name}"
    needed = checkpoint_bytes(weights, optimizer_state, peft=hasattr(model, "peft_config"))
    try:
        root.mkdir(parents=True, exist_ok=True)
        if shutil.disk_usage(root).free < needed:  # refuse before writing half of it
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(root))
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        _write_contents(tmp, model, weights, optimizer_state, scheduler, state, config_yaml, rng_states)
        _fsync_tree(tmp)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # no partial folder stays behind; the previous checkpoint is intact
        raise _write_failure(root, exc, doing, needed) from None
    if final.exists():  # re-saving the same step (stop right after a periodic save)
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    _write_pointer(root, final.name)
    best = () if state.best_eval_step is None else (checkpoint_name(state.best_eval_step),)
    prune(root, keep, protect=best)
    return final


def checkpoint_bytes(weights: dict, optimizer_state: dict, peft: bool = False) -> int:
    """About how many bytes a checkpoint of these tensors takes (the adapter copy included)."""
    import torch

    def size(value) -> int:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, dict):
            return sum(size(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return sum(size(v) for v in value)
        return 0

    weight_bytes = size(weights)
    return weight_bytes * (2 if peft else 1) + size(optimizer_state) + 2**20


def _write_failure(root: Path, exc: Exception, doing: str, needed: int) -> Exception:
    """A message naming the place for a checkpoint write that failed for lack of space or rights.

    safetensors and torch report a full disk in their own words (``IoError(Os { code: 28 ...``,
    ``PytorchStreamWriter failed writing file``); the free space left tells it apart.
    """
    text = str(exc)
    code = getattr(exc, "errno", None)
    if code is None and ("code: 28" in text or "No space left" in text or _nearly_full(root, needed)):
        code = errno.ENOSPC
    if code is None and ("code: 30" in text or "Read-only file system" in text):
        code = errno.EROFS
    if code is None:
        return exc
    return disk_error(root, OSError(code, os.strerror(code)), doing, needed=needed,
                      then="then resume with studio train --resume RUN_DIR (it continues from the last checkpoint)")


def _nearly_full(root: Path, needed: int) -> bool:
    try:
        return shutil.disk_usage(root).free < needed
    except OSError:
        return False


def _write_contents(folder: Path, model, weights: dict, optimizer_state: dict, scheduler, state: TrainState,
                    config_yaml: str, rng_states: list[dict] | None) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({name: t.contiguous() for name, t in weights.items()}, str(folder / "trainable.safetensors"))
    if hasattr(model, "peft_config"):
        # PEFT picks the adapter's tensors out of the weights given (a sharded model's own
        # parameters are slices that only the gathered copy makes whole).
        model.save_pretrained(str(folder / "adapter"), state_dict=weights)
    torch.save(optimizer_state, folder / "optimizer.pt")
    torch.save(scheduler.state_dict(), folder / "scheduler.pt")
    rng = rng_state()
    if rng_states and len(rng_states) > 1:
        rng["processes"] = rng_states
    torch.save(rng, folder / "rng.pt")
    (folder / "config.yaml").write_text(config_yaml, encoding="utf-8")
    # state.json last: a folder with it is complete even before the rename (belt and braces).
    (folder / "state.json").write_text(json.dumps(asdict(state), indent=1), encoding="utf-8")


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open directories; the rename is still atomic
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_pointer(root: Path, name: str) -> None:
    tmp = root / f".{LATEST}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / LATEST)


def prune(checkpoints_dir: str | Path, keep: int, protect: tuple[str, ...] = ()) -> None:
    """Delete all but the newest ``keep`` checkpoints and stale temp folders.

    Never deleted: the one ``latest`` names, and those named in ``protect`` (the checkpoint of
    the best evaluation, which the overfitting warning sends a person back to).
    """
    root = Path(checkpoints_dir)
    for tmp in root.glob(".tmp-*"):
        if not tmp.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(tmp, ignore_errors=True)
    if keep <= 0:
        return
    latest = latest_checkpoint(root)
    for old in complete_checkpoints(root)[:-keep]:
        if old != latest and old.name not in protect:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: str | Path, model, optimizer, scheduler, process_index: int = 0,
                    num_processes: int = 1, restore=None) -> TrainState:
    """Restore weights, optimizer, scheduler and random states; returns the training state.

    With several processes each takes its own random state back (dropout masks continue as
    in an uninterrupted run).

    Args:
        restore: called as ``restore(weights, optimizer_state)`` in place of copying them into
            ``model`` and ``optimizer`` (a sharded model takes its slices of the full state).

    Raises:
        RunError: when the checkpoint was written by another number of processes: an optimizer
            step covers ``batch_size`` rows on each process, so another count changes the
            batch and the place in the data.
    """
    folder = Path(folder)
    if not (folder / "state.json").exists():
        raise RunError(f"{folder} is not a complete checkpoint (no state.json)",
                       "pick another folder under checkpoints/, or omit --from to use the latest")
    # Every file is read before anything is restored: a refused file leaves the model untouched.
    optimizer_state = load_tensors(folder / "optimizer.pt")
    scheduler_state = load_tensors(folder / "scheduler.pt")
    rng = load_tensors(folder / "rng.pt", allow=_numpy_array_globals())
    written_by = _written_by(rng)
    if written_by != num_processes:
        raise RunError(f"{folder} was written by a run on {written_by} process(es) and this one has {num_processes}: "
                       "each optimizer step covers train.batch_size rows on every process, so another count would "
                       "change the batch and the place in the data",
                       f"resume with {written_by} process(es) (the launch command the run was started with), or "
                       "start a new run from this checkpoint's weights")
    if restore is not None:
        from safetensors.torch import load_file

        restore(load_file(str(folder / "trainable.safetensors")), optimizer_state)
    else:
        load_weights(folder, model)
        optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(scheduler_state)
    set_rng_state(_rng_for(rng, process_index))
    data = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    return TrainState(**{k: v for k, v in data.items() if k in TrainState.__dataclass_fields__})


def load_tensors(path: Path, allow: list | tuple = ()) -> Any:
    """Read a ``.pt`` file that may hold only tensors, numbers, strings and containers.

    Args:
        allow: further classes/functions the file may name (an exact list, for old formats).

    Raises:
        RunError: naming the file, when it is missing, damaged, or holds anything else (such a
            file is refused unread: unpickling it could run code).
    """
    import pickle

    import torch

    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"checkpoint file {path} is missing",
                       "resume from another folder under checkpoints/ (--from), or start the run again") from None
    except pickle.UnpicklingError as exc:
        # torch wraps every refusal in one error; a named global means a foreign object.
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found is None:
            raise _damaged(path, "not a file torch wrote") from None
        raise RunError(f"{path} holds a Python object ({found.group(1)}) where a checkpoint has only tensors and "
                       "numbers, so Studio refused to load it: unpickling it could run code",
                       "Studio's own checkpoints never hold such objects; if this folder came from elsewhere, do "
                       "not use it. Resume from another checkpoint (--from), or start the run again") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise _damaged(path, _first_line(exc)) from None


def _damaged(path: Path, why: str) -> RunError:
    return RunError(f"checkpoint file {path} is damaged and cannot be read ({why})",
                    "resume from an earlier folder under checkpoints/ (--from)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _numpy_array_globals() -> list:
    """What an ``rng.pt`` of earlier Studio versions needs: one uint32 NumPy array, nothing more."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core  # NumPy 2 renamed numpy.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load_weights(folder: str | Path, model) -> None:
    """Copy a checkpoint's trainable weights into ``model`` (nothing else is touched)."""
    import torch
    from safetensors.torch import load_file

    folder = Path(folder)
    weights = load_file(str(folder / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [name for name in weights if name not in params]
    if missing:
        raise RunError(f"checkpoint {folder} does not match this model: {missing[:3]} not found",
                       "resume with the same model and method the run was started with")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor.to(params[name].device))


def start_from(ctx, model):
    """A new run with ``model.init_from``: its trainable weights start from that checkpoint's.

    Only the weights are taken (the optimizer, schedule and data order start fresh); a resumed
    run takes its own checkpoint instead. Returns ``model``.

    Raises:
        RunError: the checkpoint's weights do not fit ``model`` (another model or method
            shape), naming the settings that differ.
    """
    import torch
    from safetensors.torch import load_file

    from studio.core import config as configmod
    from studio.core.resume_check import init_checkpoint, shape_differences, shape_text

    if not ctx.cfg.model.init_from or ctx.resume_from:
        return model
    folder = init_checkpoint(ctx.cfg.model.init_from)
    weights = load_file(str(folder / "trainable.safetensors"))
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    wrong = [f"{n} {tuple(weights[n].shape)} in the checkpoint, {tuple(params[n].shape)} here"
             for n in weights if n in params and weights[n].shape != params[n].shape]
    wrong += [f"{n} only in the checkpoint" for n in weights if n not in params]
    wrong += [f"{n} only in this run" for n in params if n not in weights]
    if wrong:
        settings = shape_differences(configmod.load(folder / "config.yaml"), ctx.cfg)
        named = (f"settings that differ: {shape_text(settings)}" if settings else
                 "the model has other layers or sizes (model.path)")
        raise RunError(f"the weights of checkpoint {folder} do not fit this run ({named}); {len(wrong)} tensor(s) "
                       f"differ, e.g. {wrong[0]}",
                       "start from a checkpoint of the same model and method shape, or without --init-from "
                       "(model.init_from)")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor.to(params[name].device))
    ctx.events.log(f"trainable weights start from checkpoint {folder} (optimizer, schedule and data order fresh)")
    return model


def rng_state() -> dict[str, Any]:
    """Every random state that influences training (dropout, shuffling helpers)."""
    import numpy as np
    import torch

    name, keys, pos, has_gauss, gauss = np.random.get_state()
    # NumPy's key array as a tensor: the file then loads with torch's weights-only reader as is.
    numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _written_by(saved: dict[str, Any]) -> int:
    """How many processes wrote a checkpoint's random states."""
    return len(saved.get("processes") or [saved])


def _rng_for(saved: dict[str, Any], process_index: int) -> dict[str, Any]:
    """The random state process ``process_index`` resumes with (its own, as it was saved)."""
    return (saved.get("processes") or [saved])[process_index]


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
