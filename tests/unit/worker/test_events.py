"""The worker's events: the record comes first, stdout is only a view that may go away."""

from __future__ import annotations

import io
import json
import os

import pytest

from studio.core.errors import DiskError
from studio.worker.events import Events


class _ClosedPipe(io.StringIO):
    """stdout after the reader went away (terminal closed, ``studio train`` killed)."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_stdout_never_stops_the_events(tmp_path):
    events = Events(tmp_path / "events.jsonl", stdout=_ClosedPipe())
    seen = []
    events.subscribe(seen.append)
    for step in (1, 2):
        events.emit("log", text=f"step {step}")
    events.emit("finished", status="stopped")
    events.close()
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e.get("text", e["type"]) for e in lines] == ["step 1", "step 2", "finished"]
    assert len(seen) == 3 and events.finished


def test_a_full_disk_names_the_event_log_and_the_last_event_still_reaches_stdout(tmp_path, monkeypatch):
    live = io.StringIO()
    events = Events(tmp_path / "events.jsonl", stdout=live)
    events.emit("log", text="kept")

    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(DiskError) as caught:
        events.emit("log", text="lost")
    assert "no space left" in caught.value.message and "events.jsonl" in caught.value.message
    assert "studio train --resume" in caught.value.hint
    events.emit("finished", status="failed", error="x", hint="y")  # the run's end is never an exception
    monkeypatch.undo()
    events.close()
    assert [json.loads(line)["type"] for line in live.getvalue().splitlines()] == ["log", "log", "finished"]
    assert (tmp_path / "events.jsonl").read_text().count("\n") == 1, "no half lines left behind"
