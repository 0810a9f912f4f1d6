"""Following a live run never keeps the event loop reading: a worker's fresh lines wait for the next poll."""

from __future__ import annotations

import json
import os
import time

from studio.gui import runner
from studio.gui.runner import BACKLOG_BYTES, RunProcess


def _step(k: int) -> str:
    return json.dumps({"v": 1, "type": "step", "time": time.time(), "step": k, "epoch": 0.0, "loss": 1.0,
                       "learning_rate": 1e-4, "grad_norm": 1.0, "tokens_per_second": 1.0, "tokens_seen": k,
                       "memory_mib": 1.0}) + "\n"


def _follow_with_a_writer_faster_than_the_reader(tmp_path, monkeypatch, backlog_lines: int):
    """A live 'worker' (this process) appends a line during every read; returns the slice sizes read
    and the follower."""
    events = tmp_path / "events.jsonl"
    events.write_text("".join(_step(k) for k in range(1, backlog_lines + 1)))
    proc = RunProcess(tmp_path)
    proc.pid, proc._history_end = os.getpid(), 0  # followed live from the start
    reads: list[int] = []
    read_span = runner.read_span

    def read_and_write_more(run_dir, offset, limit):
        got, end = read_span(run_dir, offset, limit)
        reads.append(len(got))
        with open(events, "a") as fh:  # the worker wrote another step meanwhile
            fh.write(_step(10_000 + len(reads)))
        return got, end

    monkeypatch.setattr(runner, "read_span", read_and_write_more)
    proc.poll()
    proc.detach()
    return reads, proc


def test_a_poll_reads_a_live_workers_new_lines_once(tmp_path, monkeypatch):
    reads, proc = _follow_with_a_writer_faster_than_the_reader(tmp_path, monkeypatch, backlog_lines=5)
    assert reads == [5]  # it used to keep reading one fresh line at a time until its budget ran out


def test_a_real_backlog_is_caught_up_on_soon(tmp_path, monkeypatch):
    lines = 3 * runner.MAX_READ // len(_step(1))
    reads, proc = _follow_with_a_writer_faster_than_the_reader(tmp_path, monkeypatch, backlog_lines=lines)
    assert sum(reads) < lines  # one poll reads slices for at most its budget...
    assert proc._timer.interval() == runner.CATCH_UP_MS  # ...and the next comes soon
    assert BACKLOG_BYTES < runner.MAX_READ


def test_a_dead_workers_last_lines_are_all_read_before_it_is_declared_ended(tmp_path):
    (tmp_path / "events.jsonl").write_text("".join(_step(k) for k in range(1, 800)) + json.dumps(
        {"v": 1, "type": "finished", "time": time.time(), "status": "completed"}) + "\n")
    proc = RunProcess(tmp_path)
    proc.pid = 2**22 + 12345  # no such process
    outcomes = []
    proc.finished.connect(outcomes.append)
    for _ in range(50):  # a loaded machine may need several polls' budgets for the 160 KB
        proc.poll()
        if outcomes:
            break
    assert [o.status for o in outcomes] == ["completed"]  # not "failed" on the first poll after death
