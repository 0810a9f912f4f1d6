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
"""

from __future__ import annotations

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
        raise RunError(f"{run_dir / 'config.yaml'} differs from the config of checkpoint {folder.name} "
                       f"in settings a resume cannot continue with:\n{lines}",
                       "to continue this run, set them back in config.yaml; to train with the new settings, start a "
                       "new run (its optimizer, schedule and data order start fresh). A checkpoint's weights fit only "
                       "its model and method, and its optimizer state, schedule and data position only its data, "
                       "batch and optimizer settings")
    return check


def _flat(data: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and prefix == "":
            out.update(_flat(value, f"{path}."))
        else:
            out[path] = value
    return out
