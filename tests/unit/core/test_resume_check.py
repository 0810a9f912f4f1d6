"""Resuming after config.yaml was edited: refused with every difference, or applied and announced."""

from __future__ import annotations

import pytest

from studio.core import config as configmod
from studio.core.errors import RunError
from studio.core.resume_check import check_resume, compare


def _edited(**changes):
    cfg = configmod.RunConfig()
    for path, value in changes.items():
        section, name = path.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


@pytest.mark.parametrize("setting, value", [("train__learning_rate", 1e-5), ("method__rank", 8),
                                            ("data__train", "other.jsonl"), ("train__batch_size", 8),
                                            ("model__path", "another-model"), ("train__lr_scheduler", "linear")])
def test_what_a_checkpoint_cannot_continue_with_is_refused(setting, value):
    check = compare(configmod.RunConfig(), _edited(**{setting: value}))
    assert [path for path, _, _ in check.refused] == [setting.replace("__", ".")] and not check.applied


def test_length_and_watching_settings_apply_for_sft_and_the_length_is_refused_for_dpo():
    check = compare(configmod.RunConfig(), _edited(train__max_steps=60, eval__every_steps=5))
    assert [p for p, _, _ in check.applied] == ["eval.every_steps", "train.max_steps"] and not check.refused
    assert "train.max_steps: -1 -> 60" in check.announcement() and "continues from its value" in check.announcement()
    dpo = compare(_edited(train__objective="dpo"), _edited(train__objective="dpo", train__max_steps=60))
    assert [p for p, _, _ in dpo.refused] == ["train.max_steps"]


def test_check_resume_names_the_run_config_and_every_difference(tmp_path):
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "step-000004"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text("{}")
    configmod.save(configmod.RunConfig(), ckpt / "config.yaml")
    configmod.save(_edited(method__rank=8, train__learning_rate=1e-5, train__max_steps=9), run / "config.yaml")
    with pytest.raises(RunError) as caught:
        check_resume(run)
    message = caught.value.message
    assert str(run / "config.yaml") in message and "step-000004" in message
    assert "method.rank: 16 in the checkpoint, 8 now" in message and "train.learning_rate" in message
    assert "train.max_steps" not in message, "a longer SFT run is applied, not refused"
    assert "set them back" in caught.value.hint
    configmod.save(_edited(train__max_steps=9), run / "config.yaml")
    assert check_resume(run, "step-000004").applied == [("train.max_steps", -1, 9)]
