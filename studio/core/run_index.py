"""What the run registry is an index of: run folders, and how to read a row back out of one.

The registry database only speeds up listing; every fact in a row is also in the run's folder
(``config.yaml``, ``events.jsonl``, ``worker.lock``). So when the database is damaged it is moved
aside and rebuilt from the folders: those under the runs root, and every folder ever registered
(``run-folders.txt`` beside the database, one path a line, appended when a run is added, so
runs kept elsewhere with ``--run-dir`` are found too).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger("studio.runs")

FOLDER_LIST = "run-folders.txt"


def remember_folder(home: Path, run_dir: str) -> None:
    """Add a run folder to the list the registry is rebuilt from (best effort)."""
    try:
        with open(home / FOLDER_LIST, "a", encoding="utf-8") as fh:
            fh.write(run_dir + "\n")
    except OSError as exc:
        log.warning("could not add %s to %s: %s", run_dir, home / FOLDER_LIST, exc)


def known_folders(home: Path, runs_root: Path) -> list[Path]:
    """Every run folder that still exists: those listed, and those under ``runs_root``."""
    found: dict[str, Path] = {}
    try:
        listed = (home / FOLDER_LIST).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        listed = []
    candidates = [Path(line) for line in listed if line.strip()]
    if runs_root.is_dir():
        candidates += sorted(runs_root.iterdir())
    for folder in candidates:
        if (folder / "config.yaml").is_file():
            found.setdefault(str(folder.resolve()), folder.resolve())
    return list(found.values())


def row_from_folder(run_dir: Path) -> tuple[dict, dict]:
    """(registry fields, config mapping) of one run folder, read from its files."""
    import yaml

    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        cfg = None
    cfg = cfg if isinstance(cfg, dict) else {}
    fields = {"name": str(cfg.get("name") or run_dir.name), "created": (run_dir / "config.yaml").stat().st_mtime,
              "status": "created"}
    fields.update(_from_events(run_dir / "events.jsonl"))
    if fields["status"] == "running":
        fields["pid"] = _lock_pid(run_dir)  # refresh_status settles it when that worker is gone
    return fields, cfg


def segment_start(previous: dict, now: float) -> dict:
    """Fields that start another part of a run (a resume) at ``now``, given the row so far.

    ``started`` is the current part's start, ``first_started`` the run's first one, and
    ``trained_s`` the seconds trained in the parts before the current one.
    """
    started, ended = previous.get("started"), previous.get("ended")
    earlier = (previous.get("trained_s") or 0.0) + (max(ended - started, 0.0) if started and ended else 0.0)
    return {"started": now, "ended": None, "first_started": previous.get("first_started") or started or now,
            "trained_s": earlier}


def _from_events(path: Path) -> dict:
    fields: dict = {}
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except OSError:
        return fields
    with fh:
        for line in fh:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                _apply(fields, event)
    return fields


def _apply(fields: dict, e: dict) -> None:
    kind = e.get("type")
    if kind == "started":
        fields.update(segment_start(fields, e.get("time")))
        fields.update(status="running", error="", hint="", max_steps=e.get("max_steps"),
                      step=e.get("start_step", fields.get("step", 0)))
    elif kind == "step" and isinstance(e.get("step"), int):
        fields["step"] = e["step"]
    elif kind == "eval" and isinstance(e.get("eval_loss"), (int, float)):
        best = fields.get("best_eval_loss")
        fields.update(final_eval_loss=e["eval_loss"], best_eval_loss=e["eval_loss"] if best is None else
                      min(best, e["eval_loss"]))
    elif kind == "finished" and e.get("status") in ("completed", "stopped", "failed"):
        fields.update(status=e["status"], ended=e.get("time"), error=e.get("error") or "", hint=e.get("hint") or "")


def _lock_pid(run_dir: Path) -> int | None:
    try:
        pid = json.loads((run_dir / "worker.lock").read_text(encoding="utf-8")).get("pid")
    except (OSError, ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) else None
