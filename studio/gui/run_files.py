"""Reading a run folder's files: its event log in bounded slices and the tail of worker.log.

Pure Python with no Qt, shared by the runner (which follows logs) and the pages that open runs.
"""

from __future__ import annotations

from pathlib import Path

from studio.core.protocol import LineReader

LOG_TAIL_LINES = 30


def log_tail(run_dir: str | Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a run's ``worker.log`` (empty when there is none)."""
    path = Path(run_dir) / "worker.log"
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def read_span(run_dir: str | Path, offset: int, limit: int) -> tuple[list[dict], int]:
    """Complete event lines of a run's ``events.jsonl`` within ``limit`` bytes from ``offset``.

    Returns the events and the offset after the last complete line; a partial line (a worker
    still writing it) is left for the next read, like :func:`studio.core.protocol.read_events`.
    A single line longer than ``limit`` is read whole, so a long line never stalls a reader.
    """
    try:
        with open(Path(run_dir) / "events.jsonl", "rb") as fh:
            fh.seek(offset)
            data = fh.read(limit)
            while b"\n" not in data and len(data) >= limit:
                more = fh.read(limit)
                if not more:
                    break
                data += more
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    return LineReader().feed(data[:end]), offset + end


def read_history(run_dir: str | Path, end: int) -> list[dict]:
    """Events of a run's ``events.jsonl`` from its start up to byte ``end`` (a follower's offset)."""
    return read_span(run_dir, 0, end)[0]


def events_size(run_dir: str | Path) -> int:
    try:
        return (Path(run_dir) / "events.jsonl").stat().st_size
    except OSError:
        return 0
