"""A new run from a checkpoint's weights (``studio train CONFIG --init-from CHECKPOINT``): what a
refused resume advises works, and weights of another shape are refused naming the setting."""

from __future__ import annotations

import re
from pathlib import Path
import shlex

import pytest
from safetensors.torch import load_file

from studio.core import config as configmod
from studio.core.errors import RunError
from studio.worker.checkpoint import latest_checkpoint

from worker_runs import build_tiny_model, make_run_dir, read_events, train_in_process

pytestmark = pytest.mark.integration

SETTINGS = {"train.max_steps": 2, "train.batch_size": 2, "eval.every_steps": 0, "eval.sample_prompts": [],
            "data.max_length": 128, "train.learning_rate": 5e-3, "output.save_every_steps": 2}


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A run trained for two steps: its checkpoint's LoRA weights differ from a fresh adapter's."""
    tmp = tmp_path_factory.mktemp("first")
    run_dir = make_run_dir(tmp, build_tiny_model(tmp / "model"), SETTINGS)
    assert train_in_process(run_dir) == "completed"
    return run_dir


def test_a_refused_resume_advises_a_command_that_starts_from_the_checkpoints_weights(stopped_run, tmp_path,
                                                                                      capsys):
    from studio.cli import main

    config = stopped_run / "config.yaml"
    # A learning rate of 0 cannot continue the checkpoint's optimizer; it also keeps the new
    # run's weights where they started, so its final weights show what it started from.
    cfg = configmod.load(config)
    cfg.train.learning_rate = 0.0
    configmod.save(cfg, config)
    assert main(["train", "--resume", str(stopped_run)]) == 2
    hint = capsys.readouterr().err
    ckpt = latest_checkpoint(stopped_run / "checkpoints")
    advice = re.search(r"studio train (\S+) --init-from (\S+)", hint)
    assert advice, hint
    assert advice.groups() == (str(config), str(ckpt))

    new_dir = tmp_path / "from-checkpoint"
    assert main([*shlex.split(advice.group(0))[1:], "--run-dir", str(new_dir)]) == 0
    assert configmod.load(new_dir / "config.yaml").model.init_from == str(ckpt), "the run folder says where it began"
    events = read_events(new_dir)
    started = next(e for e in events if e["type"] == "started")
    assert started["config"]["model"]["init_from"] == str(ckpt) and started["start_step"] == 0
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2], "a new run: its own steps from 1"
    assert any("start from checkpoint" in e.get("text", "") for e in events if e["type"] == "log")
    before, after = (load_file(str(p / "trainable.safetensors"))
                     for p in (ckpt, latest_checkpoint(new_dir / "checkpoints")))
    assert sorted(before) == sorted(after)
    assert all(before[name].equal(after[name]) for name in before), "it trained from the checkpoint's weights"


def test_weights_of_another_rank_are_refused_naming_the_setting(stopped_run, tmp_path, capsys):
    from studio.cli import main

    ckpt = latest_checkpoint(stopped_run / "checkpoints")
    new_dir = tmp_path / "other-rank"
    assert main(["train", str(stopped_run / "config.yaml"), "--init-from", str(stopped_run), "method.rank=8",
                 "--run-dir", str(new_dir)]) == 2
    err = capsys.readouterr().err
    assert f"the weights of checkpoint {ckpt} do not fit" in err, "a run folder gives its latest checkpoint"
    assert "method.rank is 4 in the checkpoint and 8 now" in err
    assert not new_dir.exists(), "refused before a run folder is made"


def test_weights_of_another_model_are_refused_by_the_worker_naming_the_model(stopped_run, tmp_path):
    """Another model folder may hold the same model; the worker compares the tensors themselves."""
    from transformers import LlamaConfig

    other = build_tiny_model(tmp_path / "wider")
    wide = LlamaConfig.from_pretrained(str(other))
    wide.hidden_size, wide.intermediate_size = 48, 96
    from transformers import LlamaForCausalLM

    LlamaForCausalLM(wide).save_pretrained(str(other))
    run_dir = make_run_dir(tmp_path, other, {**SETTINGS, "model.init_from": str(stopped_run)})
    with pytest.raises(RunError) as caught:
        train_in_process(run_dir)
    message = caught.value.message
    assert "do not fit this run" in message and f"model.path is {str(stopped_run.parent / 'model')!r}" in message
    assert "in the checkpoint" in message and "here" in message, "the first tensor that differs, both shapes"


@pytest.mark.slow
def test_a_dpo_run_starts_from_an_sft_checkpoints_weights(stopped_run, tmp_path):
    """TRL objectives take the checkpoint's adapter before their trainer starts, so DPO's frozen
    reference copy is the SFT model too (its first loss is ln 2 either way). With a learning rate
    of 0 the adapter DPO writes is the one it started from."""
    import math

    from worker_runs import DATASETS, start_worker

    ckpt = latest_checkpoint(stopped_run / "checkpoints")
    sft = load_file(str(ckpt / "adapter" / "adapter_model.safetensors"))
    for name, init in (("fresh", ""), ("from-sft", str(stopped_run))):
        (tmp_path / name).mkdir()
        run_dir = make_run_dir(tmp_path / name, Path(configmod.load(stopped_run / "config.yaml").model.path), {
            "data.train": str(DATASETS / "travel_prefs.jsonl"), "data.padding": "longest", "data.max_length": 128,
            "train.objective": "dpo", "train.max_steps": 1, "train.batch_size": 2, "train.learning_rate": 0.0,
            "eval.every_steps": 0, "eval.sample_prompts": [], "output.save_every_steps": 100,
            "model.init_from": init})
        assert start_worker(run_dir).wait(timeout=600) == 0, (run_dir / "worker.log").read_text()[-2000:]
        events = read_events(run_dir)
        assert events[-1]["status"] == "completed"
        assert math.isclose(next(e["loss"] for e in events if e["type"] == "step"), math.log(2), rel_tol=1e-5)
        final = load_file(str(run_dir / "final" / "adapter_model.safetensors"))
        assert sorted(final) == sorted(sft)
        same = all(final[k].equal(sft[k]) for k in sft)
        assert same == bool(init), f"{name}: the adapter DPO trained {'is' if same else 'is not'} the SFT checkpoint's"
