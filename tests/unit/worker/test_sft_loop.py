"""The SFT loop's arithmetic: accumulation, gradient checkpointing and bf16 change speed, not results."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from studio.core.errors import ConfigError
from studio.worker import loggers

from float_order import adam_weight_tolerance, order_tolerance
from worker_runs import make_run_dir, read_events, train_in_process

BASE = {"train.max_steps": 2, "data.eval_fraction": 0.0, "eval.sample_prompts": [], "method.dropout": 0.0,
        "data.max_length": 96, "data.padding": "longest", "train.learning_rate": 1e-2,
        "output.save_every_steps": 100}


def _run(tmp_path, tiny_model, name, **overrides):
    """Step losses, trained weights after step 2, and the most loss tokens summed in one step."""
    folder = tmp_path / name
    folder.mkdir()
    run_dir = make_run_dir(folder, tiny_model, {**BASE, **overrides}, rows=12)
    assert train_in_process(run_dir) == "completed"
    steps = [e for e in read_events(run_dir) if e["type"] == "step"]
    from safetensors.torch import load_file

    weights = load_file(str(run_dir / "checkpoints" / "step-000002" / "trainable.safetensors"))
    return [e["loss"] for e in steps], weights, max(e["loss_tokens"] for e in steps)


def _same_training(a, b):
    """Losses and weights equal up to float32 summation order (see ``float_order``).

    The step loss is a mean of ``n`` positive per-token losses, and every gradient element a
    sum of ``n`` per-token terms (``n`` = loss tokens in the step), added in another order when
    the step is split into micro-batches or its matrices are blocked differently by the CPU.
    """
    (loss_a, w_a, n), (loss_b, w_b, _) = a, b
    assert loss_a == pytest.approx(loss_b, rel=order_tolerance(n), abs=0)
    steps = len(loss_a)
    for name in w_a:
        bound = adam_weight_tolerance(n, steps, BASE["train.learning_rate"], w_a[name].numel())
        gap = float((w_a[name] - w_b[name]).norm())
        assert gap <= bound, f"{name}: weights differ by {gap:.3g} in norm, more than float32 order allows ({bound:.3g})"


def test_accumulation_equals_one_big_batch(tmp_path, tiny_model):
    big = _run(tmp_path, tiny_model, "big", **{"train.batch_size": 4, "train.grad_accum": 1})
    acc = _run(tmp_path, tiny_model, "acc", **{"train.batch_size": 2, "train.grad_accum": 2})
    _same_training(big, acc)


def test_gradient_checkpointing_gives_the_same_training(tmp_path, tiny_model):
    plain = _run(tmp_path, tiny_model, "plain", **{"data.padding": "packing"})
    ckpt = _run(tmp_path, tiny_model, "ckpt", **{"data.padding": "packing", "train.gradient_checkpointing": True})
    _same_training(plain, ckpt)


def test_bf16_autocast_trains_close_to_fp32(tmp_path, tiny_model):
    fp32 = _run(tmp_path, tiny_model, "fp32", **{"train.precision": "fp32"})[0]
    bf16 = _run(tmp_path, tiny_model, "bf16", **{"train.precision": "bf16"})[0]
    assert all(abs(a - b) < 0.05 for a, b in zip(fp32, bf16)), (fp32, bf16)


def test_logger_scalars_from_events():
    step = {"v": 1, "type": "step", "time": 9.0, "step": 3, "epoch": 0.1, "loss": 1.5, "learning_rate": 1e-3,
            "grad_norm": None, "tokens_per_second": 10.0, "tokens_seen": 99, "memory_mib": 5.0, "max_steps": 9,
            "rewards/margins": 0.25}
    assert loggers.scalars(step) == {"train/loss": 1.5, "train/learning_rate": 1e-3, "train/tokens_per_second": 10.0,
                                     "train/memory_mib": 5.0, "train/rewards/margins": 0.25}
    ev = {"type": "eval", "step": 3, "eval_loss": 1.0, "perplexity": 2.7, "general_loss": 3.0,
          "metrics": {"qa": {"f1": 0.5}, "reward_accuracy": 0.75}}
    assert loggers.scalars(ev) == {"eval/eval_loss": 1.0, "eval/perplexity": 2.7, "eval/general_loss": 3.0,
                                   "eval/qa/f1": 0.5, "eval/reward_accuracy": 0.75}


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_wandb_without_the_package_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        loggers.WandbLogger("studio", "run", {}, tmp_path)
    assert "pip install wandb" in info.value.message
