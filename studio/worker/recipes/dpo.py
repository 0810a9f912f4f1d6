"""Direct preference optimisation (and its cousins) on TRL's ``DPOTrainer``.

Data: preference pairs (``prompt``/``chosen``/``rejected``). They go to TRL as conversations,
so TRL renders them with the model's own chat template through a tokenizer whose pad token is
the one core encoding chose (never silently the EOS). ``train.dpo_loss`` picks TRL's
``loss_type`` (sigmoid = the DPO paper, ipo, hinge, robust, apo_zero...); ``train.beta`` is the
strength of the pull towards the reference model.

The reference model: with an adapter method it is the same base model with the adapter
switched off (no second copy in memory); with full or freeze it is a frozen copy TRL makes.
"""

from __future__ import annotations

from studio.worker.recipes import trl_common as common

#: Studio's names for TRL 1.16 loss types that were renamed.
LOSS_NAMES = {"aot_pair": "aot"}


def run(ctx) -> str:
    """Train ``ctx.cfg`` with DPO; returns ``"completed"`` or ``"stopped"``."""
    from trl import DPOConfig, DPOTrainer

    cfg = ctx.cfg
    ctx.emit_lints()  # preflight pitfalls as warnings; a blocking one stops here
    train_rows = common.preference_rows(ctx.train_examples)
    eval_rows = common.preference_rows(ctx.eval_examples, "data.eval")
    loss = LOSS_NAMES.get(cfg.train.dpo_loss, cfg.train.dpo_loss)
    args = common.training_args(ctx, DPOConfig, beta=cfg.train.beta, loss_type=[loss],
                                max_length=cfg.data.max_length, truncation_mode="keep_start")
    trainer = DPOTrainer(model=common.load_model(ctx), args=args, train_dataset=common.dataset(train_rows),
                         eval_dataset=common.dataset(eval_rows), processing_class=ctx.hf_tokenizer(),
                         callbacks=[common.StudioCallback(ctx, len(train_rows), len(eval_rows), loss_type=loss)])
    return common.train(ctx, trainer)
