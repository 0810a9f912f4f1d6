"""Every fine-tuning method trains with the SFT recipe: what should change changes, the rest does not."""

from __future__ import annotations

import json

import pytest
import torch

from studio.core import config as configmod
from studio.worker.context import RunContext
from studio.worker.events import Events
from studio.worker.recipes.sft import SFTRecipe

from worker_runs import make_run_dir

FAST = {"train.max_steps": 2, "train.batch_size": 2, "data.eval_fraction": 0.0, "eval.sample_prompts": [],
        "output.save_every_steps": 100, "data.max_length": 96}


def _setup(tmp_path, tiny_model, method, **overrides):
    padding = "longest" if method in ("prefix", "prompt", "ptuning") else "packing"
    lr = 0.05 if method in ("prefix", "prompt", "ptuning", "ia3") else 1e-2
    run_dir = make_run_dir(tmp_path, tiny_model, {**FAST, "method.name": method, "data.padding": padding,
                                                   "train.learning_rate": lr, **overrides}, rows=12)
    cfg = configmod.load(run_dir / "config.yaml")
    ctx = RunContext(cfg, run_dir, Events(run_dir / "events.jsonl", stdout=None))
    recipe = SFTRecipe(ctx)
    recipe.setup()
    return recipe


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _changed(before, model) -> tuple[set, set]:
    changed, same = set(), set()
    for n, p in model.named_parameters():
        (same if torch.equal(before[n], p.detach()) else changed).add(n)
    return changed, same


@pytest.mark.parametrize("method", ["full", "freeze", "lora", "dora", "ia3", "prefix", "prompt", "ptuning"])
def test_method_trains_only_its_parameters(tmp_path, tiny_model, method):
    extra = {"method.freeze_trainable_layers": 1} if method == "freeze" else {}
    recipe = _setup(tmp_path, tiny_model, method, **extra)
    model = recipe.acc.unwrap_model(recipe.model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    before = _snapshot(model)
    assert recipe.train() == "completed"
    changed, same = _changed(before, model)
    assert trainable, "some parameters must train"
    assert changed == trainable, f"changed but frozen: {changed - trainable}; trainable but unchanged: {trainable - changed}"
    if method != "full":
        assert any("layers.0." in n for n in same), "frozen base weights must not move"
    assert recipe.params_trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_freeze_trains_the_last_layers_and_final_norm(tmp_path, tiny_model):
    recipe = _setup(tmp_path, tiny_model, "freeze", **{"method.freeze_trainable_layers": 1})
    names = {n for n, p in recipe.model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("model.layers.1.", "model.norm.")) for n in names)
    assert "model.norm.weight" in names and "model.embed_tokens.weight" not in names


def test_qlora_quantises_the_base_to_4bit_and_trains_adapters(tmp_path, tiny_model):
    import bitsandbytes as bnb

    # Evaluation and samples run the 4-bit layers in eval mode without gradients, the path on
    # which bitsandbytes repacks weights on AVX512-BF16 CPUs; it must stay off.
    recipe = _setup(tmp_path, tiny_model, "qlora", **{"method.quant_type": "nf4", "train.precision": "bf16",
                                                       "data.eval_fraction": 0.25, "eval.every_steps": 1,
                                                       "eval.sample_prompts": ["Hi"], "eval.sample_max_new_tokens": 2,
                                                       "eval.sample_every_steps": 1})
    model = recipe.acc.unwrap_model(recipe.model)
    q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj.base_layer, bnb.nn.Linear4bit)
    assert q_proj.base_layer.weight.quant_type == "nf4"
    before = _snapshot(model)
    recipe.train()
    changed, same = _changed(before, model)
    assert changed and all("lora_" in n for n in changed)
    assert any("base_layer" in n for n in same)
    events = [json.loads(line) for line in (recipe.ctx.run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["type"] == "eval"] == [1, 2]
    assert [e["step"] for e in events if e["type"] == "sample"] == [1, 2]


def test_dora_adds_magnitude_vectors(tmp_path, tiny_model):
    recipe = _setup(tmp_path, tiny_model, "dora")
    names = [n for n, p in recipe.model.named_parameters() if p.requires_grad]
    assert any("lora_magnitude_vector" in n for n in names)


def test_a_model_that_needs_its_own_code_is_refused_with_the_trust_setting_named(tmp_path):
    from studio.core.errors import ModelError
    from studio.worker.methods import load_model

    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "studio_custom", "architectures": ["CustomForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_custom.CustomConfig",
                     "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}}))
    marker = tmp_path / "code-ran"
    for name in ("configuration_custom.py", "modeling_custom.py"):
        (folder / name).write_text(f"open({str(marker)!r}, 'w').close()\n")
    with pytest.raises(ModelError) as caught:
        load_model(configmod.RunConfig(), folder, torch.device("cpu"), "fp32")
    assert "needs its own Python code" in caught.value.message and "model.trust_remote_code" in caught.value.hint
    assert not marker.exists()


def test_the_registry_row_ends_at_the_last_step_of_the_run(tmp_path):
    """Step writes are throttled to one a second; the row must still end where the run did."""
    from studio.core.runs import Registry
    from studio.worker.main import RegistryUpdater

    registry = Registry()
    run_id = registry.add(tmp_path, {"name": "x"})
    events = Events(tmp_path / "events.jsonl", stdout=None)
    events.subscribe(RegistryUpdater(registry, run_id))
    events.emit("started", config={}, params_total=1, params_trainable=1, train_rows=1, eval_rows=0, device="cpu",
                max_steps=30)
    for step in range(1, 7):
        events.emit("step", step=step, epoch=0, loss=1.0, learning_rate=0.1, grad_norm=None, tokens_per_second=1.0,
                    tokens_seen=step, memory_mib=1.0)
    events.emit("checkpoint", step=6, path=str(tmp_path))
    events.emit("finished", status="stopped")
    events.close()
    assert registry.get(run_id).step == 6
