"""A run's final adapter exports as a PEFT adapter and as a merged model that transformers loads and runs."""

from __future__ import annotations

import json

import pytest
import torch

from studio.core.errors import StudioError
from studio.worker import export

from worker_runs import build_tiny_model, make_run_dir, train_in_process

pytestmark = pytest.mark.integration

FAST = {"train.max_steps": 2, "train.batch_size": 2, "data.eval_fraction": 0.0, "eval.sample_prompts": [],
        "data.max_length": 96, "train.learning_rate": 5e-2}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("model"))


def _prompt(tok):
    text = tok.apply_chat_template([{"role": "user", "content": "Tips for Lisbon?"}], add_generation_prompt=True,
                                   tokenize=False)
    return torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])


def test_lora_run_exports_a_merged_model_that_loads_and_generates(tmp_path, model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir = make_run_dir(tmp_path, model, {**FAST, "method.name": "lora"}, rows=8)
    assert train_in_process(run_dir) == "completed"
    manifest = json.loads((run_dir / "final" / "studio.json").read_text())
    assert manifest["kind"] == "adapter" and (run_dir / "final" / "adapter_config.json").exists()

    out = export.export_merged(run_dir, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.chat_template and "<|start_header_id|>" in tok.chat_template
    ids = _prompt(tok)
    generated = merged.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=5,
                                do_sample=False, pad_token_id=tok.pad_token_id)
    assert generated.shape[1] > ids.shape[1]
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    stops = merged.generation_config.eos_token_id
    assert eot in (stops if isinstance(stops, list) else [stops]), "the exported model stops at end of turn"

    untouched = AutoModelForCausalLM.from_pretrained(str(model)).eval()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(model)), str(run_dir / "final")).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapted(ids).logits, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(untouched(ids).logits, merged(ids).logits, atol=1e-4), "training changed the model"

    adapter_out = export.export_adapter(run_dir, tmp_path / "adapter")
    assert (adapter_out / "adapter_model.safetensors").exists() and (adapter_out / "tokenizer.json").exists()


def test_full_run_final_is_a_model_and_exports(tmp_path, model):
    from transformers import AutoModelForCausalLM

    run_dir = make_run_dir(tmp_path, model, {**FAST, "method.name": "full", "train.learning_rate": 1e-3}, rows=8)
    assert train_in_process(run_dir) == "completed"
    assert (run_dir / "final" / "config.json").exists()
    out = export.export_merged(run_dir, tmp_path / "merged")
    AutoModelForCausalLM.from_pretrained(str(out))
    with pytest.raises(StudioError, match="no adapter"):
        export.export_adapter(run_dir, tmp_path / "adapter")


def test_prompt_methods_cannot_be_merged(tmp_path, model):
    run_dir = make_run_dir(tmp_path, model, {**FAST, "method.name": "prefix", "data.padding": "longest"}, rows=8)
    assert train_in_process(run_dir) == "completed"
    with pytest.raises(StudioError) as info:
        export.export_merged(run_dir, tmp_path / "merged")
    assert "cannot be exported as a merged model" in info.value.message and "--adapter" in info.value.hint
    assert (export.export_adapter(run_dir, tmp_path / "adapter") / "adapter_config.json").exists()
