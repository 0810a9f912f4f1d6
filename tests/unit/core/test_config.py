"""The run config: YAML round trip, overrides, and every problem reported at once."""

from __future__ import annotations

import pytest

from studio.core import config
from studio.core.errors import ConfigError


def test_defaults_are_valid_and_round_trip(tmp_path):
    cfg = config.RunConfig()
    assert config.validate(cfg) == []
    path = tmp_path / "run.yaml"
    config.save(cfg, path)
    assert config.load(path) == cfg


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "method: {name: lorax, rank: 0}\n"
        "train: {learning_rate: fast, batch_size: 0}\n"
        "data: {padding: sideways}\n"
        "colour: blue\n"
    )
    with pytest.raises(ConfigError) as info:
        config.load(path)
    paths = {p for p, _ in info.value.errors}
    assert {"method.name", "method.rank", "train.learning_rate", "train.batch_size", "data.padding", "colour"} <= paths
    assert "bad.yaml" in str(info.value)
    reason = dict(info.value.errors)["method.name"]
    assert "lorax" in reason and "lora" in reason


def test_dotted_overrides_apply_and_coerce(tmp_path):
    path = tmp_path / "run.yaml"
    config.save(config.RunConfig(), path)
    cfg = config.load(path, ["train.learning_rate=1e-4", "method.name=dora", "data.skip_bad_rows=false",
                             "method.target_modules=q_proj,v_proj"])
    assert cfg.train.learning_rate == pytest.approx(1e-4)
    assert cfg.method.name == "dora"
    assert cfg.data.skip_bad_rows is False
    assert cfg.method.target_modules == ["q_proj", "v_proj"]


def test_malformed_override_and_missing_file_are_config_errors(tmp_path):
    path = tmp_path / "run.yaml"
    config.save(config.RunConfig(), path)
    with pytest.raises(ConfigError) as info:
        config.load(path, ["train.learning_rate"])
    assert "section.field=value" in str(info.value)
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.yaml")


def test_cross_field_rules():
    cfg = config.RunConfig()
    cfg.method.name = "prefix"
    cfg.data.padding = "packing"
    assert any(p == "data.padding" for p, _ in config.validate(cfg))


def test_every_field_has_help_text():
    for section, name, field, _ in config.field_info(config.RunConfig()):
        assert field.metadata.get("help"), f"{section}.{name} has no help text"


def test_missing_files_are_reported_with_the_other_problems(tmp_path):
    path = tmp_path / "run.yaml"
    config.save(config.RunConfig(), path)
    overrides = [f"data.train={tmp_path / 'gone.jsonl'}", "model.path=./no-such-model", "method.rank=0"]
    with pytest.raises(ConfigError) as info:
        config.load(path, overrides, check_files=True)
    paths = dict(info.value.errors)
    assert "gone.jsonl does not exist" in paths["data.train"]
    assert "hub id" in paths["model.path"] and "method.rank" in paths
    config.load(path, ["model.path=meta-llama/Llama-3.2-1B"], check_files=False)  # hub ids are fine
