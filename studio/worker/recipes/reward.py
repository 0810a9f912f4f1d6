"""Reward modelling on TRL's ``RewardTrainer``: a model that scores how good an answer is.

The base model is loaded as a sequence classifier with one output (``num_labels=1``): the
language-model head is replaced by a fresh ``score`` layer that reads the last non-pad token,
which is why the model config's ``pad_token_id`` must be the pad token core encoding chose.
The loss is the Bradley-Terry one: ``-log sigmoid(score(chosen) - score(rejected))``;
``eval`` events carry the share of pairs ranked correctly (``accuracy``).

Methods: LoRA-family, IA3 and prompt methods train as PEFT ``SEQ_CLS`` adapters (PEFT also
trains and saves the new ``score`` layer); full and freeze train the weights directly, and the
score layer always trains. ``final/`` holds a sequence-classification model or adapter, marked
``"task": "reward"`` in its manifest.

Data: preference pairs, each side rendered and tokenized by core encoding as a whole
conversation (what the Inspect page shows) and handed to TRL as ``chosen_ids``/``rejected_ids``.
A pair longer than ``data.max_length`` is skipped with a warning, not cut: the score is read at
the last token.
"""

from __future__ import annotations

import json

from studio.core.errors import ModelError
from studio.worker.recipes import trl_common as common

_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def load_reward_model(ctx, pad_id: int):
    """The base model as a one-output sequence classifier with the run's method applied."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from studio.worker.methods import bnb_config, custom_code_refusal

    cfg = ctx.cfg
    device, precision = common.runtime(ctx)
    dtype = torch.float32
    if device == "cuda" and cfg.method.name not in ("full", "freeze") and precision != "fp32":
        dtype = getattr(torch, _DTYPES[precision])
    kwargs = dict(num_labels=1, dtype=dtype, trust_remote_code=cfg.model.trust_remote_code, attn_implementation="sdpa")
    if cfg.method.name == "qlora":
        kwargs["quantization_config"] = bnb_config(cfg, precision)
        kwargs["device_map"] = {"": device if device != "cuda" else torch.cuda.current_device()}
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(ctx.model_path), **kwargs)
    except (OSError, ValueError) as exc:
        raise custom_code_refusal(ctx.model_path, exc) or ModelError(
            f"cannot load {ctx.model_path} as a reward model: {exc}",
                         "reward modelling needs a decoder model with a sequence-classification class "
                         "(Llama, Mistral, Qwen...)") from None
    # the score is read at the last non-pad token, found through this id
    model.config.pad_token_id = pad_id
    if cfg.method.name != "qlora":
        model.to(device)
    return common.keep_4bit_layout(apply_reward_method(model, cfg), device)


def apply_reward_method(model, cfg):
    """The run's method on a sequence classifier; the new score layer always trains."""
    from studio.worker import methods

    if cfg.method.name in ("full", "freeze"):
        model = methods.apply_method(model, cfg)
        for p in model.score.parameters():
            p.requires_grad_(True)
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    if cfg.method.name == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.train.gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    peft_config = methods.peft_config(cfg, model)
    # SEQ_CLS makes PEFT train and save the classification head ("score") with the adapter
    peft_config.task_type = "SEQ_CLS"
    return get_peft_model(model, peft_config)


def run(ctx) -> str:
    """Train ``ctx.cfg`` as a reward model; returns ``"completed"`` or ``"stopped"``."""
    ctx.emit_lints()  # preflight pitfalls as warnings; a blocking one stops here
    trainer = build_trainer(ctx)
    status = common.train(ctx, trainer)
    if status == "completed" and trainer.is_world_process_zero():
        _mark_reward(ctx)
    return status


def build_trainer(ctx):
    """TRL's RewardTrainer over core encoding's whole pairs (token ids, which TRL takes as they are)."""
    from trl import RewardConfig, RewardTrainer

    train_rows = common.scored_pairs(ctx, ctx.train_examples)
    eval_rows = common.scored_pairs(ctx, ctx.eval_examples, "data.eval")
    tokenizer = ctx.hf_tokenizer()
    model = load_reward_model(ctx, tokenizer.pad_token_id)
    args = common.training_args(ctx, RewardConfig, max_length=ctx.cfg.data.max_length)
    return RewardTrainer(model=model, args=args, train_dataset=common.dataset(train_rows),
                         eval_dataset=common.dataset(eval_rows), processing_class=tokenizer,
                         callbacks=[common.StudioCallback(ctx, len(train_rows), len(eval_rows))])


def _mark_reward(ctx) -> None:
    """Record in final/'s manifest that it scores sequences (export and chat must not treat it as an LM)."""
    from studio.worker.export import MANIFEST

    path = ctx.final_dir / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    manifest["task"] = "reward"
    path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
