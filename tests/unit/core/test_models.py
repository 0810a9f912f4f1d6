"""Describing model folders from their files alone, and the Hugging Face cache/hub helpers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

from studio.core import models
from studio.core.errors import ModelError

LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16,
    "num_hidden_layers": 2, "vocab_size": 300, "max_position_embeddings": 512,
    "intermediate_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2, "torch_dtype": "float32",
}


def _model_folder(tmp_path, config=LLAMA_CONFIG, weights=True, template=True, pad=None):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    if weights:
        save_file({"a": np.zeros((300, 16), np.float32), "b": np.zeros((16, 32), np.float32)},
                  str(folder / "model.safetensors"))
    tok_cfg = {"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>", "special": True},
               "added_tokens_decoder": {"1": {"content": "<|start_header_id|>", "special": True},
                                        "2": {"content": "<|eot_id|>", "special": True}}}
    if template:
        tok_cfg["chat_template"] = "{{ bos_token }}"
    if pad:
        tok_cfg["pad_token"] = pad
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    (folder / "tokenizer.json").write_text("{}")
    return folder


def test_counts_parameters_from_safetensors_headers(tmp_path):
    info = models.describe_model(_model_folder(tmp_path))
    assert info.parameters == 300 * 16 + 16 * 32
    assert info.parameters_exact
    assert info.architecture == "LlamaForCausalLM"
    assert (info.vocab_size, info.context_length, info.layers) == (300, 512, 2)


def test_reads_special_tokens_template_and_missing_pad(tmp_path):
    info = models.describe_model(_model_folder(tmp_path))
    assert info.special_tokens == {"bos": "<|begin_of_text|>", "eos": "<|eot_id|>"}
    assert info.extra_special_tokens == ["<|start_header_id|>"]
    assert info.has_chat_template
    assert info.pad_token == ""


def test_pad_token_and_no_template_warning(tmp_path):
    info = models.describe_model(_model_folder(tmp_path, template=False, pad="<|finetune_right_pad_id|>"))
    assert info.pad_token == "<|finetune_right_pad_id|>"
    assert not info.has_chat_template
    assert any("chat template" in w for w in info.warnings)


def test_estimates_parameters_without_weights(tmp_path):
    info = models.describe_model(_model_folder(tmp_path, weights=False))
    assert not info.parameters_exact
    assert info.parameters == models.estimate_parameters(LLAMA_CONFIG) > 0
    assert "estimated" in info.parameters_text()


def test_remote_code_is_flagged(tmp_path):
    info = models.describe_model(_model_folder(tmp_path, config={**LLAMA_CONFIG, "auto_map": {"AutoModel": "x.Y"}}))
    assert info.needs_remote_code
    assert any("trust remote code" in w for w in info.warnings)


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(ModelError) as exc:
        models.describe_model(tmp_path / "nope")
    assert "nope" in exc.value.message and exc.value.hint


def test_empty_folder_says_what_is_missing(tmp_path):
    with pytest.raises(ModelError, match="config.json"):
        models.describe_model(tmp_path)


def test_demo_model_is_described():
    demo = models.resource_path("resources/demo-model")
    if not (demo / "config.json").exists():
        pytest.skip("resources/demo-model has not been built yet")
    info = models.describe_model("resources/demo-model")
    assert info.parameters_exact and info.parameters > 0
    assert info.has_chat_template and info.has_tokenizer


def test_cache_listing_finds_a_snapshot(tmp_path):
    snap = tmp_path / "models--acme--tiny" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (tmp_path / "models--acme--tiny" / "refs").mkdir()
    (tmp_path / "models--acme--tiny" / "refs" / "main").write_text("abc123")
    found = models.list_cached_models(tmp_path)
    assert [m.repo_id for m in found] == ["acme/tiny"]
    assert found[0].path.endswith("abc123")


def test_cache_listing_without_cache_is_empty(tmp_path):
    assert models.list_cached_models(tmp_path / "absent") == []


def test_hub_id_detection(tmp_path):
    assert models.looks_like_hub_id("meta-llama/Llama-3.2-1B")
    assert not models.looks_like_hub_id(str(tmp_path))
    assert not models.looks_like_hub_id("just-a-name")


def test_offline_download_says_offline(tmp_path):
    # A child process so HF_HUB_OFFLINE is read fresh by huggingface_hub at import.
    code = ("from studio.core import models\n"
            "try:\n    models.download_model('acme/tiny', cache_dir=r'%s')\n"
            "except Exception as e:\n    print(type(e).__name__, '|', e.message, '|', e.hint)\n") % tmp_path
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.startswith("ModelError"), out.stdout + out.stderr
    assert "offline" in out.stdout and "local folder" in out.stdout


def test_download_progress_reports_bytes_in_mib():
    seen = []
    bar_class = models._progress_class(lambda done, total: seen.append((done, total)))
    files = bar_class(total=3, unit="it")
    files.update(1)
    data = bar_class(total=0, unit="B")
    data.total = 10 * 2**20  # the hub library grows the total as file sizes become known
    data.refresh()
    data.update(4 * 2**20)
    assert seen == [(0, 10), (4, 10)]
