"""``studio push`` against a local stand-in of the Hub: files, model card, progress, and a token that is never kept."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from studio.cli import main

from worker_runs import build_tiny_model, make_run_dir, train_in_process

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from hub_standin import HubStandIn  # noqa: E402

pytestmark = pytest.mark.integration
TOKEN = "hf_standinSECRETtoken123"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("push")
    model = build_tiny_model(base / "model")
    run = make_run_dir(base, model, {"train.max_steps": 2, "train.batch_size": 2, "data.eval_fraction": 0.25,
                                     "eval.every_steps": 2, "eval.sample_prompts": [], "data.max_length": 96}, rows=8)
    assert train_in_process(run) == "completed"
    return run


@pytest.fixture
def hub(monkeypatch):
    with HubStandIn(TOKEN) as standin:
        monkeypatch.setenv("HF_ENDPOINT", standin.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield standin


def _no_token_left(run_dir: Path, *outputs: str) -> None:
    for path in run_dir.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".jsonl", ".log", ".json", ".txt", ""):
            assert TOKEN not in path.read_text(encoding="utf-8", errors="replace"), path
    for text in outputs:
        assert TOKEN not in text


def test_adapter_push_uploads_files_and_a_model_card(run_dir, hub, capsys):
    assert main(["push", str(run_dir), "alice/travel-lora", "--json"]) == 0
    out, err = capsys.readouterr()
    assert [(r["organization"], r["name"]) for r in hub.repos] == [("alice", "travel-lora")]
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "README.md"} <= set(hub.files)
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in hub.requests)
    card = hub.files["README.md"].decode()
    assert "library_name: peft" in card and "## Base model" in card and "train.jsonl" in card
    assert "| method.rank | 4 |" in card and "| eval_loss |" in card and "| status | completed |" in card
    events = [json.loads(line) for line in out.splitlines()]
    progress = [e for e in events if e["type"] == "progress"]
    assert progress[-1]["done"] == progress[-1]["total"] > 0
    assert next(e for e in events if e["type"] == "pushed")["url"].endswith("/alice/travel-lora/commit/0123abcd")
    _no_token_left(run_dir, out, err)


def test_gguf_push_carries_the_checked_file_and_modelfile(run_dir, hub, capsys):
    assert main(["push", str(run_dir), "alice/travel-gguf", "--what", "gguf", "--quant", "q8_0"]) == 0
    assert {"test-q8_0.gguf", "Modelfile", "gguf-check.json", "README.md"} <= set(hub.files)
    assert json.loads(hub.files["gguf-check.json"])["passed"]
    assert "export check: **passed**" in hub.files["README.md"].decode()
    _no_token_left(run_dir, *capsys.readouterr())


def test_a_rejected_token_and_a_missing_token_say_what_to_do(run_dir, hub, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_token_value")
    assert main(["push", str(run_dir), "alice/x"]) == 2
    err = capsys.readouterr().err
    assert "pushing to alice/x failed" in err and "401" in err and "hf_wrong_token_value" not in err
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    assert main(["push", str(run_dir), "alice/x"]) == 2
    assert "no Hugging Face token" in capsys.readouterr().err
    assert main(["push", str(run_dir), "not a repo"]) == 2
    assert "OWNER/NAME" in capsys.readouterr().err
