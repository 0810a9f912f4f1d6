"""The CPU thread count of training steps follows the measured step cost (simulated machines)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from studio.worker import threads
from studio.worker.threads import FIRST_PROBE_GAP, MAX_PROBE_GAP, ThreadTuner, candidates, first_guess, tuner_for


def _run(tuner: ThreadTuner, cost_of, steps: int, tokens: int = 1000) -> list[int]:
    """Drive ``steps`` steps; ``cost_of(step, threads)`` is the seconds per token of a step."""
    used = []
    for step in range(steps):
        n = tuner.before_step()
        used.append(n)
        tuner.after_step(cost_of(step, n) * tokens, tokens)
    return used


def test_candidates_and_the_first_guess_from_the_load_average():
    assert candidates(2) == [2, 1] and candidates(16) == [16, 8, 4, 2, 1] and candidates(1) == [1]
    assert first_guess([2, 1], cores=2, load=1.0) == 2       # only this process (setting up the run)
    assert first_guess([2, 1], cores=2, load=2.2) == 1       # another process keeps a core busy
    assert first_guess([16, 8, 4, 2, 1], cores=16, load=9.0) == 8
    assert first_guess([2, 1], cores=2, load=40.0) == 1


def test_a_loaded_machine_moves_to_one_thread_and_stays_there():
    """Two threads cost 4x one thread's time per token (a descheduled partner at every barrier)."""
    applied = []
    tuner = ThreadTuner(2, applied.append, start=2)
    used = _run(tuner, lambda step, n: 4e-3 if n == 2 else 1e-3, 200)
    assert used[:FIRST_PROBE_GAP + 1] == [2] * FIRST_PROBE_GAP + [1]  # tried after the first gap
    assert used[FIRST_PROBE_GAP + 1:].count(2) <= 6                   # then one try in 16, 32, ... steps
    assert applied == used


def test_an_idle_machine_keeps_every_core_and_tries_one_thread_less_and_less_often():
    tuner = ThreadTuner(2, lambda n: None, start=2)
    used = _run(tuner, lambda step, n: 1e-3 if n == 2 else 1.8e-3, 1000)
    ones = [i for i, n in enumerate(used) if n == 1]
    assert ones[0] == FIRST_PROBE_GAP and len(ones) <= 10
    assert max(b - a for a, b in zip(ones, ones[1:])) == MAX_PROBE_GAP + 1


def test_when_the_load_goes_away_the_run_goes_back_to_every_core():
    """Loaded for the first 100 steps, idle after: the tuner must find two threads again."""
    tuner = ThreadTuner(2, lambda n: None, start=1)
    used = _run(tuner, lambda step, n: (4e-3 if n == 2 else 1e-3) if step < 100 else (1e-3 if n == 2 else 1.8e-3),
                400)
    assert set(used[:100]) <= {1, 2} and used[:100].count(1) > 90
    assert used[-50:].count(2) >= 48


def test_the_first_step_does_not_count():
    """The first step builds kernels and fills caches: its cost must not decide anything."""
    tuner = ThreadTuner(2, lambda n: None, start=2)
    tuner.before_step()
    tuner.after_step(1000.0, 1000)
    assert tuner.cost == {}


def test_tuning_is_off_when_the_user_fixes_the_threads_or_on_a_gpu(monkeypatch):
    cpu = SimpleNamespace(device=torch.device("cpu"), num_processes=1)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("STUDIO_THREAD_TUNING", raising=False)
    assert isinstance(tuner_for(cpu), ThreadTuner)
    assert tuner_for(SimpleNamespace(device=torch.device("cpu"), num_processes=2)) is None
    assert tuner_for(SimpleNamespace(device=torch.device("cuda"), num_processes=1)) is None
    monkeypatch.setenv("STUDIO_THREAD_TUNING", "0")
    assert tuner_for(cpu) is None
    monkeypatch.delenv("STUDIO_THREAD_TUNING")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert tuner_for(cpu) is None


@pytest.mark.parametrize("load, start", [(0.5, 2), (6.0, 1)])
def test_the_run_starts_from_the_load_average(monkeypatch, load, start):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("STUDIO_THREAD_TUNING", raising=False)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(threads, "cpu_sample", lambda: None)  # no /proc/stat: the load average decides
    tuner = tuner_for(SimpleNamespace(device=torch.device("cpu"), num_processes=1))
    assert tuner.before_step() == start


def test_cores_busy_elsewhere_are_measured_while_the_run_sets_up(monkeypatch):
    # 2 cores over 2 s: 300 of 400 jiffies busy (1.5 cores), 1 s of it this process's own.
    since, now = (1000, 4000, 10.0, 100.0), (1300, 4400, 11.0, 102.0)
    assert threads.busy_elsewhere(since, now, cores=2) == pytest.approx(1.0)
    assert threads.busy_elsewhere(since, (1001, 4001, 10.0, 100.1), cores=2) is None  # too short to tell
    assert threads.busy_elsewhere(None, now, cores=2) is None


@pytest.mark.parametrize("busy, start", [(0.0, 2), (1.0, 1)])
def test_the_first_guess_follows_the_machine_now_not_the_minute_before(monkeypatch, busy, start):
    """A run started right after another ended: the load average still counts the ended run
    (1.8), the machine is idle; the run starts on both cores. Busy elsewhere: one."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("STUDIO_THREAD_TUNING", raising=False)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.8, 1.8, 1.8))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    samples = iter([(0, 0, 0.0, 0.0), (int(100 * (busy + 1)), 200, 1.0, 1.0)])  # this process: 1 core
    monkeypatch.setattr(threads, "cpu_sample", lambda: next(samples))
    tuner = tuner_for(SimpleNamespace(device=torch.device("cpu"), num_processes=1))
    assert tuner.before_step() == start
