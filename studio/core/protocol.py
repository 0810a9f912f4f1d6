"""Worker -> window events: one JSON object per line, versioned and typed.

The worker appends each event to the run's ``events.jsonl`` (:class:`EventLog`: a line is
written whole or not at all) and then, best effort, to stdout. The window (or any reader of a worker's output) feeds raw chunks to
:class:`LineReader`, which buffers a line split across reads and turns any line that is not a
JSON event into a ``log`` event, so nothing the worker prints is lost.

The schema is documented in ``docs/events.md``; :func:`validate_event` checks one event.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import IO, Any

VERSION = 1

#: Required keys (beyond ``v``, ``type`` and ``time``) per event type, with their JSON types.
SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "started": {"config": (dict,), "params_total": (int,), "params_trainable": (int,),
                "train_rows": (int,), "eval_rows": (int,), "device": (str,), "max_steps": (int,)},
    "step": {"step": (int,), "epoch": (int, float), "loss": (int, float), "learning_rate": (int, float),
             "grad_norm": (int, float, type(None)), "tokens_per_second": (int, float), "tokens_seen": (int,),
             "memory_mib": (int, float)},
    "eval": {"step": (int,), "eval_loss": (int, float), "perplexity": (int, float, type(None)), "metrics": (dict,)},
    "checkpoint": {"step": (int,), "path": (str,)},
    "warning": {"code": (str,), "message": (str,)},
    "sample": {"step": (int,), "prompt": (str,), "text": (str,)},
    "log": {"text": (str,)},
    "finished": {"status": (str,)},
}
FINISHED_STATUSES = ("completed", "stopped", "failed")

#: What the preference, reward and RL objectives report in their step events beside the loss:
#: step-event key -> (short name for a terminal line, label for a plot).
OBJECTIVE_METRICS: dict[str, tuple[str, str]] = {
    "rewards/margins": ("margin", "reward margin (chosen − rejected)"),
    "rewards/accuracies": ("ranked right", "share of pairs ranked right"),
    "kl": ("KL", "KL estimate"),
    "accuracy": ("ranked right", "share of pairs ranked right"),
    "margin": ("margin", "score margin (chosen − rejected)"),
    "reward": ("reward", "mean reward"),
    "reward_std": ("reward spread", "reward spread"),
}


def make_event(type_: str, **fields: Any) -> dict:
    """An event dict with the schema version, type and a wall-clock timestamp."""
    return {"v": VERSION, "type": type_, "time": round(time.time(), 3), **fields}


def validate_event(event: Any) -> list[str]:
    """Problems with one event against the schema; empty when it is valid."""
    if not isinstance(event, dict):
        return ["an event must be a JSON object"]
    problems = []
    if event.get("v") != VERSION:
        problems.append(f"'v' must be {VERSION}, got {event.get('v')!r}")
    kind = event.get("type")
    if kind not in SCHEMA:
        return problems + [f"unknown type {kind!r}"]
    for key, types in SCHEMA[kind].items():
        if key not in event:
            problems.append(f"{kind}: missing '{key}'")
        elif not isinstance(event[key], types) or (isinstance(event[key], bool) and bool not in types):
            problems.append(f"{kind}: '{key}' has type {type(event[key]).__name__}")
    if kind == "finished":
        if event.get("status") not in FINISHED_STATUSES:
            problems.append(f"finished: status must be one of {FINISHED_STATUSES}")
        if event.get("status") == "failed" and not all(isinstance(event.get(k), str) for k in ("error", "hint")):
            problems.append("finished: a failed run must carry 'error' and 'hint' strings")
    return problems


def dumps(event: dict) -> str:
    """One line of JSON (no newline inside), NaN and infinities written as null."""
    return json.dumps(_finite(event), ensure_ascii=False, separators=(",", ":"))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class EventLog:
    """A run's ``events.jsonl``, appended to one whole line at a time.

    A line that cannot be written completely (disk full, quota, a crash mid-write) is cut off
    again, and a torn last line left by an earlier process is removed on opening, so a resumed
    run never appends onto half an event: the file stays one JSON object per line.

    Args:
        path: the file (created if missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0),
                           0o644)
        self.repaired = _cut_torn_line(self._fd)

    def append(self, line: str) -> None:
        """Write ``line`` (ending in a newline); on OSError the file is as it was before."""
        data = line.encode("utf-8")
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            done = 0
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                pass  # the next open cuts the torn line
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _cut_torn_line(fd: int) -> int:
    """Truncate a last line that has no newline; returns how many bytes were cut."""
    size = os.lseek(fd, 0, os.SEEK_END)
    end = size
    while end > 0:
        start = max(0, end - 65536)
        chunk = os.pread(fd, end - start, start) if hasattr(os, "pread") else _read_at(fd, start, end - start)
        if end == size and chunk.endswith(b"\n"):
            return 0
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    os.ftruncate(fd, end)
    return size - end


def _read_at(fd: int, offset: int, count: int) -> bytes:
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, count)


def silence(stream: IO[str]) -> None:
    """Point a dead output stream's descriptor (a closed pipe or terminal) at the null device.

    What is still buffered in it, and Python's flush at exit, then go nowhere instead of
    failing again (an exit-time flush error would turn a clean exit into status 120).
    """
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass


def parse_line(line: str) -> dict:
    """One line -> an event; a line that is not a versioned JSON event becomes a ``log`` event."""
    text = line.rstrip("\r\n")
    try:
        event = json.loads(text)
    except ValueError:
        event = None
    if isinstance(event, dict) and "type" in event and "v" in event:
        return event
    return {"v": VERSION, "type": "log", "text": text}


class LineReader:
    """Turns arbitrary chunks of worker output into events, keeping a partial last line.

    Example:
        >>> r = LineReader()
        >>> r.feed('{"v":1,"type":"log","te')
        []
        >>> [e["text"] for e in r.feed('xt":"hi"}\\nplain\\n')]
        ['hi', 'plain']
    """

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, chunk: str | bytes) -> list[dict]:
        if isinstance(chunk, bytes):
            chunk = chunk.decode("utf-8", errors="replace")
        data = self._pending + chunk
        *lines, self._pending = data.split("\n")
        return [parse_line(line) for line in lines if line.strip()]

    def flush(self) -> list[dict]:
        """Events for a final line that had no newline (call when the stream ends)."""
        rest, self._pending = self._pending, ""
        return [parse_line(rest)] if rest.strip() else []


def read_events(path: str, offset: int = 0) -> tuple[list[dict], int]:
    """Events of an events.jsonl from byte ``offset``; returns them and the offset after the last full line.

    A trailing partial line (a worker still writing) is left for the next call.
    """
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    reader = LineReader()
    return reader.feed(data[:end]), offset + end
