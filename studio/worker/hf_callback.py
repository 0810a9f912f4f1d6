"""Trainer logs -> protocol events, for the recipes built on transformers/TRL trainers."""

from __future__ import annotations

import time

from transformers import TrainerCallback

from studio.worker.metrics import memory_mib


class EventsCallback(TrainerCallback):
    """Turns a transformers ``Trainer``'s logs into ``step``/``eval``/``checkpoint`` events.

    It also honours ``ctx.stop_requested`` (set on SIGTERM/SIGINT): the trainer saves a
    checkpoint and stops at the end of the current step.

    Args:
        ctx: the run's :class:`~studio.worker.context.RunContext`.
    """

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self._last_time = time.perf_counter()
        self._last_tokens = 0
        self._last_step = 0

    def on_step_end(self, args, state, control, **kwargs):
        if self.ctx.stop_requested:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if not state.is_world_process_zero:
            return
        if any(k.startswith("eval_") for k in logs):
            self._eval(state, logs)
        elif "loss" in logs:
            self._step(state, logs)

    def _step(self, state, logs: dict) -> None:
        now = time.perf_counter()
        tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        elapsed = max(now - self._last_time, 1e-9)
        rate = (tokens - self._last_tokens) / elapsed if tokens else 0.0
        self._last_time, self._last_tokens = now, tokens
        known = {"loss", "learning_rate", "grad_norm", "epoch"}
        extra = {k: v for k, v in logs.items() if k not in known and isinstance(v, (int, float))}
        grad = logs.get("grad_norm")
        self.ctx.events.emit("step", step=int(state.global_step), epoch=float(logs.get("epoch", state.epoch or 0.0)),
                             loss=float(logs["loss"]), learning_rate=float(logs.get("learning_rate", 0.0)),
                             grad_norm=None if grad is None else float(grad), tokens_per_second=float(rate),
                             tokens_seen=tokens, memory_mib=memory_mib(), **extra)

    def _eval(self, state, logs: dict) -> None:
        loss = float(logs.get("eval_loss", float("nan")))
        metrics = {k[5:]: v for k, v in logs.items() if k.startswith("eval_") and k != "eval_loss"
                   and isinstance(v, (int, float))}
        # The TRL objectives' eval loss is a preference, reward or policy loss, not a language
        # model's: exp() of it is no perplexity, so none is reported.
        self.ctx.events.emit("eval", step=int(state.global_step), eval_loss=loss, perplexity=None, metrics=metrics)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            path = f"{args.output_dir}/checkpoint-{state.global_step}"
            self.ctx.events.emit("checkpoint", step=int(state.global_step), path=path)

