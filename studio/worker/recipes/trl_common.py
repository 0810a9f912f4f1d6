"""What the TRL-based recipes (DPO, KTO, ORPO, reward modelling, GRPO) share.

Each of those recipes builds a TRL trainer and hands it to :func:`train`, which resumes,
trains, evaluates, saves ``final/`` and reports the status. The trainer's own checkpoints
(``checkpoint-N``, written into a staging folder) are moved into the run's checkpoint layout
(``checkpoints/step-00000N`` with ``state.json``, ``config.yaml`` and the ``latest`` pointer), so
``studio train --resume`` and the runs page treat every objective alike. A resumed TRL run
restores weights, optimizer, scheduler and random state through the trainer's own
``resume_from_checkpoint``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from studio.core.config import dump_yaml
from studio.core.errors import DataError, RunError, TemplateError
from studio.worker import checkpoint as ckpt
from studio.worker.hf_callback import EventsCallback

log = logging.getLogger("studio.worker")

#: Staging folder (inside checkpoints/) where the trainer writes checkpoint-N before it is moved.
STAGING = ".trainer"
PREFERENCE_DATA_HINT = ("set data.train to a file of preference pairs (prompt/chosen/rejected columns), "
                        "e.g. resources/datasets/travel_prefs.jsonl")


def messages(turns) -> list[dict]:
    """Core :class:`~studio.core.conversation.Message` turns as TRL's conversational dicts."""
    return [{"role": m.role, "content": m.content} for m in turns]


def require_pairs(examples: list, setting: str = "data.train") -> list:
    """The preference rows of ``examples``.

    Raises:
        DataError: there are rows but none is a preference pair.
    """
    pairs = [ex for ex in examples if ex.kind == "preference"]
    if not pairs and examples:
        kinds = sorted({ex.kind for ex in examples})
        raise DataError(f"{setting}: this objective trains on preference pairs, but the rows are {', '.join(kinds)}",
                        PREFERENCE_DATA_HINT)
    return pairs


def preference_ids(ctx, examples: list, setting: str = "data.train") -> list[dict]:
    """Preference pairs as token ids (``prompt_ids``, ``chosen_ids``, ``rejected_ids``) made by core
    encoding, with the run's template, max_length and truncation side: the pairs the Inspect page
    shows are the pairs that train. Pairs left with an empty answer by truncation are dropped,
    with a warning.

    Raises:
        DataError: the data holds no preference pairs.
    """
    rows, empty = [], []
    pairs, refused = encoded_pairs(ctx, ctx.encoder(), require_pairs(examples, setting), setting)
    for pair in pairs:
        ids, cut = pair.chosen.input_ids, pair.prompt_len
        row = {"prompt_ids": ids[:cut], "chosen_ids": ids[cut:], "rejected_ids": pair.rejected.input_ids[cut:]}
        if row["chosen_ids"] and row["rejected_ids"]:
            rows.append(row)
        else:
            empty.append(pair.row)
    return _kept(ctx, rows, empty, setting, "pair", refused)


def encoded_pairs(ctx, encoder, examples: list, setting: str) -> tuple[list, int]:
    """Each row through ``encoder.encode_pair``: (the pairs, how many rows were skipped). A row the chat
    template cannot render (Llama 3.1 takes one tool call per turn, for instance) is skipped with the
    reason (warning ``template_rows``) instead of stopping the run; the caller counts it against
    ``data.max_skipped``."""
    pairs, refused = [], []
    for example in examples:
        try:
            pairs.append(encoder.encode_pair(example))
        except TemplateError as exc:
            refused.append(exc)
    if refused:
        ctx.events.warning("template_rows", f"{len(refused)} {setting} row(s) cannot be rendered by the chat template "
                           "and are skipped: " + "; ".join(e.message for e in refused[:10]), hint=refused[0].hint)
    return pairs, len(refused)


def _kept(ctx, rows: list[dict], empty: list[int], setting: str, what: str, refused: int = 0) -> list[dict]:
    """``rows``, after warning about the ``empty`` ones (no answer token left) and refusing when too few
    remain (``refused``: rows already skipped because the template cannot render them)."""
    if empty:
        ctx.events.warning("no_loss_tokens", f"{len(empty)} {setting} {what}(s) keep no answer token after truncation "
                           f"to data.max_length and are skipped: rows {empty[:20]}", rows=empty)
    if setting == "data.train":
        if not rows:
            raise DataError(f"no {what} keeps an answer token within data.max_length={ctx.cfg.data.max_length}"
                            + (f" that the chat template can render ({refused} cannot be)" if refused else ""),
                            "raise data.max_length, or shorten the prompts" + (
                                "; or pick a chat template (model.template) that renders these rows" if refused else ""))
        ctx.check_skipped(setting, len(empty) + refused)
    return rows


def labelled_ids(ctx, examples: list, setting: str = "data.train") -> list[dict]:
    """Unpaired rows labelled desirable or not (KTO's own data) as ``prompt_ids``, ``completion_ids``
    and ``label``, made by core encoding like a preference pair's side: the prompt (the turns before
    the final answer, with the generation prompt) tokenized on its own, the answer after it.
    Rows left with no answer token by truncation are dropped, with a warning.

    Raises:
        DataError: a row has no label (KTO needs every answer marked).
    """
    from studio.core.conversation import Example

    unlabelled = [ex.row for ex in examples if ex.label is None]
    if unlabelled:
        raise DataError(f"{setting}: {len(unlabelled)} row(s) have no desirability label (rows {unlabelled[:20]})",
                        "give every row a label (true/false, 1/0, good/bad), or drop those rows")
    rows, empty = [], []
    as_pairs = [Example(ex.row, prompt, chosen=answer, rejected=answer, tools=ex.tools)
                for ex in examples for prompt, answer in [ex.prompt_and_answer()]]
    pairs, refused = encoded_pairs(ctx, ctx.encoder(), as_pairs, setting)
    label = {ex.row: bool(ex.label) for ex in examples}
    for pair in pairs:
        ids, cut = pair.chosen.input_ids, pair.prompt_len
        if ids[cut:]:
            rows.append({"prompt_ids": ids[:cut], "completion_ids": ids[cut:], "label": label[pair.row]})
        else:
            empty.append(pair.row)
    return _kept(ctx, rows, empty, setting, "labelled row", refused)


def scored_pairs(ctx, examples: list, setting: str = "data.train") -> list[dict]:
    """Preference pairs as whole sequences (``chosen_ids``, ``rejected_ids``) for a reward model,
    made by core encoding. A reward model reads its score at the last token, so a pair longer
    than data.max_length is skipped rather than cut (a cut answer would be scored), with a
    warning naming the rows.

    Raises:
        DataError: the data holds no preference pairs, or none fits data.max_length.
    """
    limit = ctx.cfg.data.max_length
    encoder = ctx.encoder(max_length=None)
    rows, long = [], []
    pairs, refused = encoded_pairs(ctx, encoder, require_pairs(examples, setting), setting)
    for pair in pairs:
        if limit and max(len(pair.chosen.input_ids), len(pair.rejected.input_ids)) > limit:
            long.append(pair.row)
        else:
            rows.append({"chosen_ids": pair.chosen.input_ids, "rejected_ids": pair.rejected.input_ids})
    if long:
        ctx.events.warning("too_long", f"{len(long)} {setting} pair(s) are longer than data.max_length={limit} "
                           f"and are skipped (a reward model scores the last token): rows {long[:20]}", rows=long,
                           hint="raise data.max_length to train on them")
    if examples and not rows and setting == "data.train":
        raise DataError(f"no preference pair fits within data.max_length={limit}", "raise data.max_length")
    if refused and setting == "data.train":
        ctx.check_skipped(setting, refused)
    return rows


def dataset(rows: list[dict]):
    """A ``datasets.Dataset`` from row dicts (``None`` for no rows)."""
    if not rows:
        return None
    from datasets import Dataset

    return Dataset.from_list(rows)


def runtime(ctx) -> tuple[str, str]:
    """(device kind, precision) without creating an Accelerator.

    The trainer's arguments reset accelerate's shared state when they are built, so an
    Accelerator made before them would be left stale; :func:`bind` hands the trainer's own
    accelerator to the context instead.
    """
    from studio.worker.device import pick_device, resolve_precision

    device = pick_device(ctx.cfg.train.device)
    precision = resolve_precision(ctx.cfg.train.precision, device)
    if ctx.cfg.method.name == "qlora" and precision == "fp32":
        # TRL casts QLoRA adapters to bf16 (the QLoRA paper's recipe); without bf16 autocast their
        # matmuls would meet fp32 activations and fail
        precision = "bf16"
    return device, precision


def load_model(ctx):
    """The base model with the run's method applied, on the run's device and precision."""
    from studio.worker.checkpoint import start_from
    from studio.worker.methods import load_model as load

    device, precision = runtime(ctx)
    return keep_4bit_layout(start_from(ctx, load(ctx.cfg, ctx.model_path, device, precision)), device)


def keep_4bit_layout(model, device: str):
    """On CPUs with AVX512-BF16, bitsandbytes repacks 4-bit weights for its fast inference path the
    first time a layer runs without gradients (evaluation, reference log-probs); that repacking
    fails for layers whose input width is not a multiple of its block size (the demo model's
    352-wide MLP). Keep the training layout on CPU: evaluation is a small share of a run."""
    if device == "cpu":
        for module in model.modules():
            if hasattr(module, "support_avx512bf16_for_cpu"):
                module.support_avx512bf16_for_cpu = False
    return model


def bind(ctx, trainer):
    """Make the trainer's accelerator the run's, so ``ctx.device``/``ctx.is_main`` agree with it."""
    ctx.__dict__["accelerator"] = trainer.accelerator
    return trainer


def training_args(ctx, config_cls, **extra):
    """A TRL config (``DPOConfig``, ``KTOConfig``...) filled from the run config.

    The trainer writes checkpoints into a staging folder; :class:`StudioCallback` moves them.
    Reports go through Studio's own loggers (events), so ``report_to`` is ``none``.
    """
    cfg, t = ctx.cfg, ctx.cfg.train
    device, precision = runtime(ctx)
    has_eval = bool(ctx.eval_examples)
    if device == "cpu" and cfg.distributed.strategy != "ddp" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        ctx.events.warning("strategy_on_cpu", f"{t.objective} runs on CPU processes as DDP: accelerate shards "
                           f"{cfg.distributed.strategy} runs on GPUs only (Studio's own FSDP sharding is for SFT)",
                           hint="each process holds the whole model; set distributed.strategy=ddp to say so")
    kwargs = dict(
        output_dir=str(ctx.checkpoints_dir / STAGING), max_steps=t.max_steps if t.max_steps > 0 else -1,
        num_train_epochs=t.epochs, per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio, weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm or 1e9,
        seed=t.seed, data_seed=cfg.data.seed, logging_steps=t.logging_steps,
        eval_strategy="steps" if has_eval and cfg.eval.every_steps else "no",
        eval_steps=cfg.eval.every_steps or None, save_strategy="steps", save_steps=cfg.output.save_every_steps,
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=device == "cpu",
        activation_checkpointing=t.gradient_checkpointing, report_to="none", disable_tqdm=True,
        dataloader_num_workers=0, include_num_input_tokens_seen=True,
    )
    kwargs.update(extra)
    return config_cls(**kwargs)


def planned_steps(cfg, rows: int, world: int = 1, rows_per_step: int | None = None) -> int:
    """Optimizer steps of the run: ``train.max_steps``, else the epochs over ``rows``."""
    if cfg.train.max_steps > 0:
        return cfg.train.max_steps
    per_step = rows_per_step or cfg.train.batch_size * world * cfg.train.grad_accum
    return max(1, math.ceil(cfg.train.epochs * math.ceil(rows / per_step)))


class StudioCallback(EventsCallback):
    """:class:`EventsCallback` plus Studio's run layout for a TRL trainer.

    ``started`` is emitted when training begins (the trainer knows its step count then); the
    last step always saves a checkpoint; each checkpoint is moved into ``checkpoints/step-N``.
    """

    def __init__(self, ctx, train_rows: int, eval_rows: int, **started_extra) -> None:
        super().__init__(ctx)
        self._sizes = (train_rows, eval_rows)
        self._extra = started_extra

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from studio.worker.methods import count_parameters

        total, trainable = count_parameters(model)
        total -= _reference_adapter_params(model)  # the model as trained, as the Method page counts it
        self.ctx.emit_started(params_total=total, params_trainable=trainable, train_rows=self._sizes[0],
                              eval_rows=self._sizes[1], max_steps=int(state.max_steps),
                              start_step=int(state.global_step), **self._extra)

    def on_step_end(self, args, state, control, **kwargs):
        super().on_step_end(args, state, control, **kwargs)
        if state.global_step >= state.max_steps:
            control.should_save = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        super().on_log(args, state, control, logs=logs, **kwargs)
        # a stop asked while this step was reported: the trainer saves right after its logs
        if self.ctx.stop_requested:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_save(self, args, state, control, **kwargs):
        from accelerate import PartialState

        PartialState().wait_for_everyone()  # every rank has written its part (rng state) first
        if state.is_world_process_zero:
            path = adopt_checkpoint(self.ctx, Path(args.output_dir) / f"checkpoint-{state.global_step}",
                                    state.global_step, getattr(state, "num_input_tokens_seen", 0))
            self.ctx.events.emit("checkpoint", step=int(state.global_step), path=str(path))
        PartialState().wait_for_everyone()


def adopt_checkpoint(ctx, staged: Path, step: int, tokens_seen: int = 0) -> Path:
    """Move a trainer checkpoint into ``checkpoints/step-N``, complete it and point ``latest`` at it."""
    root = ctx.checkpoints_dir
    final = root / ckpt.checkpoint_name(step)
    if final.exists():
        shutil.rmtree(final)
    os.replace(staged, final)
    (final / "config.yaml").write_text(dump_yaml(ctx.cfg), encoding="utf-8")
    state = asdict(ckpt.TrainState(step=int(step), tokens_seen=int(tokens_seen or 0)))
    state["trainer"] = "transformers"  # resumed through Trainer.train(resume_from_checkpoint=...)
    # state.json last: its presence marks the folder complete
    (final / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
    pointer = root / f".{ckpt.LATEST}.tmp"
    pointer.write_text(final.name + "\n", encoding="utf-8")
    os.replace(pointer, root / ckpt.LATEST)
    ckpt.prune(root, ctx.cfg.output.keep_checkpoints)
    return final


def _reference_adapter_params(model) -> int:
    """Parameters of adapters other than the trained one (DPO/KTO's frozen reference copy)."""
    others = [name for name in (getattr(model, "peft_config", None) or {}) if name != model.active_adapter]
    return sum(p.numel() for n, p in model.named_parameters() if any(f".{name}." in n for name in others))


def _drop_reference_adapter(model) -> None:
    """DPO/KTO keep a frozen copy of the adapter as the reference ("ref"); final/ holds only the trained one."""
    for name in list(getattr(model, "peft_config", {}) or {}):
        if name != model.active_adapter:
            model.delete_adapter(name)


def _evaluated_at(state) -> bool:
    """Whether the trainer already evaluated at its last step (its own end-of-training evaluation)."""
    return any("eval_loss" in entry and entry.get("step") == state.global_step for entry in state.log_history)


def resume_path(ctx) -> str | None:
    """The checkpoint to hand to ``Trainer.train``; RunError for one the trainer cannot read."""
    if not ctx.resume_from:
        return None
    if not (Path(ctx.resume_from) / "trainer_state.json").exists():
        raise RunError(f"{ctx.resume_from} was not written by a {ctx.cfg.train.objective} run (no trainer_state.json)",
                       "resume from a checkpoint of this run, or start the run again")
    return str(ctx.resume_from)


def train(ctx, trainer) -> str:
    """Resume if asked, train, evaluate once more, save ``final/``; returns the run status."""
    bind(ctx, trainer)
    # With disable_tqdm, transformers prints every log dict to stdout (its PrinterCallback); the
    # run reports through its events, from which `studio train` prints Studio's own lines.
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.train(resume_from_checkpoint=resume_path(ctx))
    if ctx.stop_requested:
        return "stopped"
    if trainer.eval_dataset is not None and not _evaluated_at(trainer.state):
        trainer.evaluate()
    if trainer.is_world_process_zero():
        from studio.worker.export import save_final

        model = trainer.accelerator.unwrap_model(trainer.model)
        _drop_reference_adapter(model)
        # the same final/ layout (weights, tokenizer, template, manifest) as every other objective
        save_final(ctx, model)
        shutil.rmtree(ctx.checkpoints_dir / STAGING, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return "completed"
