"""Odds-ratio preference optimisation on TRL's ``ORPOTrainer`` (``trl.experimental.orpo``).

ORPO trains supervised fine-tuning and preference at once: the chosen answer's ordinary
language-model loss plus ``train.beta`` times a log-odds-ratio term that pushes the chosen
answer above the rejected one. It needs no reference model, so it costs about as much memory
as SFT on both answers.

TRL 1.16 ships ORPO under ``trl.experimental``: its interface may change between TRL
releases. Data: core encoding's preference pairs (template, max_length, truncation side: what
the Inspect page shows), handed over as token ids; the trainer's own tokenizing step
(``tokenize_row``, which would render the text again, append an EOS and cut the answers
itself) is replaced by one that lays those ids out as it expects.
"""

from __future__ import annotations

from studio.worker.recipes import trl_common as common


def run(ctx) -> str:
    """Train ``ctx.cfg`` with ORPO; returns ``"completed"`` or ``"stopped"``."""
    ctx.emit_lints()  # preflight pitfalls as warnings; a blocking one stops here
    return common.train(ctx, build_trainer(ctx))


def build_trainer(ctx):
    """TRL's ORPOTrainer over core encoding's pairs (it tokenizes nothing itself)."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # the docs say ORPO is experimental in TRL 1.16
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    class CoreEncodedORPOTrainer(ORPOTrainer):
        def tokenize_row(self, feature, model=None) -> dict:
            return sequences_of(feature)

    cfg = ctx.cfg
    train_rows = common.preference_ids(ctx, ctx.train_examples)
    eval_rows = common.preference_ids(ctx, ctx.eval_examples, "data.eval")
    args = common.training_args(ctx, ORPOConfig, beta=cfg.train.beta, max_length=cfg.data.max_length,
                                max_completion_length=cfg.data.max_length, remove_unused_columns=False)
    return CoreEncodedORPOTrainer(model=common.load_model(ctx), args=args, train_dataset=common.dataset(train_rows),
                                  eval_dataset=common.dataset(eval_rows), processing_class=ctx.hf_tokenizer(),
                                  callbacks=[common.StudioCallback(ctx, len(train_rows), len(eval_rows))])


def sequences_of(pair: dict) -> dict:
    """One pair of ids (``prompt_ids``, ``chosen_ids``, ``rejected_ids``) in the layout ORPO's
    collator reads: whole sequences, their attention masks, and labels with the prompt masked."""
    prompt = list(pair["prompt_ids"])
    row = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
    for side in ("chosen", "rejected"):
        answer = list(pair[f"{side}_ids"])
        row[f"{side}_input_ids"] = prompt + answer
        row[f"{side}_attention_mask"] = [1] * (len(prompt) + len(answer))
        row[f"{side}_labels"] = [-100] * len(prompt) + answer
    return row
