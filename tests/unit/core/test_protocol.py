"""The worker event protocol: schema checks and a reader that survives split lines."""

from __future__ import annotations

import io
import json

import pytest

from studio.core import protocol


def test_event_log_appends_whole_lines_and_cuts_a_torn_last_line(tmp_path):
    path = tmp_path / "events.jsonl"
    first = protocol.dumps(protocol.make_event("log", text="hello")) + "\n"
    path.write_text(first + '{"v":1,"type":"step","st', encoding="utf-8")  # a write cut short
    log = protocol.EventLog(path)
    assert log.repaired == len('{"v":1,"type":"step","st')
    log.append(protocol.dumps(protocol.make_event("finished", status="failed", error="boom", hint="do this")) + "\n")
    log.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == first.strip() and len(lines) == 2
    for line in lines:
        assert protocol.validate_event(json.loads(line)) == []
    assert protocol.EventLog(path).repaired == 0


def test_event_log_leaves_no_half_line_when_a_write_fails(tmp_path, monkeypatch):
    import os

    path = tmp_path / "events.jsonl"
    log = protocol.EventLog(path)
    log.append('{"a":1}\n')
    real_write = os.write

    def full_disk(fd, data):  # the disk takes 5 bytes, then is full
        real_write(fd, data[:5])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError):
        log.append('{"b":2}\n')
    monkeypatch.setattr(os, "write", real_write)
    log.append('{"c":3}\n')  # space freed: the next event starts on its own line
    assert path.read_text() == '{"a":1}\n{"c":3}\n'


def test_validation_names_the_problem():
    assert protocol.validate_event({"v": 1, "type": "finished", "status": "failed"})  # no error/hint
    assert protocol.validate_event({"v": 1, "type": "step", "step": 1}) != []
    assert protocol.validate_event({"v": 2, "type": "log", "text": "x"}) == ["'v' must be 1, got 2"]
    assert protocol.validate_event({"v": 1, "type": "nope"}) == ["unknown type 'nope'"]
    # perplexity is null for objectives whose loss is not a language model's, but never missing
    ev = {"v": 1, "type": "eval", "time": 1.0, "step": 2, "eval_loss": 0.6, "perplexity": None, "metrics": {}}
    assert protocol.validate_event(ev) == []
    assert protocol.validate_event({k: v for k, v in ev.items() if k != "perplexity"}) == ["eval: missing 'perplexity'"]


def test_nan_is_written_as_null():
    line = protocol.dumps(protocol.make_event("log", text="x", value=float("nan")))
    assert json.loads(line)["value"] is None


def test_reader_buffers_partial_lines_and_keeps_plain_text():
    event = protocol.dumps(protocol.make_event("checkpoint", step=3, path="/r/c"))
    stream = event + "\nTraceback (most recent call last):\n" + event
    reader = protocol.LineReader()
    got = []
    for i in range(0, len(stream), 7):  # chunks that split lines and JSON objects
        got += reader.feed(stream[i:i + 7].encode())
    got += reader.flush()
    assert [e["type"] for e in got] == ["checkpoint", "log", "checkpoint"]
    assert got[1]["text"] == "Traceback (most recent call last):"


def test_read_events_leaves_a_partial_line_for_later(tmp_path):
    path = tmp_path / "events.jsonl"
    full = protocol.dumps(protocol.make_event("log", text="a")) + "\n"
    path.write_text(full + '{"v":1,"type":"lo')
    events, offset = protocol.read_events(str(path))
    assert [e["text"] for e in events] == ["a"] and offset == len(full.encode())
    with open(path, "a") as fh:
        fh.write('g","text":"b"}\n')
    events, _ = protocol.read_events(str(path), offset)
    assert [e["text"] for e in events] == ["b"]
