"""Kahneman-Tversky optimisation on TRL's ``KTOTrainer``: learning from thumbs up / thumbs down.

KTO needs no pairs: each row is a prompt, one completion and a label (desirable or not). A file
whose rows carry a desirability label (a conversation or prompt/completion plus ``label``: true/
false, 1/0, good/bad) trains as it is, as TRL's unpaired KTO data: the final answer is the
completion, the turns before it the prompt. A file of preference pairs serves too: a pair's
chosen answer becomes a desirable row, its rejected answer an undesirable one. The rows
are core encoding's pairs (template, max_length, truncation side: what the Inspect page shows),
handed to TRL as token ids; TRL's collator pads them with the pad token core encoding chose.

KTO's loss compares each completion's log-ratio with a KL estimate taken from mismatched
prompt/completion pairs of the same batch, so ``train.batch_size`` must be at least 2.
"""

from __future__ import annotations

from studio.core.errors import ConfigError
from studio.worker.recipes import trl_common as common


def unpaired_rows(pairs: list[dict]) -> list[dict]:
    """Preference pairs (token ids) -> KTO rows: chosen with ``label=True``, rejected with ``label=False``."""
    rows = []
    for pair in pairs:
        rows.append({"prompt_ids": pair["prompt_ids"], "completion_ids": pair["chosen_ids"], "label": True})
        rows.append({"prompt_ids": pair["prompt_ids"], "completion_ids": pair["rejected_ids"], "label": False})
    return rows


def kto_rows(ctx, examples: list, setting: str = "data.train") -> list[dict]:
    """KTO rows of labelled data as it is, or of preference pairs split into their two answers."""
    if any(ex.label is not None for ex in examples) and not any(ex.kind == "preference" for ex in examples):
        return common.labelled_ids(ctx, examples, setting)
    return unpaired_rows(common.preference_ids(ctx, examples, setting))


def run(ctx) -> str:
    """Train ``ctx.cfg`` with KTO; returns ``"completed"`` or ``"stopped"``."""
    ctx.emit_lints()  # preflight pitfalls as warnings; a blocking one stops here
    if ctx.cfg.train.batch_size < 2:
        raise ConfigError([("train.batch_size", "KTO estimates its KL term from other rows of the batch; "
                            "use a batch size of 2 or more")])
    return common.train(ctx, build_trainer(ctx))


def build_trainer(ctx):
    """TRL's KTOTrainer over core encoding's rows (it tokenizes nothing itself)."""
    from trl import KTOConfig, KTOTrainer

    class CoreEncodedKTOTrainer(KTOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            # Already prompt_ids / completion_ids, cut by core encoding. What TRL adds after
            # tokenizing stays: each row's mismatched completion for the KL estimate, taken by
            # rotating the completions within each batch, as TRL's own preparation does.
            if not self.calculate_KL:
                return dataset

            def add_kl_completion_ids(rows):
                rows["KL_completion_ids"] = [rows["completion_ids"][-1]] + rows["completion_ids"][:-1]
                return rows

            return dataset.map(add_kl_completion_ids, batched=True, batch_size=args.per_device_train_batch_size)

    cfg = ctx.cfg
    train_rows = kto_rows(ctx, ctx.train_examples)
    eval_rows = kto_rows(ctx, ctx.eval_examples, "data.eval")
    # max_length=None: the rows are already cut to data.max_length on the configured side.
    args = common.training_args(ctx, KTOConfig, beta=cfg.train.beta, max_length=None)
    return CoreEncodedKTOTrainer(model=common.load_model(ctx), args=args, train_dataset=common.dataset(train_rows),
                                 eval_dataset=common.dataset(eval_rows), processing_class=ctx.hf_tokenizer(),
                                 callbacks=[common.StudioCallback(ctx, len(train_rows), len(eval_rows))])
