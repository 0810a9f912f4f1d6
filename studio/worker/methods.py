"""Fine-tuning methods: load the base model and decide which parameters train.

full      every parameter trains.
freeze    only the last ``method.freeze_trainable_layers`` decoder layers (and the final norm,
          and the output head when it is not tied to the input embeddings) train.
lora      low-rank adapters on ``method.target_modules`` (``all-linear`` by default).
dora      LoRA with weight decomposition (``use_dora``).
qlora     LoRA on a base model quantised to 4 bits by bitsandbytes (NF4 or FP4).
ia3       learned scaling vectors (IA3) on the attention and feed-forward projections.
prefix    trainable key/value prefixes in every layer (prefix tuning).
prompt    trainable virtual token embeddings before the input (prompt tuning).
ptuning   virtual tokens produced by a small prompt encoder (P-tuning).
"""

from __future__ import annotations

import logging
from pathlib import Path

from studio.core.config import RunConfig
from studio.core.errors import ModelError

log = logging.getLogger("studio.worker")

PROMPT_METHODS = ("prefix", "prompt", "ptuning")
LORA_METHODS = ("lora", "dora", "qlora")
_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def load_model(cfg: RunConfig, model_path: str | Path, device, precision: str):
    """The base causal LM for ``cfg`` on ``device``, with the method applied.

    Trainable weights stay in fp32 (autocast does the low-precision maths); on a GPU the
    frozen base of adapter methods is loaded directly in the compute precision to save memory.
    """
    import torch
    from transformers import AutoModelForCausalLM

    kind = getattr(device, "type", str(device))
    dtype = torch.float32
    if kind == "cuda" and cfg.method.name not in ("full", "freeze") and precision != "fp32":
        dtype = getattr(torch, _DTYPES[precision])
    kwargs = dict(dtype=dtype, trust_remote_code=cfg.model.trust_remote_code, attn_implementation="sdpa")
    if cfg.method.name == "qlora":
        kwargs["quantization_config"] = bnb_config(cfg, precision)
        kwargs["device_map"] = {"": str(device) if kind != "cuda" else torch.cuda.current_device()}
    try:
        model = AutoModelForCausalLM.from_pretrained(str(model_path), **kwargs)
    except (OSError, ValueError) as exc:
        raise custom_code_refusal(model_path, exc) or ModelError(
            f"cannot load the model in {model_path}: {exc}",
            "check model.path: the folder needs config.json and the weights (safetensors)") from None
    if cfg.method.name != "qlora":
        model.to(device)
    elif kind == "cpu":
        _keep_4bit_layout(model)
    if cfg.train.gradient_checkpointing:
        # Non-reentrant checkpointing works with frozen embeddings (no input-grad hack needed).
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return apply_method(model, cfg)


def custom_code_refusal(model_path, exc: BaseException) -> ModelError | None:
    """The error for a model that ships its own Python code, which transformers refused to run."""
    if "trust_remote_code" not in str(exc):
        return None
    return ModelError(f"the model in {model_path} needs its own Python code (modelling files shipped with it) "
                      "to load, and model.trust_remote_code is off",
                      "turn on model.trust_remote_code (the Model page's trust box) only if you trust who made "
                      "the model: its code runs on this machine; or pick a model transformers supports itself")


def _keep_4bit_layout(model) -> None:
    """Turn off bitsandbytes' CPU inference repacking of 4-bit weights.

    On CPUs with AVX512-BF16, bitsandbytes 0.50 repacks a Linear4bit's weights the first time
    it runs in eval mode without gradients (our evaluation and samples). The repacking assumes
    ``in_features`` is a multiple of the quantisation block size and fails otherwise (the demo
    model's 352-wide MLP), and it would leave the weights training continues with repacked.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def bnb_config(cfg: RunConfig, precision: str):
    """The bitsandbytes 4-bit quantisation settings of a QLoRA run."""
    import importlib.util

    import torch
    from transformers import BitsAndBytesConfig

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError("method qlora needs the bitsandbytes package, which is not installed",
                         "install it (pip install 'bitsandbytes>=0.45'), or choose method lora")
    compute = cfg.method.compute_dtype
    if compute == "auto":
        compute = precision
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=cfg.method.quant_type,
                              bnb_4bit_use_double_quant=cfg.method.double_quant,
                              bnb_4bit_compute_dtype=getattr(torch, _DTYPES[compute]))


def apply_method(model, cfg: RunConfig):
    """Freeze what must not train and wrap ``model`` with the method's adapters (PEFT)."""
    name = cfg.method.name
    if name == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if name == "freeze":
        return _freeze_all_but_last(model, cfg.method.freeze_trainable_layers)
    from peft import get_peft_model

    if name == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.train.gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    return get_peft_model(model, peft_config(cfg, model))


def peft_config(cfg: RunConfig, model):
    """The PEFT config object for a LoRA-family, IA3 or prompt-learning method."""
    import peft

    m = cfg.method
    targets = _targets(m.target_modules)
    if m.name in LORA_METHODS:
        return peft.LoraConfig(task_type="CAUSAL_LM", r=m.rank, lora_alpha=m.alpha, lora_dropout=m.dropout,
                               target_modules=targets, use_dora=m.name == "dora")
    if m.name == "ia3":
        # IA3 needs to know which targets are feed-forward; PEFT's per-architecture defaults
        # know that for Llama-like models, so 'all-linear' means "use those defaults".
        if targets == "all-linear":
            return peft.IA3Config(task_type="CAUSAL_LM")
        ff = [t for t in targets if any(k in t for k in ("mlp", "down_proj", "fc2", "w2"))]
        return peft.IA3Config(task_type="CAUSAL_LM", target_modules=targets, feedforward_modules=ff)
    if m.name == "prefix":
        return peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=m.num_virtual_tokens)
    if m.name == "prompt":
        return peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=m.num_virtual_tokens)
    if m.name == "ptuning":
        return peft.PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=m.num_virtual_tokens,
                                        encoder_hidden_size=model.config.hidden_size)
    raise ValueError(f"unknown method {m.name}")


def _targets(target_modules: list) -> str | list:
    if not target_modules or list(target_modules) == ["all-linear"] or target_modules == "all-linear":
        return "all-linear"
    return list(target_modules)


def _freeze_all_but_last(model, n_layers: int):
    """Train the last ``n_layers`` decoder layers, the final norm and an untied output head."""
    for p in model.parameters():
        p.requires_grad_(False)
    layers = decoder_layers(model)
    for layer in layers[-n_layers:]:
        for p in layer.parameters():
            p.requires_grad_(True)
    base = getattr(model, model.base_model_prefix, model)
    if getattr(base, "norm", None) is not None:
        for p in base.norm.parameters():
            p.requires_grad_(True)
    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    if head is not None and head.weight is not embed.weight:
        head.weight.requires_grad_(True)
    return model


def decoder_layers(model) -> list:
    """The transformer blocks of a causal LM (``model.model.layers`` for Llama-like models)."""
    base = getattr(model, model.base_model_prefix, model)
    layers = getattr(base, "layers", None) or getattr(base, "h", None)
    if layers is None:
        raise ModelError(f"cannot find the decoder layers of {type(model).__name__} for the freeze method",
                         "use method lora or full for this architecture")
    return list(layers)


def count_parameters(model) -> tuple[int, int]:
    """(total, trainable) parameter counts; 4-bit weights count as their unpacked size."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
        return int(total), int(trainable)
    total = trainable = 0
    for p in model.parameters():
        n = p.numel() * (2 if p.__class__.__name__ == "Params4bit" else 1)
        total += n
        trainable += n if p.requires_grad else 0
    return total, trainable


def output_head(model):
    """The output projection (``lm_head``) of a model, under any PEFT wrapping."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_output_embeddings()
