"""A longer or shorter resumed SFT run continues its learning rate without a jump."""

from __future__ import annotations

import pytest
import torch
from transformers import get_scheduler

from studio.worker import schedule


@pytest.mark.parametrize("kind", ["linear", "cosine", "constant_with_warmup"])
def test_the_plain_description_is_transformers_own_schedule(kind):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    hf = get_scheduler(kind, opt, num_warmup_steps=3, num_training_steps=20)
    plain = schedule.plain(kind, 3, 20)
    assert [round(hf.lr_lambdas[0](t), 9) for t in range(21)] == [round(schedule.multiplier(plain, t), 9)
                                                                   for t in range(21)]


@pytest.mark.parametrize("stopped_at", [2, 10])  # during warmup, and after it
def test_a_longer_run_continues_from_the_rate_it_had_and_ends_at_zero(stopped_at):
    before = schedule.plain("linear", 4, 20)
    after = schedule.extended(before, stopped_at, 40)
    assert schedule.multiplier(after, stopped_at) == pytest.approx(schedule.multiplier(before, stopped_at))
    rates = [schedule.multiplier(after, t) for t in range(stopped_at, 41)]
    steps = [abs(b - a) for a, b in zip(rates, rates[1:])]
    assert max(steps) <= 0.26 and rates[-1] == 0.0, "no jump, and the decay ends with the run"


def test_install_moves_a_restored_scheduler_onto_the_continued_schedule():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    sched = get_scheduler("linear", opt, num_warmup_steps=0, num_training_steps=30)
    for _ in range(30):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.0
    resumed = get_scheduler("linear", opt, num_warmup_steps=0, num_training_steps=60)  # what a resume builds
    resumed.load_state_dict(sched.state_dict())
    assert resumed.lr_lambdas[0](30) == 0.5, "transformers' schedule for 60 steps would jump to half the peak"
    schedule.install(resumed, opt, schedule.extended(schedule.plain("linear", 0, 30), 30, 60))
    opt.step()
    resumed.step()
    assert opt.param_groups[0]["lr"] == 0.0, "a finished decay stays finished"
