"""Direct preference optimisation (and its cousins) on TRL's ``DPOTrainer``.

Data: preference pairs (``prompt``/``chosen``/``rejected``), encoded by core encoding (template,
max_length, truncation side) and handed to TRL as token ids, so what the Inspect page shows is
what trains; TRL's collator pads them with the pad token core encoding chose (never silently
the EOS) and trains on every answer token. ``train.dpo_loss`` picks TRL's
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
    ctx.emit_lints()  # preflight pitfalls as warnings; a blocking one stops here
    return common.train(ctx, build_trainer(ctx))


def build_trainer(ctx):
    """TRL's DPOTrainer over core encoding's pairs (it tokenizes nothing itself)."""
    from trl import DPOConfig, DPOTrainer

    class CoreEncodedDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset  # already prompt_ids / chosen_ids / rejected_ids, truncated by core encoding

    cfg = ctx.cfg
    train_rows = common.preference_ids(ctx, ctx.train_examples)
    eval_rows = common.preference_ids(ctx, ctx.eval_examples, "data.eval")
    loss = LOSS_NAMES.get(cfg.train.dpo_loss, cfg.train.dpo_loss)
    # max_length=None: the pairs are already cut to data.max_length on the configured side; TRL's
    # collator would otherwise cut chosen and rejected again, each on its own.
    args = common.training_args(ctx, DPOConfig, beta=cfg.train.beta, loss_type=[loss], max_length=None)
    return CoreEncodedDPOTrainer(model=common.load_model(ctx), args=args, train_dataset=common.dataset(train_rows),
                                 eval_dataset=common.dataset(eval_rows), processing_class=ctx.hf_tokenizer(),
                                 callbacks=[common.StudioCallback(ctx, len(train_rows), len(eval_rows),
                                                                  loss_type=loss)])
