"""Preflight: exact trainable-parameter counts, memory parts, and each lint on a crafted case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.core import config as config_mod
from studio.core.memory import estimate_memory, objective_estimate, trainable_params
from studio.core.modelshape import ModelShape, derived_llama_shapes, read_model_shape
from studio.core.preflight import lints, render_probe

ROOT = Path(__file__).resolve().parents[3]

SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=1000, max_position_embeddings=256, tie_word_embeddings=False)


def _cfg(**sections) -> config_mod.RunConfig:
    data = {"model": {"path": "unused"}}
    data.update(sections)
    return config_mod.from_dict(data)


def _shape(**overrides) -> ModelShape:
    values = {**SMALL, **overrides}
    shape = ModelShape(path="", model_type="llama", hidden_size=values["hidden_size"],
                       intermediate_size=values["intermediate_size"], num_layers=values["num_hidden_layers"],
                       num_heads=values["num_attention_heads"], num_kv_heads=values["num_key_value_heads"],
                       head_dim=values["hidden_size"] // values["num_attention_heads"],
                       vocab_size=values["vocab_size"], max_position_embeddings=values["max_position_embeddings"],
                       tie_word_embeddings=values["tie_word_embeddings"], dtype="float32")
    shape.tensors = derived_llama_shapes(shape)
    return shape


def test_lora_parameters_by_hand():
    # per layer, rank 8: q 8*(64+64) + k,v 8*(64+32) each + o 8*(64+64) + gate, up, down 8*(64+128) each
    per_layer = 1024 + 768 + 768 + 1024 + 3 * 1536
    cfg = _cfg(method={"name": "lora", "rank": 8})
    assert trainable_params(_shape(), cfg) == 2 * per_layer
    cfg = _cfg(method={"name": "lora", "rank": 4, "target_modules": ["q_proj", "v_proj"]})
    assert trainable_params(_shape(), cfg) == 2 * (4 * 128 + 4 * 96)


def test_full_and_freeze_parameters():
    shape = _shape()
    embed = 1000 * 64
    per_layer = 64 * 64 * 2 + 32 * 64 * 2 + 3 * 64 * 128 + 2 * 64
    assert shape.params_total == 2 * embed + 2 * per_layer + 64
    assert trainable_params(shape, _cfg(method={"name": "full"}, train={"learning_rate": 1e-5})) == shape.params_total
    # the last layer, the final norm and the untied output head
    freeze = _cfg(method={"name": "freeze", "freeze_trainable_layers": 1})
    assert trainable_params(shape, freeze) == per_layer + 64 + embed


@pytest.mark.parametrize("method", [
    {"name": "lora", "rank": 8}, {"name": "dora", "rank": 4},
    {"name": "lora", "rank": 2, "target_modules": ["q_proj", "o_proj"]},
    {"name": "ia3"}, {"name": "prompt", "num_virtual_tokens": 5}, {"name": "prefix", "num_virtual_tokens": 5},
    {"name": "ptuning", "num_virtual_tokens": 5}, {"name": "freeze", "freeze_trainable_layers": 1}, {"name": "full"},
])
def test_trainable_parameters_match_the_worker(method):
    """The estimate counts exactly what the worker's method code (PEFT underneath) trains, of the same total."""
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    from studio.worker.methods import apply_method, count_parameters

    torch.manual_seed(0)
    cfg = _cfg(method=method, data={"padding": "longest"}, train={"learning_rate": 1e-2})
    model = apply_method(LlamaForCausalLM(LlamaConfig(**SMALL)), cfg)
    total, counted = count_parameters(model)
    assert trainable_params(_shape(), cfg) == counted
    estimate = estimate_memory(_shape(), cfg)  # the Method page's share equals the Train page's
    assert (estimate.params_trainable, estimate.params_total) == (counted, total)


def test_safetensors_header_gives_exact_shapes(tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**{**SMALL, "tie_word_embeddings": True}))
    model.save_pretrained(tmp_path)
    shape = read_model_shape(tmp_path)
    assert shape.exact
    assert shape.params_total == model.num_parameters()
    assert "lm_head.weight" not in shape.tensors  # tied: stored once
    assert shape.max_position_embeddings == 256


def test_memory_parts_follow_the_settings():
    shape = _shape()
    lora = estimate_memory(shape, _cfg(train={"batch_size": 2, "precision": "fp32"}, data={"max_length": 128}))
    assert lora.gradients == lora.params_trainable * 4 and lora.optimizer == lora.params_trainable * 8
    assert lora.weights == shape.params_total * 4
    assert lora.logits == 2 * 128 * 1000 * 4 * 2  # SFT: one chunk of logits and its gradient, here all 256 rows
    dpo_logits = estimate_memory(shape, _cfg(train={"batch_size": 2, "precision": "fp32", "objective": "dpo"},
                                             data={"max_length": 128, "padding": "longest"})).logits
    assert dpo_logits == 2 * 128 * 1000 * 12  # TRL: full logits, float32 copy and gradient
    bigger = estimate_memory(shape, _cfg(train={"batch_size": 4, "precision": "fp32"}, data={"max_length": 128}))
    assert bigger.activations == 2 * lora.activations
    ckpt = estimate_memory(shape, _cfg(train={"batch_size": 4, "precision": "fp32", "gradient_checkpointing": True},
                                       data={"max_length": 128}))
    assert ckpt.activations < bigger.activations
    qlora = estimate_memory(shape, _cfg(method={"name": "qlora"}, train={"precision": "bf16"}))
    assert qlora.weights < shape.params_total * 2  # linear layers in 4 bits
    dpo = objective_estimate(shape, _cfg(train={"objective": "dpo", "batch_size": 2}, data={"padding": "longest"}))
    assert dpo.batch_size == 4
    assert "GiB" in lora.text() or "MiB" in lora.text()


# -- lints ---------------------------------------------------------------------------------

LLAMA3_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                   "{{ m['content'] | trim }}<|eot_id|>{% endfor %}")
NO_EOT_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"


class _Row:
    def __init__(self, row, ids, truncated=False, original=None):
        self.row, self.input_ids, self.truncated = row, ids, truncated
        self.original_length = original or len(ids)
        self.lost_loss_tokens = 3 if truncated else 0


@pytest.fixture(scope="module")
def demo_tokenizer():
    tok_mod = pytest.importorskip("studio.core.tokenizer", reason="core tokenizer not in the tree yet")
    demo = Path(__file__).resolve().parents[3] / "resources" / "demo-model"
    if not (demo / "tokenizer.json").exists():
        pytest.skip("resources/demo-model is not built yet")
    return tok_mod.load_tokenizer(str(demo))


def _demo_cfg() -> config_mod.RunConfig:
    """The shipped demo preset (the config defaults until the preset lands)."""
    preset = Path(__file__).resolve().parents[3] / "resources" / "presets" / "demo.yaml"
    return config_mod.load(preset) if preset.exists() else config_mod.RunConfig()


def _codes(found) -> set[str]:
    return {lint.code for lint in found}


def test_demo_config_has_no_lints(demo_tokenizer):
    cfg = _demo_cfg()
    assert lints(cfg, demo_tokenizer) == []


@pytest.mark.parametrize("preset", sorted(p.name for p in (Path(__file__).resolve().parents[3] / "resources"
                                                          / "presets").glob("*.yaml")))
def test_shipped_presets_have_no_lints(demo_tokenizer, preset):
    cfg = config_mod.load(Path(__file__).resolve().parents[3] / "resources" / "presets" / preset)
    assert [(lint.code, lint.message) for lint in lints(cfg, demo_tokenizer)] == []


def test_learning_rate_range_follows_method_and_objective(demo_tokenizer):
    def flagged(method, objective, lr, params=8_000_000_000):
        cfg = config_mod.from_dict({"method": {"name": method}, "data": {"padding": "longest"},
                                    "train": {"objective": objective, "learning_rate": lr}})
        return "learning_rate" in _codes(lints(cfg, demo_tokenizer, params_total=params))

    assert not flagged("lora", "sft", 2e-4) and flagged("lora", "sft", 1e-5) and flagged("lora", "sft", 1e-2)
    assert not flagged("lora", "dpo", 5e-6) and flagged("lora", "dpo", 1e-3)
    assert not flagged("full", "sft", 1e-5) and not flagged("prompt", "sft", 3e-2) and flagged("prompt", "sft", 1e-4)
    # a tiny model (like the demo) trains well at rates 10x higher; far too low stays flagged
    assert not flagged("lora", "sft", 4e-3, params=1_000_000) and flagged("lora", "sft", 5e-2, params=1_000_000)
    assert flagged("lora", "sft", 1e-6, params=1_000_000)


def test_sft_logit_chunk_matches_the_worker_loss():
    pytest.importorskip("torch")
    from studio.core.memory import SFT_LOSS_CHUNK_BYTES
    from studio.worker.loss import CHUNK_BYTES

    assert SFT_LOSS_CHUNK_BYTES == CHUNK_BYTES


def test_each_lint_fires_on_its_crafted_case(demo_tokenizer):
    tok = demo_tokenizer
    bos = tok.token_to_id(tok.bos_token)
    base = dict(model={"path": "resources/demo-model"})
    assert "pad_is_eos" in _codes(lints(config_mod.from_dict({**base, "data": {"pad_token": tok.eos_token}}), tok))
    assert "no_eval" in _codes(lints(config_mod.from_dict({**base, "data": {"eval_fraction": 0.0}}), tok))
    assert "learning_rate" in _codes(lints(config_mod.from_dict({**base, "train": {"learning_rate": 0.5}}), tok))
    full = config_mod.from_dict({**base, "method": {"name": "full"}, "train": {"learning_rate": 1e-3}})
    assert "learning_rate" in _codes(lints(full, tok, params_total=8_000_000_000))
    assert "context_length" in _codes(lints(config_mod.from_dict({**base, "data": {"max_length": 999_999}}), tok))
    cfg = config_mod.from_dict(base)
    assert "no_end_of_turn" in _codes(lints(cfg, tok, template_text=NO_EOT_TEMPLATE))
    doubled = [_Row(1, [bos, bos, 5, 6]), _Row(2, [bos, 7, 8])]
    found = [lint for lint in lints(cfg, tok, doubled) if lint.code == "double_bos"]
    assert found and "rows 1" in found[0].message
    cut = [_Row(n, [bos, 5], truncated=n < 3, original=900) for n in range(10)]
    assert "truncation" in _codes(lints(cfg, tok, cut))
    assert "truncation" not in _codes(lints(cfg, tok, cut[3:]))


def test_double_bos_from_a_template_that_writes_it_twice(demo_tokenizer):
    cfg = config_mod.from_dict({"model": {"path": "resources/demo-model"}})
    twice = "{{ bos_token }}" + LLAMA3_TEMPLATE
    assert "double_bos" in _codes(lints(cfg, demo_tokenizer, template_text=twice))
    assert "double_bos" not in _codes(lints(cfg, demo_tokenizer, template_text=LLAMA3_TEMPLATE))


def test_render_probe_matches_transformers_rendering(demo_tokenizer):
    text = render_probe(demo_tokenizer, LLAMA3_TEMPLATE, [("user", "Hi"), ("assistant", "Yo")])
    assert text == (f"{demo_tokenizer.bos_token}<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\nYo<|eot_id|>")


def test_report_on_the_demo_config_reads_everything(demo_tokenizer):
    from studio.core.preflight import report

    pytest.importorskip("studio.core.encoding", reason="core encoding not in the tree yet")
    if not Path(demo_tokenizer.path, "config.json").exists():
        pytest.skip("resources/demo-model has no weights yet")

    cfg = _demo_cfg()
    rep = report(cfg)
    assert rep.rows_checked > 0 and rep.estimate and rep.estimate.params_trainable > 0
    assert json.loads(json.dumps(rep.to_dict()))["method"] == cfg.method.name
    assert "Memory estimate" in rep.text()


def test_report_names_a_missing_model(tmp_path):
    from studio.core.preflight import report

    rep = report(config_mod.from_dict({"model": {"path": str(tmp_path / "nope")}}))
    assert rep.errors and "nope" in rep.errors[0].message


@pytest.mark.slow
def test_estimate_matches_a_real_worker_peak(tmp_path):
    """The demo-shaped LoRA run of benchmarks/preflight_memory.py: measured peak within 0.5x..2x."""
    pytest.importorskip("torch")
    import importlib.util

    path = Path(__file__).resolve().parents[3] / "benchmarks" / "preflight_memory.py"
    spec = importlib.util.spec_from_file_location("preflight_memory", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.run_case("demo-shape lora", tmp_path)
    assert 0.5 <= result["ratio"] <= 2.0, result


def test_train_device_is_checked_against_what_the_machine_has():
    from studio.core.accelerator import GpuInfo
    from studio.core.machine import device_problem, from_info

    linux_cpu = from_info(GpuInfo(system="Linux", machine="x86_64"), "2.13.0+cpu")
    assert linux_cpu.devices == {"cpu"} and linux_cpu.gpu_text() == "no GPU"
    message, hint = device_problem("mps", linux_cpu)
    assert "train.device is mps" in message and "no Apple GPU" in message and "auto" in hint
    assert "no NVIDIA or AMD GPU" in device_problem("cuda", linux_cpu)[0]
    assert device_problem("auto", linux_cpu) is None and device_problem("cpu", linux_cpu) is None

    smi = "NVIDIA H200, 143771 MiB, 570.86.15, 9.0\n"
    gpu_box = from_info(GpuInfo(system="Linux", nvidia_smi=smi), "2.13.0+cu128")
    assert gpu_box.gpus == 1 and device_problem("cuda", gpu_box) is None
    cpu_torch = from_info(GpuInfo(system="Linux", nvidia_smi=smi), "2.13.0+cpu")
    assert "CPU-only build" in device_problem("cuda", cpu_torch)[0]
    # A driver seen without nvidia-smi on the path still counts: never refuse a GPU that is there.
    assert "cuda" in from_info(GpuInfo(system="Linux"), "", nvidia_device_files=True).devices
    mac = from_info(GpuInfo(system="Darwin", machine="arm64"), "2.13.0")
    assert device_problem("mps", mac) is None and mac.gpu_text() == "an Apple GPU (mps)"


def test_preflight_counts_rows_of_the_file_not_encoded_sequences():
    from studio.core.models import resolve_config_paths
    from studio.core.preflight import report

    cfg = resolve_config_paths(config_mod.load(ROOT / "resources" / "presets" / "dpo.yaml"))
    lines = Path(cfg.data.train).read_text(encoding="utf-8").splitlines()
    assert report(cfg, max_rows=500).rows_checked == len([line for line in lines if line.strip()]) == 150
