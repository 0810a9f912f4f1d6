"""Kahneman-Tversky optimisation on TRL's ``KTOTrainer``: learning from thumbs up / thumbs down.

KTO needs no pairs: each row is a prompt, one completion and a label (desirable or not).
Studio derives those rows from preference pairs, so the same files serve DPO and KTO: a
pair's chosen answer becomes a desirable row, its rejected answer an undesirable one. The
conversations go to TRL unrendered, so TRL applies the model's own chat template, through a
tokenizer whose pad token is the one core encoding chose.

KTO's loss compares each completion's log-ratio with a KL estimate taken from mismatched
prompt/completion pairs of the same batch, so ``train.batch_size`` must be at least 2.
"""

from __future__ import annotations

from studio.core.errors import ConfigError
from studio.worker.recipes import trl_common as common


def unpaired_rows(pairs: list[dict]) -> list[dict]:
    """Preference pairs -> KTO rows: chosen with ``label=True``, rejected with ``label=False``."""
    rows = []
    for pair in pairs:
        rows.append({"prompt": pair["prompt"], "completion": pair["chosen"], "label": True})
        rows.append({"prompt": pair["prompt"], "completion": pair["rejected"], "label": False})
    return rows


def run(ctx) -> str:
    """Train ``ctx.cfg`` with KTO; returns ``"completed"`` or ``"stopped"``."""
    from trl import KTOConfig, KTOTrainer

    cfg = ctx.cfg
    ctx.emit_lints()  # preflight pitfalls as warnings; a blocking one stops here
    if cfg.train.batch_size < 2:
        raise ConfigError([("train.batch_size", "KTO estimates its KL term from other rows of the batch; "
                            "use a batch size of 2 or more")])
    train_rows = unpaired_rows(common.preference_rows(ctx.train_examples))
    eval_rows = unpaired_rows(common.preference_rows(ctx.eval_examples, "data.eval"))
    args = common.training_args(ctx, KTOConfig, beta=cfg.train.beta, max_length=cfg.data.max_length)
    trainer = KTOTrainer(model=common.load_model(ctx), args=args, train_dataset=common.dataset(train_rows),
                         eval_dataset=common.dataset(eval_rows), processing_class=ctx.hf_tokenizer(),
                         callbacks=[common.StudioCallback(ctx, len(train_rows), len(eval_rows))])
    return common.train(ctx, trainer)
