"""Hostile and odd inputs: each becomes a bad row or a config error naming the setting, never a crash.

The fuzz tests run a bounded, fixed set of generated cases (derandomized) so CI stays quick and
repeatable; a new crash class among them fails CI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.core import config as configmod
from studio.core.data import load_examples
from studio.core.encoding import EncodeOptions, Encoder
from studio.core.errors import ConfigError, DataError
from studio.core.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parents[3]
DEMO_MODEL = ROOT / "resources" / "demo-model"
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _chat(content) -> str:
    return json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": content}]})


def test_a_deeply_nested_row_is_one_bad_row_not_a_dead_file(tmp_path):
    path = tmp_path / "train.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    path.write_text("\n".join([_chat("one"), _chat("x")[:-1] + f', "extra": {deep}}}', _chat("three")]) + "\n")
    report = load_examples(path)
    assert [e.row for e in report.examples] == [1, 3]
    assert [(b.row, "nested too deeply" in b.reason) for b in report.bad_rows] == [(2, True)]


def test_a_lone_surrogate_is_a_bad_row_naming_the_field(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(_chat("fine") + "\n" + _chat("broken \ud800 half") + "\n")  # JSON's escape for half a character
    report = load_examples(path)
    assert [e.row for e in report.examples] == [1]
    assert report.bad_rows[0].row == 2 and "'messages[1].content' holds an unpaired UTF-16 surrogate" in \
        report.bad_rows[0].reason


def _config_problem(tmp_path, text: str | bytes, overrides=()) -> list[tuple[str, str]]:
    path = tmp_path / "config.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as caught:
        configmod.load(path, list(overrides))
    return caught.value.errors


@pytest.mark.parametrize("text, words", [
    ("- a\n- b\n", "holds a YAML list"), ("just words\n", "holds a YAML str"),
    (b"name: caf\xe9\n", "not UTF-8"),
    ("a: &a [1, 1]\nb: &b [*a, *a]\nc: [*b, *b]\n", "alias *a is not allowed")])
def test_a_config_file_that_is_not_a_mapping_of_settings_is_named(tmp_path, text, words):
    [(where, reason)] = _config_problem(tmp_path, text)
    assert where == "<file>" and words in reason


def test_a_folder_given_as_the_config_is_named(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        configmod.load(tmp_path)


@pytest.mark.parametrize("setting, value", [
    ("train.learning_rate", ".nan"), ("train.learning_rate", ".inf"), ("train.warmup_ratio", ".nan"),
    ("train.epochs", "1e300"), ("train.seed", "99999999999999999999"), ("train.max_grad_norm", "-.inf"),
    ("data.seed", "-1"), ("train.max_steps", "1e400")])
def test_non_finite_and_huge_numbers_are_refused_naming_the_setting(tmp_path, setting, value):
    section, name = setting.split(".")
    problems = _config_problem(tmp_path, f"{section}:\n  {name}: {value}\n")
    assert [where for where, _ in problems] == [setting], problems


def test_an_override_through_a_setting_and_a_model_path_that_is_a_file_are_named(tmp_path):
    [(where, reason)] = _config_problem(tmp_path, "train:\n  max_steps: 5\n", ["train.max_steps.x=1"])
    assert where == "train.max_steps.x" and "train.max_steps is a setting, not a section" in reason
    model_file = tmp_path / "model.safetensors"
    model_file.write_bytes(b"x")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"path": str(model_file)}}))
    with pytest.raises(ConfigError) as caught:
        configmod.load(path, check_files=True)
    assert ("model.path", f"{model_file} is a file; give the model's folder (the one holding config.json and the "
            "weights)") in caught.value.errors


# -- fuzz ------------------------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
ROW = st.one_of(JSON.map(json.dumps), st.builds(_chat, st.text()), st.text(max_size=40).map(lambda t: t.replace("\n", " ")),
                st.builds(lambda n: "[" * n + "]" * n, st.integers(0, 50_000)))


@FUZZ
@given(st.lists(ROW, min_size=1, max_size=6))
def test_fuzzed_jsonl_files_give_rows_and_bad_rows_or_a_data_error(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("fuzz") / "train.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    try:
        report = load_examples(path)
    except DataError as exc:
        assert exc.message
        return
    assert len(report.examples) + len(report.bad_rows) <= len(lines)


@pytest.fixture(scope="module")
def encoder():
    return Encoder(load_tokenizer(DEMO_MODEL), EncodeOptions(template="llama3", max_length=64))


@FUZZ
@given(st.text(alphabet=st.characters() | st.characters(categories=["Cs"]), max_size=60))  # Cs: lone surrogates
def test_fuzzed_message_text_encodes_or_is_a_bad_row(tmp_path_factory, encoder, text):
    path = tmp_path_factory.mktemp("fuzz") / "train.jsonl"
    path.write_text(_chat(text) + "\n", encoding="utf-8")  # json.dumps escapes surrogates as \\udXXX
    try:
        report = load_examples(path)
    except DataError:
        return  # no usable row: the error names the file and the rows
    for example in report.examples:
        encoded = encoder.encode(example)
        assert len(encoded.input_ids) == len(encoded.labels) <= 64


SETTING = st.sampled_from(["name", "model", "data", "method", "train", "eval", "output", "distributed", "x"])
FIELD = st.sampled_from(["learning_rate", "max_steps", "seed", "epochs", "rank", "train", "columns", "report_to",
                         "max_length", "padding", "name", "y"])
VALUE = st.one_of(JSON, st.sampled_from([".nan", ".inf", "1e999", "-1", "yes", "[1,2]", "{a: 1}"]))


@FUZZ
@given(st.one_of(st.text(max_size=80), st.dictionaries(SETTING, st.dictionaries(FIELD, VALUE, max_size=3) | VALUE,
                                                          max_size=4).map(lambda d: yaml.safe_dump(d))),
       st.lists(st.builds(lambda s, f, v: f"{s}.{f}={v}", SETTING, FIELD, st.text(max_size=12)), max_size=3))
def test_fuzzed_configs_and_overrides_load_or_name_the_settings(tmp_path_factory, text, overrides):
    path = tmp_path_factory.mktemp("fuzz") / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        cfg = configmod.load(path, overrides)
    except ConfigError as exc:
        assert exc.errors and all(isinstance(where, str) and reason for where, reason in exc.errors)
        return
    assert configmod.validate(cfg) == []
