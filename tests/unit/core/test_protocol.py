"""The worker event protocol: schema checks and a reader that survives split lines."""

from __future__ import annotations

import io
import json

from studio.core import protocol


def test_writer_emits_valid_flushed_lines():
    out, log = io.StringIO(), io.StringIO()
    writer = protocol.EventWriter(out, log)
    writer.emit("log", text="hello")
    writer.emit("finished", status="failed", error="boom", hint="do this")
    lines = out.getvalue().splitlines()
    assert lines == log.getvalue().splitlines() and len(lines) == 2
    for line in lines:
        assert protocol.validate_event(json.loads(line)) == []


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
