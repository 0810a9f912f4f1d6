"""Where a run's checkpoints are, for every process that needs to know (worker, CLI, window).

A checkpoint is a folder ``checkpoints/step-NNNNNN`` that is complete once its ``state.json``
exists (it is written last); ``checkpoints/latest`` names the newest. Writing them is the
worker's business (:mod:`studio.worker.checkpoint`).
"""

from __future__ import annotations

from pathlib import Path

from studio.core.errors import RunError

LATEST = "latest"
_PREFIX = "step-"


def complete_checkpoints(checkpoints_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders, oldest first (by step)."""
    root = Path(checkpoints_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX) and (p / "state.json").exists()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(checkpoints_dir: str | Path) -> Path | None:
    """The checkpoint ``latest`` points at; the newest complete one if the pointer is missing or stale."""
    root = Path(checkpoints_dir)
    pointer = root / LATEST
    if pointer.exists():
        target = root / pointer.read_text(encoding="utf-8").strip()
        if (target / "state.json").exists():
            return target
    done = complete_checkpoints(root)
    return done[-1] if done else None


def resolve_resume(run_dir: Path, resume: str | None) -> Path | None:
    """The checkpoint folder to resume from, or ``None``."""
    if resume is None:
        return None
    if resume != "latest":
        path = Path(resume)
        path = path if path.is_absolute() or path.exists() else run_dir / "checkpoints" / resume
        if not path.is_dir():
            raise RunError(f"checkpoint {resume} does not exist", f"pick a folder under {run_dir / 'checkpoints'}")
        return path
    latest = latest_checkpoint(run_dir / "checkpoints")
    if latest is None:
        raise RunError(f"{run_dir} has no complete checkpoint to resume from",
                       "start the run again with studio train CONFIG; a checkpoint is written every "
                       "output.save_every_steps steps and when a run is stopped")
    return latest
