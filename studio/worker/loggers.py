"""Metric loggers (TensorBoard, Weights & Biases) fed from the run's events.

Each logger is an event listener (see :meth:`Events.subscribe`), so every recipe gets them
for free: whatever reaches ``events.jsonl`` reaches TensorBoard too.
"""

from __future__ import annotations

import logging
from pathlib import Path

from studio.core.errors import ConfigError

log = logging.getLogger("studio.worker")

#: Step fields that are bookkeeping, not curves.
_STEP_BOOKKEEPING = ("v", "time", "step", "epoch", "tokens_seen", "max_steps", "num_input_tokens_seen",
                     "train_runtime")


def scalars(event: dict) -> dict[str, float]:
    """The plottable numbers of a step/eval event, keyed ``train/...`` or ``eval/...``."""
    out: dict[str, float] = {}
    if event["type"] == "step":
        # Every number the step carries: the objective's own metrics too (DPO's reward margins,
        # GRPO's rewards per function...).
        for key, value in event.items():
            if key not in _STEP_BOOKKEEPING and isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"train/{key}"] = float(value)
    elif event["type"] == "eval":
        for key in ("eval_loss", "perplexity", "general_loss"):
            if isinstance(event.get(key), (int, float)):
                out[f"eval/{key}"] = float(event[key])
        for task, values in (event.get("metrics") or {}).items():
            if isinstance(values, dict):
                out.update({f"eval/{task}/{k}": float(v) for k, v in values.items() if isinstance(v, (int, float))})
            elif isinstance(values, (int, float)):
                out[f"eval/{task}"] = float(values)
    return out


class TensorBoardLogger:
    """Writes step and eval numbers to ``RUN_DIR/tensorboard``."""

    def __init__(self, log_dir: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir))

    def __call__(self, event: dict) -> None:
        if event["type"] in ("step", "eval"):
            for key, value in scalars(event).items():
                self.writer.add_scalar(key, value, event["step"])
        elif event["type"] == "sample":
            self.writer.add_text("samples", f"**{event['prompt']}**\n\n{event['text']}", event["step"])
        elif event["type"] == "finished":
            self.close()

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class WandbLogger:
    """Sends step and eval numbers to Weights & Biases."""

    def __init__(self, project: str, name: str, config: dict, run_dir: str | Path) -> None:
        try:
            import wandb
        except ImportError:
            raise ConfigError([("output.report_to", "wandb is listed but not installed; "
                                "install it with `pip install wandb` or remove it from report_to")]) from None
        self.wandb = wandb
        self.run = wandb.init(project=project, name=name or None, config=config, dir=str(run_dir))

    def __call__(self, event: dict) -> None:
        if event["type"] in ("step", "eval"):
            self.run.log(scalars(event), step=event["step"])
        elif event["type"] == "finished":
            self.run.finish(exit_code=0 if event.get("status") != "failed" else 1)


def attach_loggers(ctx) -> list:
    """Subscribe the loggers named in ``output.report_to`` to the run's events (main process only)."""
    if not ctx.events.enabled:
        return []
    wanted = [r for r in ctx.cfg.output.report_to if r != "none"]
    loggers = []
    if "tensorboard" in wanted:
        try:
            loggers.append(TensorBoardLogger(ctx.run_dir / "tensorboard"))
        except ImportError:
            ctx.events.warning("tensorboard", "TensorBoard logging is off: install tensorboard to enable it")
    if "wandb" in wanted:
        from studio.core.config import to_dict

        loggers.append(WandbLogger(ctx.cfg.output.wandb_project, ctx.cfg.name, to_dict(ctx.cfg), ctx.run_dir))
    for logger in loggers:
        ctx.events.subscribe(logger)
    return loggers
