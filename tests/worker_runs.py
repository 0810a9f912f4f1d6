"""Helpers for worker tests: a tiny random Llama with the demo tokenizer, and run folders.

Imported by tests/unit/worker and tests/integration (tests/ is on sys.path through its conftest)."""

from __future__ import annotations

import shutil
from pathlib import Path

from studio.core import config as configmod

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "resources" / "demo-model"
DATASETS = ROOT / "resources" / "datasets"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A 2-layer Llama (hidden 32) with the demo model's Llama 3 tokenizer, random weights."""
    import torch
    from tokenizers import Tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (DEMO_MODEL / name).exists():
            shutil.copy(DEMO_MODEL / name, folder / name)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tok.token_to_id("<|begin_of_text|>"),
                         eos_token_id=tok.token_to_id("<|eot_id|>"))
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    return folder


def small_train_file(folder: Path, rows: int = 40) -> Path:
    """The first rows of the demo chat dataset (a short file keeps tests fast)."""
    lines = (DATASETS / "travel_chat.jsonl").read_text(encoding="utf-8").splitlines()[:rows]
    path = folder / "train.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_run_dir(tmp_path: Path, model: Path, overrides: dict | None = None, rows: int = 40) -> Path:
    """A run folder whose config.yaml trains ``model`` on a few demo rows for a few steps."""
    data = {
        "name": "test",
        "model": {"path": str(model)},
        "data": {"train": str(small_train_file(tmp_path, rows)), "max_length": 256, "eval_fraction": 0.2},
        "method": {"name": "lora", "rank": 4, "alpha": 8},
        "train": {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-3, "precision": "fp32", "device": "cpu"},
        "eval": {"every_steps": 2, "sample_prompts": ["Hi"], "sample_max_new_tokens": 4},
        "output": {"save_every_steps": 2, "report_to": ["none"]},
    }
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        data.setdefault(section, {})[name] = value
    cfg = configmod.from_dict(data)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    configmod.save(cfg, run_dir / "config.yaml")
    return run_dir


def one_thread_env() -> dict:
    """The environment for worker children: one torch thread.

    Test machines share two cores among many processes; OpenMP threads spinning at barriers
    then cost several times the useful work. One thread also matches :func:`train_in_process`,
    so in-process and child runs compute bit-identical losses.
    """
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1"}


def start_worker(run_dir: Path, *args: str):
    """``python -m studio.worker RUN_DIR ...`` as a child process with its stdout piped."""
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "studio.worker", str(run_dir), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=str(ROOT), env=one_thread_env())


def wait_for_event(proc, predicate, timeout: float = 120.0) -> dict:
    """Read the worker's stdout until an event matches ``predicate``; returns it."""
    import json
    import time

    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if predicate(event):
            return event
        if time.monotonic() > deadline:
            break
    raise AssertionError("the worker ended or timed out before the expected event")


def read_events(run_dir: Path) -> list[dict]:
    import json

    with open(run_dir / "events.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def step_losses(events: list[dict]) -> dict[int, tuple]:
    """step -> (loss, grad_norm, learning_rate) from step events (a resumed run's steps overwrite none)."""
    return {e["step"]: (e["loss"], e["grad_norm"], e["learning_rate"]) for e in events if e["type"] == "step"}


def train_in_process(run_dir: Path, stop_after_step: int | None = None, resume: Path | None = None) -> str:
    """Run the SFT recipe in this process (no worker start-up cost); returns its status.

    ``stop_after_step`` sets the stop flag when that step's event is emitted, exactly as the
    SIGTERM handler would.
    """
    import os

    import torch

    from studio.worker.context import RunContext
    from studio.worker.events import Events
    from studio.worker.recipes import sft

    threads, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # the recipe leaves the thread count alone when this is set
    torch.set_num_threads(1)
    cfg = configmod.load(run_dir / "config.yaml")
    events = Events(run_dir / "events.jsonl", stdout=None)
    ctx = RunContext(cfg, run_dir, events, resume)
    from studio.worker.loggers import attach_loggers

    attach_loggers(ctx)
    if stop_after_step is not None:
        def stop(event):
            if event["type"] == "step" and event["step"] == stop_after_step:
                ctx.stop_requested = True
        events.subscribe(stop)
    try:
        status = sft.run(ctx)
        events.emit("finished", status=status)
        return status
    finally:
        events.close()
        torch.set_num_threads(threads)
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp
