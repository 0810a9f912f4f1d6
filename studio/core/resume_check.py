"""Resuming after the config changed: which edits a checkpoint can continue with, and which not.

A checkpoint carries the config that made it. Its weights fit only the same model and method;
its optimizer moments, learning-rate schedule and data position (epoch, batch index) fit only
the same data, batch, seed and optimizer settings. So when a run's ``config.yaml`` was edited
between stop and resume, Studio compares the two:

* **refused**: anything else that differs. The resume does not start; the message lists every
  difference (setting, checkpoint's value, value now) and says how to go on.
* **applied and announced**: settings that only say how the run is watched and kept
  (``eval.*``, ``output.*``, logging, device, precision, gradient checkpointing,
  ``distributed.*``), and, for SFT, the length of the run (``train.max_steps``, ``train.epochs``):
  the learning rate then continues from its value at the checkpoint and follows the schedule's
  shape over the steps that now remain (no jump; warmup is not repeated).

To train with refused settings, a **new run** starts from the checkpoint's weights
(``studio train CONFIG --init-from CHECKPOINT``, ``model.init_from``): only the trainable
weights are taken; the optimizer, schedule and data order start fresh, so only the settings
that decide the weights' shapes must match (:func:`check_init`).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core import config as configmod
from studio.core.checkpoints import resolve_resume
from studio.core.errors import RunError, StudioError

#: Settings that change how a run is watched, logged or kept, not what it computes from the checkpoint.
FREE = ("eval.", "output.", "distributed.", "train.logging_steps", "train.device", "train.precision",
        "train.gradient_checkpointing", "data.max_skipped")
#: The run's length: SFT continues the schedule over the new length; other objectives refuse it.
LENGTH = ("train.max_steps", "train.epochs")


@dataclass
class ResumeCheck:
    """The differences between a checkpoint's config and the run's config now.

    Attributes:
        applied: (setting, checkpoint's value, value now) that the resume takes over.
        refused: (setting, checkpoint's value, value now) the checkpoint cannot continue with.
    """

    applied: list[tuple[str, Any, Any]] = field(default_factory=list)
    refused: list[tuple[str, Any, Any]] = field(default_factory=list)

    @property
    def length_changed(self) -> bool:
        return any(path in LENGTH for path, _, _ in self.applied)

    def announcement(self) -> str:
        """One line per applied change (empty when nothing changed)."""
        if not self.applied:
            return ""
        lines = [f"  {path}: {old!r} -> {new!r}" for path, old, new in self.applied]
        extra = ("\n  the learning rate continues from its value at the checkpoint and follows the schedule over "
                 "the steps that now remain") if self.length_changed else ""
        return "settings changed since the checkpoint, applied from now on:\n" + "\n".join(lines) + extra


def compare(checkpoint_cfg: configmod.RunConfig, cfg: configmod.RunConfig) -> ResumeCheck:
    """Sort every setting that differs into applied or refused (see the module docstring)."""
    old, new = _flat(configmod.to_dict(checkpoint_cfg)), _flat(configmod.to_dict(cfg))
    check = ResumeCheck()
    for path in sorted(set(old) | set(new)):
        if old.get(path) == new.get(path) or path == "name":  # a branch is renamed; nothing to announce
            continue
        change = (path, old.get(path), new.get(path))
        free = path.startswith(FREE) or (path in LENGTH and cfg.train.objective == "sft")
        (check.applied if free else check.refused).append(change)
    return check


def check_resume(run_dir: str | Path, checkpoint: str | Path | None = None) -> ResumeCheck:
    """Compare the config of ``checkpoint`` (default: the run's latest) with the run's config.yaml now.

    A run folder or checkpoint that cannot be read gives an empty check: resuming reports those.

    Raises:
        RunError: some change cannot continue from this checkpoint; the message lists each.
    """
    run_dir = Path(run_dir)
    try:
        folder = resolve_resume(run_dir, str(checkpoint) if checkpoint else "latest")
        cfg = configmod.load(run_dir / "config.yaml")
        saved = configmod.load(folder / "config.yaml") if (folder / "config.yaml").is_file() else None
    except StudioError:
        return ResumeCheck()
    check = compare(saved, cfg) if saved else ResumeCheck()
    if check.refused:
        lines = "\n".join(f"  - {p}: {old!r} in the checkpoint, {new!r} now" for p, old, new in check.refused)
        shapes = shape_differences(saved, cfg)
        config = shlex.quote(str(run_dir / "config.yaml"))
        branch = (f"the weights' shapes differ ({', '.join(p for p, _, _ in shapes)}), so a new run starts from the "
                  f"model's own weights: studio train {config}" if shapes else
                  "to train with the new settings, start a new run from this checkpoint's weights (its optimizer, "
                  f"schedule and data order start fresh): studio train {config} --init-from "
                  f"{shlex.quote(str(folder))}")
        raise RunError(f"{run_dir / 'config.yaml'} differs from the config of checkpoint {folder.name} "
                       f"in settings a resume cannot continue with:\n{lines}",
                       "to continue this run, set them back in config.yaml (a checkpoint's optimizer state, schedule "
                       f"and data position fit only its data, batch and optimizer settings); {branch}")
    return check


#: Settings that decide the shapes and names of the trainable weights (the method's own ones
#: only count for that method).
SHAPES = {"model.path": None, "method.name": None, "method.rank": ("lora", "dora", "qlora"),
          "method.target_modules": ("lora", "dora", "qlora"),
          "method.num_virtual_tokens": ("prefix", "prompt", "ptuning"), "method.freeze_trainable_layers": ("freeze",)}
#: Objectives whose model is not the causal LM a checkpoint's weights belong to.
NO_INIT = {"reward": "a reward model trains a new score head on a sequence classifier"}


def shape_differences(checkpoint_cfg: configmod.RunConfig, cfg: configmod.RunConfig) -> list[tuple[str, Any, Any]]:
    """(setting, checkpoint's value, value now) of the settings that decide the trainable weights' shapes."""
    old, new = _flat(configmod.to_dict(checkpoint_cfg)), _flat(configmod.to_dict(cfg))
    return [(path, old.get(path), new.get(path)) for path, methods in SHAPES.items()
            if old.get(path) != new.get(path) and (methods is None or cfg.method.name in methods)]


def init_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder ``--init-from`` names: a checkpoint folder, or a run folder (its latest).

    Raises:
        RunError: naming the path, when it holds no checkpoint with trainable weights.
    """
    path = Path(path).expanduser().resolve()
    if path.is_dir() and (path / "config.yaml").is_file() and not (path / "trainable.safetensors").exists():
        path = resolve_resume(path, "latest")  # a run folder: its newest complete checkpoint
    if not (path / "trainable.safetensors").is_file() or not (path / "config.yaml").is_file():
        raise RunError(f"model.init_from: {path} is not a checkpoint (it needs trainable.safetensors and "
                       "config.yaml)", "give a folder under a run's checkpoints/ (e.g. RUN/checkpoints/step-000010), "
                       "or the run folder to take its latest checkpoint")
    return path


def check_init(cfg: configmod.RunConfig) -> None:
    """Check that ``cfg.model.init_from`` names a checkpoint whose weights fit ``cfg``; make it absolute.

    The model itself is compared tensor by tensor when the worker loads the weights (another
    copy of the same model may live in another folder).

    Raises:
        RunError: the objective cannot start from a checkpoint, or a method setting differs.
    """
    if not cfg.model.init_from:
        return
    if cfg.train.objective in NO_INIT:
        raise RunError(f"model.init_from cannot be used with train.objective={cfg.train.objective}: "
                       f"{NO_INIT[cfg.train.objective]}", "start it without --init-from (model.init_from)")
    folder = init_checkpoint(cfg.model.init_from)
    cfg.model.init_from = str(folder)
    saved = configmod.load(folder / "config.yaml")
    differ = [d for d in shape_differences(saved, cfg) if d[0] != "model.path"]
    if differ:
        raise RunError(f"the weights of checkpoint {folder} do not fit this run: {shape_text(differ)}",
                       "a new run starts from a checkpoint's weights only with the same method and shapes: set "
                       "these as in the checkpoint, or start without --init-from (model.init_from)")


def shape_text(differences: list[tuple[str, Any, Any]]) -> str:
    return "; ".join(f"{p} is {old!r} in the checkpoint and {new!r} now" for p, old, new in differences)


def _flat(data: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and prefix == "":
            out.update(_flat(value, f"{path}."))
        else:
            out[path] = value
    return out
