"""Odds-ratio preference optimisation on TRL's ``ORPOTrainer`` (``trl.experimental.orpo``).

ORPO trains supervised fine-tuning and preference at once: the chosen answer's ordinary
language-model loss plus ``train.beta`` times a log-odds-ratio term that pushes the chosen
answer above the rejected one. It needs no reference model, so it costs about as much memory
as SFT on both answers.

TRL 1.16 ships ORPO under ``trl.experimental``: its interface may change between TRL
releases. Data: preference pairs as conversations; TRL renders them with the model's chat
template (``maybe_apply_chat_template``) and adds BOS only when the template did not.
"""

from __future__ import annotations

from studio.worker.recipes import trl_common as common


def run(ctx) -> str:
    """Train ``ctx.cfg`` with ORPO; returns ``"completed"`` or ``"stopped"``."""
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    cfg = ctx.cfg
    ctx.emit_lints()  # preflight pitfalls as warnings; a blocking one stops here
    train_rows = common.preference_rows(ctx.train_examples)
    eval_rows = common.preference_rows(ctx.eval_examples, "data.eval")
    args = common.training_args(ctx, ORPOConfig, beta=cfg.train.beta, max_length=cfg.data.max_length,
                                max_completion_length=cfg.data.max_length // 2, remove_unused_columns=False)
    trainer = ORPOTrainer(model=common.load_model(ctx), args=args, train_dataset=common.dataset(train_rows),
                          eval_dataset=common.dataset(eval_rows), processing_class=ctx.hf_tokenizer(),
                          callbacks=[common.StudioCallback(ctx, len(train_rows), len(eval_rows))])
    return common.train(ctx, trainer)
