"""Supervised fine-tuning: a readable training loop over core-encoded tensors, on accelerate.

The model trains on exactly the tensors the preview shows: rows come from
``studio.core.encoding`` (``Encoder.encode_many`` + ``collate`` with the config's padding
strategy). With packing, a micro-batch is one padding-free row whose ``position_ids`` restart
at every sequence and no attention mask is passed, so transformers builds a block-diagonal
mask from the positions (``masking_utils.find_packed_sequence_indices``; it needs
``use_cache=False``, which we pass). The loss is :func:`studio.worker.loss.chunked_causal_lm_loss`
over the last hidden states: full-vocabulary logits are never built for every position.

Shape of the recipe: :meth:`SFTRecipe.setup`, :meth:`SFTRecipe.train`,
:meth:`SFTRecipe.evaluate`, :meth:`SFTRecipe.save_checkpoint`, :meth:`SFTRecipe.save_final`.
"""

from __future__ import annotations

import contextlib
import logging
import time

import torch

from studio.core.config import dump_yaml
from studio.core.padding import stack_packs
from studio.worker import checkpoint as ckpt
from studio.worker import evaluate as ev
from studio.worker import sharding
from studio.worker.batches import (batch_units, epoch_batches, eval_batches, split_units, steps_per_epoch, total_steps,
                                   unit_index)
from studio.worker.loss import IGNORE, chunked_causal_lm_loss
from studio.worker.methods import PROMPT_METHODS, count_parameters, output_head
from studio.worker.metrics import memory_mib, perplexity, release_freed_memory
from studio.worker.threads import tuner_for

log = logging.getLogger("studio.worker")

#: Rows of logits computed at once by the chunked loss; ``None`` sizes chunks by bytes
#: (:data:`studio.worker.loss.CHUNK_BYTES`), so a 128k vocabulary does not hold 0.5 GiB per chunk.
LOSS_CHUNK = None


def run(ctx) -> str:
    """Train ``ctx.cfg`` with supervised fine-tuning; returns ``"completed"`` or ``"stopped"``."""
    recipe = SFTRecipe(ctx)
    try:
        recipe.setup()
        return recipe.train()
    finally:
        recipe.remove_blocks()


class hidden_states_only:
    """Within this block the model's output head returns its input, so ``.logits`` are hidden states.

    The loss then projects only the positions that carry loss (see :mod:`studio.worker.loss`).
    Nothing about the model's parameters or saved weights changes.
    """

    def __init__(self, head) -> None:
        self.head = head

    def __enter__(self):
        self.head.forward = lambda x: x
        return self.head

    def __exit__(self, *exc) -> None:
        del self.head.forward


def set_cpu_threads(acc) -> None:
    """One torch thread per physical core (shared by the processes on this machine).

    Hyper-threads share a core's matrix units, so more threads than cores only adds
    contention. ``OMP_NUM_THREADS``, when set, wins.
    """
    import os

    if acc.device.type != "cpu" or os.environ.get("OMP_NUM_THREADS"):
        return
    try:
        import psutil

        cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores // max(acc.num_processes, 1)))


def to_tensors(batch: dict, device) -> dict:
    """A collated batch (lists) as tensors; labels of each sequence's first token are masked.

    A sequence's first token has nothing before it in its own sequence; in a packed row it
    would otherwise be "predicted" from the previous sequence's last token.
    """
    def tensor(key):
        value = batch.get(key)
        if value is None:
            return None
        t = torch.tensor(value, dtype=torch.long)
        return (t if t.dim() == 2 else t.unsqueeze(0)).to(device)

    out = {k: tensor(k) for k in ("input_ids", "labels", "attention_mask", "position_ids")}
    out["labels"] = out["labels"].masked_fill(out["position_ids"] == 0, IGNORE)
    return out


def fused_adamw_ok(groups: list[dict], device) -> bool:
    """Whether torch's fused AdamW (one kernel for all parameters) can update these groups.

    The per-parameter loop launches a dozen small ops per tensor; with LoRA's many small
    matrices that cost more than the update itself (the maths is the same to rounding).
    """
    params = [p for g in groups for p in g["params"]]
    return device.type in ("cpu", "cuda") and bool(params) and all(
        p.dtype in (torch.float32, torch.bfloat16, torch.float16) and p.device.type == device.type for p in params)


#: Rows the start-of-run lints look at (raw text can hold millions of blocks, all alike).
LINT_ROWS = 2000


def row_lengths(rows) -> list[int]:
    """Tokens of each encoded row (blocks of raw text all have the block size: none is read)."""
    size = getattr(rows, "size", None)
    return [size] * len(rows) if size else [len(r.input_ids) for r in rows]


def loss_token_count(tensors: dict) -> int:
    return int((tensors["labels"][:, 1:] != IGNORE).sum())


class SFTRecipe:
    """One SFT run: built by :meth:`setup`, driven by :meth:`train`."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.state = ckpt.TrainState()
        self._stop_early = False  # set by the overfitting signal when eval.early_stop is on
        self.raw_text = False  # training rows are blocks of raw text (collated by collate_blocks)

    # -- setup --------------------------------------------------------------------------

    def setup(self) -> None:
        from transformers import get_scheduler, set_seed

        ctx, cfg = self.ctx, self.cfg
        self.acc = ctx.accelerator
        set_cpu_threads(self.acc)
        self.threads = tuner_for(self.acc, ctx.events.log)
        set_seed(cfg.train.seed)
        self.raw_text = ctx.text_source("data.train") is not None
        if self.raw_text:
            self.train_rows, self.eval_rows = self._text_blocks()
        else:
            self.train_rows = self._encode(ctx.train_examples, "training")
            self.eval_rows = self._encode(ctx.eval_examples, "evaluation") if ctx.eval_examples else []
        self.general_rows = self._encode_general(ctx.general_examples)
        ctx.emit_lints(self.train_rows[:LINT_ROWS])
        self.lengths = row_lengths(self.train_rows)
        ctx.mark("data_done")
        self.unit_of = unit_index(batch_units(self.lengths, cfg))
        n_batches = len(epoch_batches(self.lengths, cfg, 0, self.acc.process_index, self.acc.num_processes))
        self.max_steps = total_steps(cfg, n_batches)
        self.steps_per_epoch = steps_per_epoch(n_batches, cfg.train.grad_accum)
        self.sharded = sharding.wanted(cfg, self.acc.num_processes)
        if self.sharded:
            sharding.check_supported(cfg)
        model = ctx.load_model()
        ctx.mark("model_done")
        self.params_total, self.params_trainable = count_parameters(model)
        if self.sharded:
            model = sharding.shard(model, self.acc.device)
        groups = self._param_groups(model)
        fused = not self.sharded and fused_adamw_ok(groups, self.acc.device)
        optimizer = torch.optim.AdamW(groups, lr=cfg.train.learning_rate, fused=fused)
        # A sharded model is not handed to accelerate, which would wrap it again (DDP on CPU).
        self.model, self.optimizer = (model, optimizer) if self.sharded else self.acc.prepare(model, optimizer)
        # Stepped by hand once per optimizer step: accelerate's wrapper would step it once per process.
        self.scheduler = get_scheduler(cfg.train.lr_scheduler, self.optimizer,
                                       num_warmup_steps=round(cfg.train.warmup_ratio * self.max_steps),
                                       num_training_steps=self.max_steps)
        self.pad_id = ctx.pad.id
        self.virtual_tokens = cfg.method.num_virtual_tokens if cfg.method.name in ("prompt", "ptuning") else 0
        if ctx.resume_from:
            restore = (lambda w, o: sharding.restore(self.model, self.optimizer, w, o)) if self.sharded else None
            self.state = ckpt.load_checkpoint(ctx.resume_from, self.acc.unwrap_model(self.model),
                                              self.optimizer, self.scheduler, self.acc.process_index,
                                              self.acc.num_processes, restore=restore)
            self._continue_schedule(n_batches)
            ctx.events.log(f"resumed from {ctx.resume_from} at step {self.state.step}")
        ctx.emit_started(params_total=self.params_total, params_trainable=self.params_trainable,
                         train_rows=len(self.train_rows), eval_rows=len(self.eval_rows), max_steps=self.max_steps,
                         start_step=self.state.step, steps_per_epoch=self.steps_per_epoch,
                         general_rows=len(self.general_rows), train_tokens=sum(self.lengths))

    def _continue_schedule(self, n_batches: int) -> None:
        """After a resume with another run length, continue the learning rate without a jump."""
        from studio.core import config as configmod
        from studio.worker import schedule

        t = self.cfg.train
        before = self.state.schedule
        if before is None:
            saved = self.ctx.resume_from / "config.yaml"
            old_cfg = configmod.load(saved) if saved.is_file() else self.cfg
            old_total = total_steps(old_cfg, n_batches)
            before = schedule.plain(t.lr_scheduler, round(old_cfg.train.warmup_ratio * old_total), old_total)
        now = before if before["total"] == self.max_steps else schedule.extended(before, self.state.step,
                                                                                  self.max_steps)
        if now == schedule.plain(t.lr_scheduler, round(t.warmup_ratio * self.max_steps), self.max_steps):
            return  # transformers' own schedule: nothing to change
        schedule.install(self.scheduler, self.optimizer, now)
        self.state.schedule = now

    def _encode(self, examples: list, what: str) -> list:
        from studio.core.data_fit import sft_rows
        from studio.core.encoding import rows_without_loss

        if examples and all(ex.kind == "text" for ex in examples):
            self.raw_text = True
            return self._blocks(examples, what)
        examples, undesirable = sft_rows(examples)
        if undesirable:
            self.ctx.events.warning("sft_labels", f"{len(undesirable)} {what} row(s) are labelled undesirable and are "
                                    f"skipped: SFT trains on the {len(examples)} desirable rows (train.objective=kto "
                                    f"learns from both): rows {undesirable[:20]}", rows=undesirable)
        refused: list = []
        encoded = self.ctx.encoder().encode_many(examples, refused)
        if refused:
            self.ctx.events.warning("template_rows", f"{len(refused)} {what} row(s) cannot be rendered by the chat "
                                    f"template and are skipped: " + "; ".join(e.message for e in refused[:10]),
                                    hint=refused[0].hint)
        empty = set(rows_without_loss(encoded))
        if empty:
            rows = sorted(empty)
            self.ctx.events.warning("no_loss_tokens", f"{len(rows)} {what} row(s) have no token that carries loss "
                                    f"(after truncation to data.max_length) and are skipped: rows {rows[:20]}",
                                    rows=rows)
        kept = [e for e in encoded if e.row not in empty]
        if not kept and what == "training":
            from studio.core.errors import DataError

            raise DataError(f"no training row has a token that carries loss (data.loss={self.cfg.data.loss})",
                            "raise data.max_length, or choose data.loss=all")
        if what == "training":
            self.ctx.check_skipped("data.train", len(empty) + len(undesirable) + len(refused))
        return kept

    def _blocks(self, examples: list, what: str) -> list:
        """Raw text loaded whole (a file that is not read as a stream): documents joined with
        end-of-text tokens and cut into data.max_length blocks."""
        return self._block_rows(self.ctx.encoder().encode_blocks(examples), what)

    def _block_rows(self, blocks, what: str):
        from studio.core.errors import DataError

        self.ctx.events.log(f"continued pre-training ({what}): {blocks.summary()}")
        if not blocks.count and what == "training":
            raise DataError(f"the {blocks.documents} documents hold {blocks.tokens} tokens, fewer than one block of "
                            f"data.max_length={blocks.size}", "lower data.max_length, or add text")
        return blocks.blocks

    def _text_blocks(self) -> tuple:
        """Raw text read as a stream (:mod:`studio.core.text_stream`): blocks written to the run folder's
        ``blocks/`` and read back one at a time, so a corpus larger than memory trains."""
        import shutil

        from studio.core.pretrain import block_size
        from studio.core.text_stream import split_blocks

        ctx, data = self.ctx, self.cfg.data
        folder = self._blocks_folder()
        shutil.rmtree(folder, ignore_errors=True)
        ctx.events.log(f"raw text read as a stream; its blocks are written to {folder} (removed when the run ends)")
        size = block_size(data.max_length)
        source = ctx.text_source("data.train")
        train, held = split_blocks(source, ctx.tokenizer, size, 0 if data.eval else data.eval_fraction, data.seed,
                                   folder)
        ctx.check_text_rows(source, "data.train")
        eval_source = ctx.text_source("data.eval") if data.eval else None
        if eval_source is not None:
            held = split_blocks(eval_source, ctx.tokenizer, size, folder=folder / "eval-file")[0]
            ctx.check_text_rows(eval_source, "data.eval")
        elif data.eval:
            return self._block_rows(train, "training"), self._blocks(ctx.eval_examples, "evaluation")
        return self._block_rows(train, "training"), self._block_rows(held, "evaluation") if held else []

    def _blocks_folder(self):
        return self.ctx.run_dir / "blocks" / str(self.acc.process_index)

    def remove_blocks(self) -> None:
        """Delete the raw-text blocks of this process (a resumed run writes them again)."""
        import shutil

        if hasattr(self, "acc"):
            # Drop the blocks first: their files are memory-mapped, and Windows deletes no mapped file.
            self.train_rows = self.eval_rows = []
            shutil.rmtree(self._blocks_folder(), ignore_errors=True)
            with contextlib.suppress(OSError):
                self._blocks_folder().parent.rmdir()  # the last process to finish removes blocks/

    def _encode_general(self, examples: list) -> list:
        """General text is scored on every token (it is not a conversation to answer)."""
        if not examples:
            return []
        return self.ctx.encoder(loss="all").encode_many(examples)

    def _param_groups(self, model) -> list[dict]:
        """AdamW groups: no weight decay on biases, norms and 1-d adapter vectors."""
        decay, no_decay = [], []
        for p in model.parameters():
            if p.requires_grad:
                (decay if p.dim() >= 2 else no_decay).append(p)
        return [{"params": decay, "weight_decay": self.cfg.train.weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]

    # -- the loop -----------------------------------------------------------------------

    def train(self) -> str:
        """Run until ``max_steps`` or a stop request; returns the final status."""
        ctx, st = self.ctx, self.state
        self.model.train()
        if not self.state.general_history and self.general_rows:
            self.state.general_history.append([st.step, self._loss_over(self.general_rows)])
        while st.step < self.max_steps:
            batches = epoch_batches(self.lengths, self.cfg, st.epoch, self.acc.process_index, self.acc.num_processes)
            while st.batch_index < len(batches) and st.step < self.max_steps:
                micro = batches[st.batch_index:st.batch_index + self.cfg.train.grad_accum]
                self.optimizer_step(micro, len(batches))
                release_freed_memory()
                if st.step < self.max_steps:
                    self._periodic()
                if self._stop_early:
                    self._finish(best_weights=True)
                    return "completed"
                if self._stop_requested():
                    self.save_checkpoint()
                    return "stopped"
            if st.batch_index >= len(batches):
                st.epoch, st.batch_index = st.epoch + 1, 0
        self._finish()
        return "completed"

    def optimizer_step(self, micro: list[list[int]], n_batches: int) -> None:
        """One optimizer step over ``micro``: micro-batches (lists of indices into ``train_rows``)
        whose gradients accumulate; ``n_batches`` (batches in the epoch) only places the step in
        its epoch for the event. The unit the benchmark times and the multi-process probe wraps."""
        st, acc = self.state, self.acc
        if self.threads is not None:
            self.threads.before_step()
        started = time.perf_counter()
        batches = [to_tensors(self._collate(rows), acc.device) for rows in micro]
        tokens = sum(loss_token_count(b) for b in batches)
        # Normalise by the loss tokens of the whole optimizer step, so accumulation over
        # micro-batches of different sizes gives the same gradient as one big batch.
        total = torch.zeros((), device=acc.device)
        for i, batch in enumerate(batches):
            sync = i == len(batches) - 1
            with contextlib.nullcontext() if sync else self._no_sync():
                with acc.autocast():
                    loss = self._loss(batch, reduction="sum") / max(tokens, 1)
                acc.backward(loss)
            total += loss.detach()
        grad_norm = self._clip()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        input_tokens = sum(len(self.train_rows[i].input_ids) for rows in micro for i in rows)
        if self.threads is not None:
            self.threads.after_step(time.perf_counter() - started, input_tokens)
        step_loss, input_tokens = self._reduce(total, input_tokens)
        st.step += 1
        st.batch_index += len(micro)
        st.tokens_seen += input_tokens
        st.recent_losses.append(step_loss)
        if st.step % self.cfg.train.logging_steps == 0 or st.step == self.max_steps:
            elapsed = max(time.perf_counter() - started, 1e-9)
            self.ctx.events.emit("step", step=st.step, epoch=round(st.epoch + st.batch_index / max(n_batches, 1), 4),
                                 loss=step_loss, learning_rate=float(self.scheduler.get_last_lr()[0]),
                                 grad_norm=grad_norm, tokens_per_second=round(input_tokens / elapsed, 1),
                                 tokens_seen=st.tokens_seen, memory_mib=memory_mib(), max_steps=self.max_steps,
                                 loss_tokens=tokens)

    def _no_sync(self):
        return sharding.no_sync(self.model) if self.sharded else self.acc.no_sync(self.model)

    def _clip(self) -> float | None:
        params = [p for p in self.model.parameters() if p.requires_grad]
        limit = self.cfg.train.max_grad_norm if self.cfg.train.max_grad_norm > 0 else float("inf")
        if self.sharded:
            return sharding.clip_grad_norm(params, limit)
        norm = self.acc.clip_grad_norm_(params, limit)
        return None if norm is None else float(norm)

    def _reduce(self, loss_sum: torch.Tensor, input_tokens: int) -> tuple[float, int]:
        """Step loss and input tokens over all processes (each process's loss is already a mean)."""
        if self.acc.num_processes == 1:
            return float(loss_sum), input_tokens
        both = torch.tensor([float(loss_sum), float(input_tokens)], device=self.acc.device)
        both = self.acc.reduce(both, reduction="sum")
        return float(both[0]) / self.acc.num_processes, int(both[1])

    def _stop_requested(self) -> bool:
        """The stop flag, agreed by every process (they must all stop after the same step)."""
        if self.acc.num_processes == 1:
            return self.ctx.stop_requested
        flag = torch.tensor([1.0 if self.ctx.stop_requested else 0.0], device=self.acc.device)
        return bool(self.acc.reduce(flag, reduction="sum").item() > 0)

    def _periodic(self) -> None:
        step, ev_cfg, out = self.state.step, self.cfg.eval, self.cfg.output
        if ev_cfg.every_steps and step % ev_cfg.every_steps == 0:
            self.evaluate()
        if ev_cfg.sample_every_steps and step % ev_cfg.sample_every_steps == 0:
            self.sample()
        if step % out.save_every_steps == 0:
            self.save_checkpoint()

    def _finish(self, best_weights: bool = False) -> None:
        """Final evaluation, samples, checkpoint and ``final/`` (from the best evaluation's
        weights when the run stops early)."""
        self.evaluate(final=True)
        self.sample()
        self.save_checkpoint()
        best = self.ctx.checkpoints_dir / ckpt.checkpoint_name(self.state.best_eval_step or 0)
        if best_weights and (best / "state.json").exists():
            if self.sharded:
                sharding.restore_weights(self.model, best)
            else:
                ckpt.load_weights(best, self.acc.unwrap_model(self.model))
            self.ctx.events.log(f"final/ holds the weights of {best.name}, the best evaluation "
                                f"(eval loss {self.state.best_eval_loss:.4f})")
        self.save_final()

    # -- forward and loss ---------------------------------------------------------------

    def _collate(self, rows: list[int], source: list | None = None, unit_of: dict | None = None) -> dict:
        """The core ``collate`` of a micro-batch; with packing, one ``collate`` per pack, stacked."""
        from studio.core.encoding import PadOptions, collate

        data = self.cfg.data
        source = self.train_rows if source is None else source
        options = PadOptions(strategy=data.padding, pad_id=self.pad_id, side=data.padding_side,
                             multiple_of=data.pad_to_multiple_of, max_length=data.max_length)
        if self.raw_text and source is not self.general_rows:  # general text is whole documents, not blocks
            from studio.core.pretrain import collate_blocks

            return collate_blocks([source[i] for i in rows], options, data.text_attention)
        if data.padding != "packing":
            return collate([source[i] for i in rows], options)
        packs = split_units(rows, self.unit_of if unit_of is None else unit_of)
        return stack_packs([collate([source[i] for i in pack], options) for pack in packs], self.pad_id)

    def _hidden(self, batch: dict) -> torch.Tensor:
        """Last hidden states for a batch (prompt-tuning virtual tokens removed)."""
        head = output_head(self.acc.unwrap_model(self.model))
        prompt_method = self.cfg.method.name in PROMPT_METHODS
        with hidden_states_only(head):
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             # PEFT prompt methods build their own positions for the virtual tokens.
                             position_ids=None if prompt_method else batch["position_ids"], use_cache=False)
        hidden = out.logits
        return hidden[:, self.virtual_tokens:] if self.virtual_tokens else hidden

    def _loss(self, batch: dict, reduction: str) -> torch.Tensor:
        head = output_head(self.acc.unwrap_model(self.model))
        return chunked_causal_lm_loss(self._hidden(batch), head.weight, batch["labels"], LOSS_CHUNK,
                                      reduction=reduction, bias=getattr(head, "bias", None))

    # -- evaluation ---------------------------------------------------------------------

    def _loss_over(self, rows: list) -> float:
        """Token-weighted mean loss over encoded rows (sharded over processes)."""
        self.model.eval()
        total, tokens = torch.zeros((), device=self.acc.device), 0
        lengths = row_lengths(rows)
        unit_of = unit_index(batch_units(lengths, self.cfg))
        mine = eval_batches(lengths, self.cfg, self.acc.process_index, self.acc.num_processes)
        with torch.no_grad():
            for i in range(self._agreed_count(len(mine))):
                # A forward pass is a collective (DDP syncs buffers, FSDP gathers weights): a
                # process with fewer batches runs its first one again and counts nothing.
                indices = mine[i] if i < len(mine) else (mine[0] if mine else [0])
                batch = to_tensors(self._collate(indices, rows, unit_of), self.acc.device)
                with self.acc.autocast():
                    loss = self._loss(batch, reduction="sum").float()
                if i < len(mine):
                    total += loss
                    tokens += loss_token_count(batch)
        self.model.train()
        both = torch.tensor([float(total), float(tokens)], device=self.acc.device)
        if self.acc.num_processes > 1:
            both = self.acc.reduce(both, reduction="sum")
        return float(both[0]) / max(float(both[1]), 1.0)

    def _agreed_count(self, n: int) -> int:
        """The largest ``n`` over all processes (every process must run as many forward passes)."""
        if self.acc.num_processes == 1:
            return n
        counts = self.acc.gather(torch.tensor([n], device=self.acc.device))
        return int(counts.max())

    def evaluate(self, final: bool = False) -> None:
        """Eval loss and perplexity (plus general-text loss, and task metrics at the end)."""
        st = self.state
        if not self.eval_rows:
            return
        if st.eval_history and st.eval_history[-1][0] == st.step:
            return  # already evaluated at this step (the last periodic eval fell on the end)
        eval_loss = self._loss_over(self.eval_rows)
        recent = st.recent_losses
        train_loss = sum(recent) / len(recent) if recent else None
        st.recent_losses = []
        st.eval_history.append([st.step, eval_loss, train_loss])
        if st.best_eval_loss is None or eval_loss < st.best_eval_loss:
            st.best_eval_loss, st.best_eval_step = eval_loss, st.step
        fields = {}
        if self.general_rows:
            general = self._loss_over(self.general_rows)
            st.general_history.append([st.step, general])
            fields["general_loss"] = general
        metrics = self._task_metrics() if final else {}
        self.ctx.events.emit("eval", step=st.step, eval_loss=eval_loss, perplexity=perplexity(eval_loss),
                             metrics=metrics, train_loss=train_loss, best_eval_loss=st.best_eval_loss, **fields)
        self._signals()

    def _task_metrics(self) -> dict:
        if self.raw_text:
            return {}  # raw text has no tasks to answer
        examples = [e for e in self.ctx.eval_examples if e.extra.get("task") and e.extra.get("reference")]
        if not (self.cfg.eval.task_metrics and examples and self._generates_here):
            return {}
        prompts = [[{"role": m.role, "content": m.content} for m in e.messages if m.role != "assistant"]
                   for e in examples]
        answers = ev.generate(self.ctx, self.acc.unwrap_model(self.model), prompts, self.cfg.eval.sample_max_new_tokens)
        return ev.task_metrics([e.extra["task"] for e in examples], answers, [str(e.extra["reference"]) for e in examples])

    def _signals(self) -> None:
        st, events = self.state, self.ctx.events
        if "overfitting" not in st.warned and ev.overfitting(st.eval_history, self.cfg.eval.overfit_patience):
            st.warned.append("overfitting")
            best = ckpt.checkpoint_name(st.best_eval_step) if st.best_eval_step is not None else ""
            kept = best and (self.ctx.checkpoints_dir / best / "state.json").exists()
            where = (f"the best evaluation was at step {st.best_eval_step}"
                     + (f"; its checkpoint {best} is kept" if kept else ""))
            events.warning("overfitting", f"eval loss rose {self.cfg.eval.overfit_patience} evaluations in a row "
                           f"while the training loss fell (step {st.step}): the model is memorising the training rows",
                           hint=f"stop here or lower train.epochs / learning_rate; {where}",
                           best_step=st.best_eval_step)
            if self.cfg.eval.early_stop:
                self._stop_early = True
                events.warning("early_stop", f"stopping early at step {st.step} of {self.max_steps} "
                               "(eval.early_stop): eval loss kept rising", best_step=st.best_eval_step)
        if "forgetting" not in st.warned and ev.forgetting(st.general_history):
            first, last = st.general_history[0][1], st.general_history[-1][1]
            st.warned.append("forgetting")
            events.warning("forgetting", f"loss on the general text ({self.cfg.data.general_eval}) climbed from "
                           f"{first:.3f} to {last:.3f}: the model is forgetting general knowledge",
                           hint="lower the learning rate or epochs, or use an adapter method with a smaller rank")

    @property
    def _generates_here(self) -> bool:
        """The main process generates; with a sharded model every process takes part (greedy
        decoding gives them the same tokens, so they run the same number of forward passes)."""
        return self.acc.is_main_process or self.sharded

    def sample(self) -> None:
        """``sample`` events: answers to ``eval.sample_prompts`` through the chat template."""
        prompts = [p for p in self.cfg.eval.sample_prompts if p]
        if not prompts or not self._generates_here:
            return
        answers = ev.generate(self.ctx, self.acc.unwrap_model(self.model), [[{"role": "user", "content": p}]
                                                                           for p in prompts],
                              self.cfg.eval.sample_max_new_tokens)
        if not self.acc.is_main_process:
            return
        for prompt, text in zip(prompts, answers):
            self.ctx.events.emit("sample", step=self.state.step, prompt=prompt, text=text)

    # -- saving -------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """A complete, atomically written checkpoint of the current step (main process)."""
        self.acc.wait_for_everyone()
        rng_states = None
        if self.acc.num_processes > 1:
            from accelerate.utils import gather_object

            rng_states = gather_object([ckpt.rng_state()])  # by process index
        gathered = {}
        if self.sharded:  # collectives: every process gathers, the main one writes
            gathered = dict(weights=sharding.full_trainable_state(self.model),
                            optimizer_state=sharding.full_optimizer_state(self.model, self.optimizer))
        if self.acc.is_main_process:
            path = ckpt.save_checkpoint(self.ctx.checkpoints_dir, self.acc.unwrap_model(self.model), self.optimizer,
                                        self.scheduler, self.state, dump_yaml(self.cfg),
                                        keep=self.cfg.output.keep_checkpoints, rng_states=rng_states, **gathered)
            self.ctx.events.emit("checkpoint", step=self.state.step, path=str(path))
        self.acc.wait_for_everyone()

    def save_final(self) -> None:
        """``final/``: the adapter (PEFT format) or the full model, with tokenizer and chat template."""
        state_dict = sharding.full_model_state(self.model) if self.sharded else None  # collective
        if self.acc.is_main_process:
            from studio.worker.export import save_final

            save_final(self.ctx, self.acc.unwrap_model(self.model), state_dict=state_dict)
        self.acc.wait_for_everyone()

