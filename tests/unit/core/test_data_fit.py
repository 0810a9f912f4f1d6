"""Preflight catches an objective that does not fit the data, before any run folder exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from studio.core import config as config_mod
from studio.core.preflight import report

ROOT = Path(__file__).resolve().parents[3]
DATASETS = ROOT / "resources" / "datasets"
FIXTURES = ROOT / "tests" / "fixtures" / "data"


def _cfg(objective: str, train: Path, **data) -> config_mod.RunConfig:
    return config_mod.from_dict({"model": {"path": str(ROOT / "resources" / "demo-model")},
                                 "data": {"train": str(train), "max_length": 64, **data},
                                 "train": {"objective": objective}})


def _codes(rep) -> dict[str, str]:
    return {lint.code: lint.severity for lint in rep.lints}


@pytest.mark.parametrize("objective, train, says", [
    ("dpo", DATASETS / "travel_chat.jsonl", "trains on preference pairs"),
    ("orpo", FIXTURES / "kto.jsonl", "trains on preference pairs"),
    ("reward", FIXTURES / "long.txt", "raw text has no prompt or answer"),
    ("kto", DATASETS / "travel_chat.jsonl", "needs every answer marked desirable or not"),
    ("sft", DATASETS / "travel_prefs.jsonl", "SFT would learn only the chosen answers"),
])
def test_mismatch_is_an_error_naming_objective_and_data(objective, train, says):
    rep = report(_cfg(objective, train), max_rows=50)
    lint = next(lint for lint in rep.lints if lint.code == "objective_data")
    assert lint.severity == "error" and f"train.objective={objective}" in lint.message and says in lint.message
    assert rep.errors and rep.rows_checked == 0


def test_unpaired_labels_hint_kto_and_sft_keeps_the_desirable_rows():
    dpo = report(_cfg("dpo", FIXTURES / "kto.jsonl"), max_rows=50)
    assert "train.objective=kto" in next(x for x in dpo.lints if x.code == "objective_data").hint
    sft = report(_cfg("sft", FIXTURES / "kto.jsonl", max_skipped=0.9), max_rows=50)
    lint = next(x for x in sft.lints if x.code == "sft_labels")
    assert lint.severity == "warning" and "trains on the 3 desirable rows and skips the 2 undesirable" in lint.message
    assert sft.rows_checked == 3
    assert "kto.jsonl: 6 rows, 5 rows labelled desirable/undesirable, 1 bad" in sft.data


def test_fitting_data_has_no_data_problem():
    for objective, train in (("sft", DATASETS / "travel_chat.jsonl"), ("kto", FIXTURES / "kto.jsonl"),
                             ("kto", DATASETS / "travel_prefs.jsonl"), ("dpo", DATASETS / "travel_prefs.jsonl"),
                             ("sft", FIXTURES / "long.txt")):
        codes = _codes(report(_cfg(objective, train, max_skipped=0.5), max_rows=20))
        assert "objective_data" not in codes and "skipped_rows" not in codes, (objective, train, codes)


def test_too_many_skipped_rows_is_an_error_with_the_threshold():
    rep = report(_cfg("sft", FIXTURES / "kto.jsonl"), max_rows=20)  # 1 bad + 2 undesirable of 6 rows
    lint = next(x for x in rep.lints if x.code == "skipped_rows")
    assert lint.severity == "error" and "3 of 6 rows (50%) would be skipped" in lint.message
    assert "data.max_skipped=0.1" in lint.message


def test_raw_text_preflight_reports_documents_tokens_and_blocks():
    rep = report(_cfg("sft", FIXTURES / "long.txt", text_split="paragraph", max_length=16), max_rows=1)
    assert "3 text documents (1 held out for evaluation)" in rep.data and "blocks of 16 tokens" in rep.data
    assert "training: 2 documents" in rep.data and "<|end_of_text|>" in rep.data  # the blocks a run trains on
    assert rep.rows_checked >= 3  # every block, not max_rows documents


def test_studio_train_refuses_before_making_a_run_folder(tmp_path):
    env = {"STUDIO_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "studio", "train", str(ROOT / "resources" / "presets" / "demo.yaml"),
           "train.objective=dpo", "--run-dir", str(tmp_path / "run")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0 and "trains on preference pairs" in done.stderr
    assert not (tmp_path / "run").exists()
    dry = subprocess.run(cmd[:-2] + ["--dry-run"], capture_output=True, text=True, env=env, timeout=120)
    assert dry.returncode == 1 and "ERROR [objective_data]" in dry.stdout
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("config.yaml"))


def test_rows_the_template_cannot_render_are_a_preflight_warning_naming_the_row():
    cfg = _cfg("sft", FIXTURES / "parallel_calls.jsonl", max_length=1024)
    cfg.model.template = "llama3.1"
    rep = report(cfg, max_rows=50)
    lint = next(x for x in rep.lints if x.code == "template_rows")
    assert lint.severity == "warning" and "row 4: the chat template cannot render" in lint.message
    assert rep.rows_checked == 4  # rows of the file checked; row 4 is the one refused


@pytest.mark.parametrize("objective, name", [("dpo", "prefs_parallel_calls.jsonl"), ("kto", "kto_parallel_calls.jsonl")])
def test_preference_rows_the_template_cannot_render_are_a_preflight_warning_not_an_error(objective, name):
    cfg = _cfg(objective, FIXTURES / name, max_length=1024)
    cfg.model.template = "llama3.1"
    rep = report(cfg, max_rows=50)
    lint = next(x for x in rep.lints if x.code == "template_rows")
    assert lint.severity == "warning" and "row 4: the chat template cannot render" in lint.message
    assert not [x for x in rep.lints if x.code == "unreadable"]


def test_a_big_json_file_of_raw_text_is_a_preflight_warning_naming_the_file(tmp_path, monkeypatch):
    import json

    from studio.core import text_stream
    from studio.core.data import load_examples

    rows = [{"text": f"Document {n} of a corpus."} for n in range(200)]
    big, lines = tmp_path / "corpus.json", tmp_path / "corpus.jsonl"
    big.write_text(json.dumps(rows), encoding="utf-8")
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    monkeypatch.setattr(text_stream, "BIG_JSON", big.stat().st_size - 1)  # the same code warns past 200 MB
    (lint,) = [lint for lint in report(_cfg("sft", big), max_rows=1).lints if lint.code == "big_json"]
    assert lint.severity == "warning" and str(big) in lint.message and "parsed whole" in lint.message
    assert ".jsonl" in lint.hint and ".txt" in lint.hint
    assert any("parsed whole" in note for note in load_examples(big).notes)  # the Data page and the commands say it
    assert "big_json" not in _codes(report(_cfg("sft", lines), max_rows=1))  # JSON Lines is read as a stream
    monkeypatch.setattr(text_stream, "BIG_JSON", big.stat().st_size)
    assert "big_json" not in _codes(report(_cfg("sft", big), max_rows=1))
