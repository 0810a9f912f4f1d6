"""RunProcess against real child processes that replay recorded worker streams."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from studio.gui.runner import RunProcess, log_tail, pid_alive

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
STREAMS = FIXTURES / "streams"
FAKE = str(FIXTURES / "fake_worker.py")


def stream_events(name: str) -> list[dict]:
    return [json.loads(line) for line in (STREAMS / f"{name}.jsonl").read_text().splitlines() if line.startswith("{")]


def run_fake(qtbot, run_dir: Path, stream: str, *extra: str, timeout: int = 15000):
    """Launch the fake worker on ``stream``; return (process, events received, outcome)."""
    proc = RunProcess(run_dir)
    received = []
    proc.event.connect(received.append)
    with qtbot.waitSignal(proc.finished, timeout=timeout) as blocker:
        proc.launch([FAKE, str(run_dir), str(STREAMS / f"{stream}.jsonl"), *extra])
    return proc, received, blocker.args[0]


def test_completed_stream_split_mid_line_arrives_whole_and_once(qtbot, tmp_path):
    proc, received, outcome = run_fake(qtbot, tmp_path, "completed", "--chunk", "29")
    expected = stream_events("completed")
    assert [e["type"] for e in received] == [e["type"] for e in expected]
    assert [e.get("step") for e in received if e["type"] == "step"] == list(range(1, 41))
    assert outcome.status == "completed" and outcome.was_successful()
    assert outcome.final_event["best_eval_loss"] == pytest.approx(1.2911)
    assert outcome.error == ""


def test_failed_stream_carries_error_hint_and_log_lines(qtbot, tmp_path):
    _, received, outcome = run_fake(qtbot, tmp_path, "failed", "--exit", "1",
                                    "--stderr", "torch.OutOfMemoryError: CPU out of memory")
    assert outcome.status == "failed"
    assert "Out of memory at step 7" in outcome.error
    assert "batch_size" in outcome.hint
    # Traceback lines in the stream are kept as log events, not dropped.
    assert any(e["type"] == "log" and "Traceback" in e["text"] for e in received)


def test_death_without_final_event_is_failed_with_the_log_tail(qtbot, tmp_path):
    _, received, outcome = run_fake(qtbot, tmp_path, "crashed", "--exit", "3",
                                    "--stderr", "RuntimeError: the data file vanished")
    assert outcome.status == "failed"
    assert "ended without reporting a result" in outcome.error and "worker.log" in outcome.hint
    assert "the data file vanished" in outcome.log_tail  # the child's stderr went to worker.log
    assert outcome.pid_alive is False
    assert [e["step"] for e in received if e["type"] == "step"] == [1, 2, 3, 4, 5]


def _proc_stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the child's state from /proc")
def test_launched_worker_is_detached_in_its_run_folder_and_outlives_its_follower(qtbot, tmp_path):
    """A window closing destroys its RunProcess objects; the worker must not go with them."""
    proc = RunProcess(tmp_path)
    proc.launch([FAKE, str(tmp_path), str(STREAMS / "crashed.jsonl"), "--hang", "--stderr", "a line on stderr"])
    pid = proc.pid
    try:
        qtbot.waitUntil(lambda: "a line on stderr" in log_tail(tmp_path), timeout=10000)
        assert os.readlink(f"/proc/{pid}/cwd") == str(tmp_path)
        ppid, _, session = (int(v) for v in _proc_stat(pid)[1:4])
        assert ppid != os.getpid() and session != os.getsid(0)  # nobody's child, its own session
        proc.detach()
        proc.deleteLater()
        qtbot.wait(300)
        assert pid_alive(pid)
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_alive_process_is_running_never_failed_then_stops_on_sigterm(qtbot, tmp_path):
    proc = RunProcess(tmp_path)
    steps = []
    proc.event.connect(lambda e: e["type"] == "step" and steps.append(e))
    proc.launch([FAKE, str(tmp_path), str(STREAMS / "crashed.jsonl"), "--hang"])
    qtbot.waitUntil(lambda: len(steps) == 5, timeout=10000)
    qtbot.wait(600)  # several polls with the process alive and no final event
    assert proc.is_running() and proc.outcome().status == "running" and proc.outcome().pid_alive
    with qtbot.waitSignal(proc.finished, timeout=10000) as blocker:
        assert proc.stop()
    assert blocker.args[0].status == "stopped"
    assert (tmp_path / "checkpoints" / "checkpoint-99").is_dir()


def test_following_a_finished_run_replays_its_log(qtbot, tmp_path):
    shutil.copy(STREAMS / "stopped.jsonl", tmp_path / "events.jsonl")
    proc = RunProcess(tmp_path)
    received = []
    proc.event.connect(received.append)
    with qtbot.waitSignal(proc.finished, timeout=5000) as blocker:
        proc.follow(pid=None)
    assert blocker.args[0].status == "stopped"
    assert len(received) == len(stream_events("stopped"))
    assert len(proc.history()) == len(received)


def test_resumed_run_ignores_the_old_final_event(qtbot, tmp_path):
    shutil.copy(STREAMS / "stopped.jsonl", tmp_path / "events.jsonl")
    proc, received, outcome = run_fake(qtbot, tmp_path, "completed")
    # The stopped run's history is replayed first, then the new worker's events; only the new
    # worker's final event counts.
    assert outcome.status == "completed"
    assert [e["status"] for e in received if e["type"] == "finished"] == ["stopped", "completed"]


def test_following_a_live_pid_started_elsewhere(qtbot, tmp_path):
    """A reattached run: its worker was started by an earlier window (not our child)."""
    child = subprocess.Popen([sys.executable, FAKE, str(tmp_path), str(STREAMS / "crashed.jsonl"), "--hang"],
                             start_new_session=True)
    try:
        proc = RunProcess(tmp_path)
        proc.follow(child.pid)
        qtbot.waitUntil(lambda: any(e["type"] == "step" for e in proc.history()), timeout=10000)
        assert proc.is_running()
        with qtbot.waitSignal(proc.finished, timeout=10000) as blocker:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        assert blocker.args[0].status == "failed"
        assert "signal" in blocker.args[0].error or "process is gone" in blocker.args[0].error
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_pid_alive_and_log_tail(tmp_path):
    assert pid_alive(os.getpid())
    assert not pid_alive(None) and not pid_alive(0)
    (tmp_path / "worker.log").write_text("\n".join(f"line {i}" for i in range(100)))
    assert log_tail(tmp_path, 3) == "line 97\nline 98\nline 99"
    assert log_tail(tmp_path / "missing") == ""


def test_several_processes_launch_through_accelerate(tmp_path):
    from studio.core.config import RunConfig
    from studio.gui.run_controller import _accelerate_args

    args = _accelerate_args(RunConfig(), tmp_path, processes=2, cpu=True)
    assert args[:2] == ["-m", "accelerate.commands.launch"]
    assert args[args.index("--num_processes") + 1] == "2"
    assert args[-3:] == ["-m", "studio.worker", str(tmp_path)]
    written = yaml.safe_load((tmp_path / "accelerate_config.yaml").read_text())
    assert written["use_cpu"] is True and written["num_processes"] == 2


def test_read_span_reads_a_line_longer_than_its_limit_whole(tmp_path):
    from studio.gui.run_files import read_span

    long_line = json.dumps({"v": 1, "type": "log", "time": 0, "text": "x" * 5000})
    (tmp_path / "events.jsonl").write_text(long_line + "\n" + long_line[:100])
    events, offset = read_span(tmp_path, 0, 64)
    assert [len(e["text"]) for e in events] == [5000]
    assert offset == len(long_line) + 1
    assert read_span(tmp_path, offset, 64) == ([], offset)  # the unfinished line waits
