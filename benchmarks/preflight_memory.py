"""Preflight's memory estimate against the peak memory a real worker reaches on CPU.

For each case a model folder is written (the demo model's shape, and a larger random Llama),
then the real worker (``studio.worker.main``) trains it for a few steps in a child process.
The child records its resident memory after the heavy imports and its peak (``VmHWM``) at the
end; the difference is what training added, compared with ``preflight.estimate_memory``.

    python benchmarks/preflight_memory.py            # all cases, prints a table, exits 1 if a ratio is off
    python benchmarks/preflight_memory.py --quick    # the demo-shaped case only

Acceptance: measured / estimated within 0.5 .. 2.0 for every case.

Measured on a 2-core development machine (fp32, CPU), measured/estimated:
demo-shape LoRA 1.02 (518 / 506 MiB), 56M Llama LoRA 0.97 (1106 / 1137 MiB),
56M Llama full 0.91 (1478 / 1628 MiB), 56M Llama LoRA + gradient checkpointing 0.88 (624 / 708 MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

#: name -> (model shape, config overrides)
CASES = {
    "demo-shape lora": (dict(hidden_size=128, intermediate_size=352, num_hidden_layers=4, num_attention_heads=4,
                             num_key_value_heads=2, vocab_size=3072, tie_word_embeddings=True),
                        {"method": {"name": "lora", "rank": 16, "alpha": 32}, "train": {"batch_size": 8},
                         "data": {"max_length": 512}}),
    "56M llama lora": (dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=8, num_attention_heads=8,
                            num_key_value_heads=4, vocab_size=32000, tie_word_embeddings=False),
                       {"method": {"name": "lora", "rank": 16, "alpha": 32}, "train": {"batch_size": 4},
                        "data": {"max_length": 256}}),
    "56M llama full": (dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=8, num_attention_heads=8,
                            num_key_value_heads=4, vocab_size=32000, tie_word_embeddings=False),
                       {"method": {"name": "full"}, "train": {"batch_size": 4, "learning_rate": 2e-5},
                        "data": {"max_length": 256}}),
    "56M llama lora + checkpointing": (dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                                            num_attention_heads=8, num_key_value_heads=4, vocab_size=32000,
                                            tie_word_embeddings=False),
                                       {"method": {"name": "lora", "rank": 16, "alpha": 32},
                                        "train": {"batch_size": 4, "gradient_checkpointing": True},
                                        "data": {"max_length": 256}}),
}

CHILD = r"""
import json, sys
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
import torch, transformers, peft, accelerate  # the imports every run pays before training
torch.set_num_threads(1)
import studio.worker.recipes.sft, studio.worker.main, studio.core.encoding, studio.core.data
base = rss("VmRSS")
code = studio.worker.main.main([sys.argv[1]])
print(json.dumps({"base": base, "peak": rss("VmHWM"), "code": code}))
"""


def build_model(folder: Path, shape: dict) -> Path:
    """A random Llama of ``shape`` with the demo tokenizer (vocab padded to ``vocab_size``)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from worker_runs import build_tiny_model

    build_tiny_model(folder)  # tokenizer files and ids
    config = json.loads((folder / "config.json").read_text())
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**{**shape, "max_position_embeddings": 2048,
                                            "bos_token_id": config["bos_token_id"],
                                            "eos_token_id": config["eos_token_id"]}))
    model.save_pretrained(str(folder))
    return folder


def run_case(name: str, work: Path) -> dict:
    from studio.core import config as configmod
    from studio.core.memory import estimate_memory
    from studio.core.modelshape import read_model_shape

    shape, overrides = CASES[name]
    model = build_model(work / "model", shape)
    data = {"model": {"path": str(model)},
            "data": {"train": str(ROOT / "resources/datasets/travel_chat.jsonl"), "padding": "max_length",
                     "eval_fraction": 0.0},
            "train": {"max_steps": 3, "precision": "fp32", "device": "cpu", "learning_rate": 2e-4},
            "eval": {"every_steps": 0, "sample_prompts": []}, "output": {"save_every_steps": 100, "report_to": ["none"]}}
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    cfg = configmod.from_dict(data)
    run_dir = work / "run"
    run_dir.mkdir()
    configmod.save(cfg, run_dir / "config.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "STUDIO_HOME": str(work / "home")}
    out = subprocess.run([sys.executable, "-c", CHILD, str(run_dir)], capture_output=True, text=True, env=env,
                         cwd=str(ROOT), timeout=1200)
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    if measured["code"] != 0:
        raise SystemExit(f"{name}: the worker failed; see {run_dir / 'worker.log'}")
    est = estimate_memory(read_model_shape(model), cfg, device="cpu")
    used = measured["peak"] - measured["base"]
    return {"case": name, "estimate_mib": est.total / 2**20, "measured_mib": used / 2**20,
            "ratio": used / est.total, "parts": {k: round(v / 2**20, 1) for k, v in est.to_dict().items()
                                                 if k in ("weights", "gradients", "optimizer", "activations", "logits")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the demo-shaped case")
    args = parser.parse_args(argv)
    names = list(CASES)[:1] if args.quick else list(CASES)
    results = []
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(run_case(name, Path(tmp)))
        r = results[-1]
        print(f"{r['case']:<34} estimate {r['estimate_mib']:8.1f} MiB  measured {r['measured_mib']:8.1f} MiB  "
              f"ratio {r['ratio']:.2f}  parts {r['parts']}", flush=True)
    bad = [r for r in results if not 0.5 <= r["ratio"] <= 2.0]
    for r in bad:
        print(f"OUT OF RANGE: {r['case']} measured/estimate = {r['ratio']:.2f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
