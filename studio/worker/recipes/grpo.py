"""Group relative policy optimisation on TRL's ``GRPOTrainer``: RL with reward functions.

For every prompt the model samples ``train.num_generations`` completions (at most
``train.max_completion_length`` tokens); the named reward functions of
:mod:`studio.worker.rewards` score them; each completion's advantage is its reward minus the
mean of its group, and the policy is updated with PPO's clipped objective (ratio clipped to
1 +/- 0.2). TRL 1.x has no PPOTrainer: GRPO is the PPO-clip family TRL maintains, without a
learned value model. The KL pull towards the reference model is off (TRL's default beta 0),
so no reference copy is kept.

Prompts come from the training rows: a chat row's turns before its last assistant answer
(that answer becomes the row's ``reference``, which ``contains_keyword`` can use), a
prompt/completion row's prompt, a preference row's prompt. Core encoding tokenizes them
(rendered with the generation prompt, BOS once: what the Inspect page shows), in place of the
trainer's own ``apply_chat_template`` call.
"""

from __future__ import annotations

import math
import os

from studio.core.errors import DataError
from studio.worker import rewards
from studio.worker.recipes import trl_common as common

#: Evaluation samples completions too; a few prompts are enough to follow the reward.
MAX_EVAL_PROMPTS = 16


def prompt_rows(examples: list) -> list[dict]:
    """``prompt`` (conversation) and ``reference`` (the answer the data gives) per usable row."""
    rows = []
    for ex in examples:
        turns, answer = ex.prompt_and_answer()
        if turns:
            rows.append({"prompt": common.messages(turns), "reference": " ".join(m.content for m in answer)})
    return rows


def generation_batch(batch_size: int, world: int, grad_accum: int, num_generations: int) -> int:
    """Completions sampled per generation round: whole prompt groups filling whole optimizer steps."""
    per_step = batch_size * world * grad_accum
    return per_step * num_generations // math.gcd(per_step, num_generations)


def run(ctx) -> str:
    """Train ``ctx.cfg`` with GRPO; returns ``"completed"`` or ``"stopped"``."""
    ctx.emit_lints()  # preflight pitfalls as warnings; a blocking one stops here
    return common.train(ctx, build_trainer(ctx))


def prompt_ids(encoder, prompt: list[dict]) -> list[int]:
    """A conversation (TRL's dicts) as core encoding tokenizes it for the model to answer."""
    from studio.core.conversation import Example, Message

    turns = [Message(m["role"], m["content"]) for m in prompt]
    return encoder.encode_prompt(Example(0, turns), turns).input_ids


def build_trainer(ctx):
    """TRL's GRPOTrainer whose prompts are tokenized by core encoding."""
    from trl import GRPOConfig, GRPOTrainer

    encoder = ctx.encoder()

    class CoreEncodedGRPOTrainer(GRPOTrainer):
        def _tokenize_prompts(self, prompts: list):
            return [prompt_ids(encoder, prompt) for prompt in prompts], None, {}

    cfg, t = ctx.cfg, ctx.cfg.train
    reward_funcs = rewards.resolve(t.reward_functions)
    train_rows = prompt_rows(ctx.train_examples)
    eval_rows = prompt_rows(ctx.eval_examples)[:MAX_EVAL_PROMPTS]
    if not train_rows:
        raise DataError("data.train: no row has a prompt to sample answers for",
                        "GRPO needs rows with a user turn, e.g. resources/datasets/travel_chat.jsonl")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    args = common.training_args(
        ctx, GRPOConfig, num_generations=t.num_generations, max_completion_length=t.max_completion_length,
        generation_batch_size=generation_batch(t.batch_size, world, t.grad_accum, t.num_generations),
        per_device_eval_batch_size=t.num_generations, beta=0.0, remove_unused_columns=False)
    return CoreEncodedGRPOTrainer(model=common.load_model(ctx), reward_funcs=reward_funcs, args=args,
                                  train_dataset=common.dataset(train_rows), eval_dataset=common.dataset(eval_rows),
                                  processing_class=ctx.hf_tokenizer(),
                                  callbacks=[common.StudioCallback(ctx, len(train_rows), len(eval_rows),
                                                                   reward_functions=list(t.reward_functions))])
