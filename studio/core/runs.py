"""Run folders and the SQLite run registry.

A run is a folder (``config.yaml``, ``events.jsonl``, ``worker.log``, ``checkpoints/``,
``final/``) plus one row in a registry database under the user data folder (overridable by
the ``STUDIO_HOME`` environment variable). The row says where the folder is, which process
trains it and how it ended, so the window can list runs without reading every folder.

Status is the truth: a row says ``running`` only while its worker process is alive;
:meth:`Registry.refresh_status` turns a run whose worker died without a ``finished`` event
into ``failed`` (killed, out of memory, machine rebooted).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sqlite3
import time
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core import run_index
from studio.core.errors import RunError, disk_error

log = logging.getLogger("studio.runs")

STATUSES = ("created", "running", "completed", "stopped", "failed")


def studio_home() -> Path:
    """Studio's user data folder: ``$STUDIO_HOME`` or the platform's user data dir."""
    env = os.environ.get("STUDIO_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("studio", appauthor=False))


def runs_root() -> Path:
    """Where run folders go unless ``--run-dir`` says otherwise."""
    return studio_home() / "runs"


def new_run_dir(name: str, root: str | Path | None = None) -> Path:
    """A fresh, not yet existing run folder ``<root>/<name>-<YYYYmmdd-HHMMSS>``."""
    root = Path(root) if root else runs_root()
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in (name or "run")).strip("-") or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{safe}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{safe}-{stamp}-{n}"
    return path


@dataclass
class RunRecord:
    """One registry row."""

    id: str
    name: str
    run_dir: str
    status: str = "created"
    method: str = ""
    objective: str = ""
    model: str = ""
    pid: int | None = None
    host: str = ""
    created: float = 0.0
    started: float | None = None
    ended: float | None = None
    first_started: float | None = None
    trained_s: float = 0.0
    step: int = 0
    max_steps: int | None = None
    final_eval_loss: float | None = None
    best_eval_loss: float | None = None
    error: str = ""
    hint: str = ""

    @property
    def is_active(self) -> bool:
        return self.status == "running"

    def duration_s(self, now: float | None = None) -> float | None:
        """Seconds trained over every start of the run (a resumed run's earlier parts included)."""
        end = self.ended or (now if self.status == "running" else None)
        if not self.started or not end:
            return None
        return (self.trained_s or 0.0) + max(end - self.started, 0.0)


_COLUMNS = [f.name for f in dataclasses.fields(RunRecord)]
_SQL_TYPES = {"pid": "INTEGER", "step": "INTEGER", "max_steps": "INTEGER", "created": "REAL", "started": "REAL",
              "ended": "REAL", "first_started": "REAL", "trained_s": "REAL", "final_eval_loss": "REAL",
              "best_eval_loss": "REAL"}


class Registry:
    """The run registry database.

    Args:
        path: the database file; default ``<studio_home>/runs.sqlite``.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else studio_home() / "runs.sqlite"
        #: What happened to a damaged registry when this opened it (shown by the CLI and window).
        self.notice = ""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            empty = self.path.exists() and self.path.stat().st_size == 0
            try:
                self._create()
            except sqlite3.DatabaseError as exc:
                if not _is_damage(exc):
                    raise
                self._move_aside(exc)
                self._create()
            if empty and not self.notice:  # an emptied file would silently forget every run
                self.notice = f"the run registry {self.path} was empty"
            if self.notice:
                self._rebuild(quiet=empty)
        except (OSError, sqlite3.Error) as exc:
            raise _unusable(self.path, exc) from None

    def _create(self) -> None:
        with self._connect() as db:
            cols = ", ".join(f"{c} {_SQL_TYPES.get(c, 'TEXT')}" for c in _COLUMNS if c != "id")
            db.execute(f"CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, {cols}, config TEXT)")
            db.execute("CREATE UNIQUE INDEX IF NOT EXISTS runs_dir ON runs(run_dir)")
            _add_missing_columns(db)
            db.execute("SELECT count(*) FROM runs").fetchone()  # reads a page: finds most damage

    def _move_aside(self, exc: sqlite3.Error) -> None:
        """Keep the damaged file (and its journal) under another name; a new one replaces it."""
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        for suffix in ("", "-journal", "-wal", "-shm"):
            try:
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
            except FileNotFoundError:
                pass  # no such journal, or another process moved it first
        self.notice = f"the run registry {self.path} was damaged ({exc}); it was kept as {aside.name}"

    def _rebuild(self, quiet: bool = False) -> None:
        """Register every run folder that still exists, reading each row from its files.

        Args:
            quiet: no notice when no folder was found (an empty file with nothing to forget).
        """
        folders = run_index.known_folders(self.path.parent, runs_root())
        if quiet and not folders:
            self.notice = ""
            return
        for folder in folders:
            fields, cfg = run_index.row_from_folder(folder)
            try:
                run_id = self.add(folder, cfg, fields["name"], remember=False)
            except sqlite3.IntegrityError:  # another process rebuilding at the same moment added it
                continue
            self.update(run_id, **fields)
        self.notice += f" and was rebuilt from {len(folders)} run folder(s); no run was lost"
        log.warning("%s", self.notice)

    def _connect(self) -> sqlite3.Connection:
        # Several processes (window, workers, CLI) write this file; wait for a lock instead of failing.
        db = sqlite3.connect(str(self.path), timeout=30)
        db.row_factory = sqlite3.Row
        return db

    def add(self, run_dir: str | Path, config: Any = None, name: str = "", remember: bool = True) -> str:
        """Register a run folder (or return the id it already has); returns the run id.

        Args:
            remember: also list the folder in ``run-folders.txt``, which a damaged registry is
                rebuilt from.
        """
        run_dir = str(Path(run_dir).resolve())
        existing = self.find(run_dir)
        if existing:
            return existing.id
        cfg = _config_dict(config)
        record = RunRecord(id=uuid.uuid4().hex[:12], name=name or cfg.get("name") or Path(run_dir).name,
                           run_dir=run_dir, created=time.time(),
                           method=str(cfg.get("method", {}).get("name", "")),
                           objective=str(cfg.get("train", {}).get("objective", "")),
                           model=str(cfg.get("model", {}).get("path", "")))
        row = dataclasses.asdict(record)
        with self._connect() as db:
            db.execute(f"INSERT INTO runs ({', '.join(row)}, config) VALUES ({', '.join('?' * (len(row) + 1))})",
                       [*row.values(), json.dumps(cfg)])
        if remember:
            run_index.remember_folder(self.path.parent, run_dir)
        return record.id

    def update(self, run_id: str, **fields: Any) -> None:
        """Set some fields of a run (names of :class:`RunRecord` fields)."""
        unknown = set(fields) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown registry field(s): {sorted(unknown)}")
        if not fields:
            return
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._connect() as db:
            db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", [*fields.values(), run_id])

    def get(self, run_id_or_dir: str | Path) -> RunRecord | None:
        """A run by id or by folder."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", [str(run_id_or_dir)]).fetchone()
        return _record(row) if row else self.find(run_id_or_dir)

    def find(self, run_dir: str | Path) -> RunRecord | None:
        """The run registered for a folder, if any."""
        key = str(Path(run_dir).resolve())
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE run_dir = ?", [key]).fetchone()
        return _record(row) if row else None

    def config(self, run_id: str) -> dict:
        """The config a run was registered with, as a mapping."""
        with self._connect() as db:
            row = db.execute("SELECT config FROM runs WHERE id = ?", [run_id]).fetchone()
        return json.loads(row["config"] or "{}") if row else {}

    def list(self) -> list[RunRecord]:
        """Every run, newest first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY created DESC").fetchall()
        return [_record(r) for r in rows]

    def remove(self, run_id: str) -> None:
        """Forget a run (its folder is left alone)."""
        with self._connect() as db:
            db.execute("DELETE FROM runs WHERE id = ?", [run_id])

    def refresh_status(self) -> list[RunRecord]:
        """Settle runs marked running whose worker is gone; returns the runs it changed.

        A dead worker whose event log ends with ``finished`` gets that status (it died after
        saying so); without one the run failed: killed, out of memory, or the machine stopped.
        """
        changed = []
        for rec in self.list():
            if rec.status != "running" or rec.host not in ("", socket.gethostname()) or pid_alive(rec.pid):
                continue
            fields = _outcome_from_events(Path(rec.run_dir) / "events.jsonl", rec.pid)
            self.update(rec.id, **fields)
            changed.append(self.get(rec.id))
        return changed


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite found the file itself broken (not locked, read-only or missing)."""
    text = str(exc).lower()
    return type(exc) is sqlite3.DatabaseError or "malformed" in text or "not a database" in text


def _unusable(path: Path, exc: BaseException) -> RunError:
    if isinstance(exc, OSError):
        return disk_error(path, exc, "open the run registry", then="or set STUDIO_HOME to another folder")
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return RunError(f"the run registry {path} cannot be written ({exc})",
                        f"make {path.parent} writable, or set STUDIO_HOME to a writable folder")
    return RunError(f"cannot open the run registry {path}: {exc}",
                    "check that the folder is writable, or set STUDIO_HOME to another folder")


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """A registry written by an older Studio gains the columns added since (never loses any)."""
    present = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    for column in [c for c in _COLUMNS if c not in present] + ([] if "config" in present else ["config"]):
        db.execute(f"ALTER TABLE runs ADD COLUMN {column} {_SQL_TYPES.get(column, 'TEXT')}")


def process_age_s() -> float:
    """Seconds since this process started (10 ms resolution on Linux; 0 where unknown)."""
    try:
        # /proc gives start time in clock ticks since boot, immune to wall-clock rounding.
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import psutil

        return max(time.time() - psutil.Process().create_time(), 0.0)
    except Exception:  # psutil missing or no permission: the measurement is optional
        return 0.0


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id is running (a zombie counts as dead)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def last_finished_event(events_path: str | Path) -> dict | None:
    """The last ``finished`` event of an events.jsonl (``None`` if it has none)."""
    path = Path(events_path)
    if not path.exists():
        return None
    last = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            # Cheap pre-filter: the worker writes compact JSON, so the type appears verbatim.
            if '"type":"finished"' not in line and '"type":"started"' not in line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("type") == "finished":
                last = event
            elif event.get("type") == "started":
                last = None  # a resumed run is a new attempt; only its own finish counts
    return last


def _outcome_from_events(events_path: Path, pid: int | None) -> dict:
    event = last_finished_event(events_path)
    if event and event.get("status") in ("completed", "stopped", "failed"):
        return {"status": event["status"], "ended": event.get("time", time.time()),
                "error": event.get("error", "") or "", "hint": event.get("hint", "") or ""}
    return {"status": "failed", "ended": time.time(),
            "error": f"the worker process (pid {pid}) ended without reporting how the run finished",
            "hint": "it was killed or ran out of memory; see worker.log in the run folder, "
                    "then resume from the last checkpoint (studio train --resume RUN_DIR)"}


def _config_dict(config: Any) -> dict:
    if config is None:
        return {}
    if isinstance(config, dict):
        return config
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    raise TypeError(f"config must be a RunConfig or a mapping, not {type(config).__name__}")


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(**{k: row[k] for k in _COLUMNS})
