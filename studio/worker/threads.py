"""How many threads torch uses for a CPU training step, chosen by timing the steps themselves.

Every parallel operation of a CPU step (a matrix product, an elementwise pass over a tensor)
ends at a barrier where its threads wait for the slowest. When other processes keep the cores
busy, a thread that the scheduler takes off its core in the middle of an operation holds up the
others until it gets a core back (milliseconds), and a step runs thousands of such operations.
On the two-core development machine at load average 5-7, the benchmark's step ran 3-5 times
faster on one thread than on two; on an idle machine two threads are faster (the matrix
products split between the cores). The load changes while a run trains, so neither setting is
right for a whole run.

:class:`ThreadTuner` starts from a guess of the cores other processes keep busy (measured from
``/proc/stat`` while the run sets up, else the load average), then times steps: every thread count among its candidates (all cores, halves of it,
one) is tried for one step, the one with the fewest seconds per input token is kept, and the
others are tried again now and then (less often while the choice keeps winning), so a run
follows the machine's load. ``OMP_NUM_THREADS`` set by the user, or ``STUDIO_THREAD_TUNING=0``,
fixes the count.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger("studio.worker")

#: Steps between two tries of another thread count, at first; doubled each time the current
#: choice stays the fastest, up to :data:`MAX_PROBE_GAP`, and reset when it changes.
FIRST_PROBE_GAP = 8
MAX_PROBE_GAP = 128


def tuning_wanted() -> bool:
    """Whether the thread count may change during a run (not when the user set ``OMP_NUM_THREADS``)."""
    return not os.environ.get("OMP_NUM_THREADS") and os.environ.get("STUDIO_THREAD_TUNING", "1") != "0"


def candidates(most: int) -> list[int]:
    """``most``, its halves, and 1: the thread counts worth trying, largest first."""
    out = [max(1, most)]
    while out[-1] > 1:
        out.append(out[-1] // 2)
    return out


def first_guess(options: list[int], cores: int, load: float, own: float = 1.0) -> int:
    """The largest option that leaves out the cores other processes keep busy.

    ``load`` is the one-minute load average, which counts this process's ``own`` running
    threads too (one, while the run was being set up).
    """
    free = cores - max(0.0, load - own)
    return next((n for n in options if n <= max(1.0, free + 0.5)), options[-1])


class ThreadTuner:
    """Picks the thread count before each step from the measured cost of earlier steps.

    The first steps run on ``start``; after :data:`FIRST_PROBE_GAP` steps one step tries another
    count (one not tried yet, else the cheapest of the others), and the cheaper per input token
    is kept. The gap to the next try doubles while the choice stands, so a run on a steady
    machine spends at most one step in 8, later one in 128, on a count that may be slower.

    Args:
        most: the most threads (one per physical core of this process's share).
        set_threads: called with a count to apply it (``torch.set_num_threads``).
        start: the count of the first steps (:func:`first_guess`), or a function giving it, called
            before the first step; ``most`` when not given.
        say: called with a line when the choice changes (the run's log).
    """

    def __init__(self, most: int, set_threads, start: int | None = None, say=None) -> None:
        self.options = candidates(most)
        self.start = start
        self.current = start if start in self.options else self.options[0]
        self.cost: dict[int, float] = {}  # threads -> seconds per input token (latest steps)
        self.set_threads, self.say = set_threads, say or (lambda line: None)
        self.steps, self.gap, self.next_probe = 0, FIRST_PROBE_GAP, FIRST_PROBE_GAP
        self.running = self.current

    def before_step(self) -> int:
        """Apply and return the thread count for the coming step."""
        if callable(self.start):  # guessed now, from what the machine did while the run set up
            guess, self.start = self.start(), None
            self.current = guess if guess in self.options else self.options[0]
        self.running = self.current
        if self.steps >= self.next_probe and len(self.options) > 1:
            others = [n for n in self.options if n != self.current]
            self.running = min(others, key=lambda n: self.cost.get(n, -1.0))  # untried first
        self.set_threads(self.running)
        return self.running

    def after_step(self, seconds: float, tokens: int) -> None:
        """Record the step just run (its wall time and input tokens) and choose for the next."""
        self.steps += 1
        if self.steps == 1 or tokens <= 0:  # the first step carries one-off costs (kernels, caches)
            return
        cost, known = seconds / tokens, self.cost.get(self.running)
        if self.running == self.current:  # the current count's cost follows the load, smoothed
            self.cost[self.running] = cost if known is None else (known + cost) / 2
            return
        self.cost[self.running] = cost
        if self.current in self.cost and cost < self.cost[self.current]:
            self.say(f"CPU threads: {self.running} instead of {self.current} (seconds per 1,000 input tokens: "
                     + ", ".join(f"{n} threads {1000 * c:.2f}" for n, c in sorted(self.cost.items())) + ")")
            self.current, self.gap = self.running, FIRST_PROBE_GAP
        else:
            self.gap = min(self.gap * 2, MAX_PROBE_GAP)
        self.next_probe = self.steps + self.gap


def tuner_for(acc, say=None) -> ThreadTuner | None:
    """A tuner for this run's CPU steps, or ``None`` (a GPU, several processes, one core, or the
    count fixed by ``OMP_NUM_THREADS`` / ``STUDIO_THREAD_TUNING=0``). Call after the thread count
    is set to one per core (:func:`studio.worker.recipes.sft.set_cpu_threads`)."""
    import torch

    most = torch.get_num_threads()
    if acc.device.type != "cpu" or acc.num_processes > 1 or most <= 1 or not tuning_wanted():
        return None
    options = candidates(most)
    mark = cpu_sample()

    def start() -> int:
        busy = busy_elsewhere(mark)
        if busy is not None:
            return first_guess(options, most, busy, own=0.0)
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # Windows has no load average: start on every core
            load = 0.0
        return first_guess(options, most, load)

    return ThreadTuner(most, torch.set_num_threads, start, say)


def cpu_sample() -> tuple[int, int, float, float] | None:
    """(busy and all jiffies of the machine, this process's CPU seconds, the time), or ``None``
    where ``/proc/stat`` cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    own = os.times()
    idle = fields[3] + fields[4]  # idle and waiting for I/O
    return sum(fields) - idle, sum(fields), own.user + own.system, time.monotonic()


#: The shortest interval worth measuring: the kernel counts in jiffies (10 ms).
MIN_SAMPLE_S = 0.5


def busy_elsewhere(since, now=None, cores: int | None = None) -> float | None:
    """Cores kept busy by other processes since the sample ``since`` (:func:`cpu_sample`), or
    ``None`` when there is no sample or too short an interval.

    Unlike the one-minute load average, which still counts a run that ended a minute ago, this
    is what the machine did while this run set up (loading the model and data)."""
    now = now or cpu_sample()
    if since is None or now is None or now[3] - since[3] < MIN_SAMPLE_S or now[1] <= since[1]:
        return None
    cores = cores or os.cpu_count() or 1
    busy = (now[0] - since[0]) / (now[1] - since[1]) * cores  # cores busy, this process included
    own = (now[2] - since[2]) / (now[3] - since[3])
    return max(0.0, busy - own)
