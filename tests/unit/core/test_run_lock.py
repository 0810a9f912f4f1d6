"""One worker per run folder: the lock refuses a second one by the first one's pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from studio.core.errors import RunError
from studio.core.run_lock import RunLock

HOLD = "import sys; from studio.core.run_lock import RunLock; RunLock(sys.argv[1]); print('held', flush=True); input()"


@pytest.fixture
def holder(tmp_path):
    """A real process holding the lock of ``tmp_path``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_lock_is_refused_with_the_holders_pid_and_a_killed_holder_leaves_none(tmp_path, holder):
    with pytest.raises(RunError, match=f"already being trained by worker pid {holder.pid}"):
        RunLock(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    lock = RunLock(tmp_path)  # kill -9 leaves no stale lock behind
    lock.release()


def test_a_second_worker_on_a_locked_run_writes_nothing(tmp_path, holder, capsys):
    from studio.worker import main as worker

    (tmp_path / "config.yaml").write_text("name: x\n")
    assert worker.main([str(tmp_path), "--resume"]) == 2
    assert f"worker pid {holder.pid}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "worker.lock"]
