"""GGUF export figures on the demo model: logit error per quantization and llama.cpp generation parity.

Trains the demo run (the demo preset's LoRA on the demo model) (or takes ``--run RUN_DIR``), exports it as GGUF in each
quantization Studio writes, and prints per type: file size, the check's relative logit error
against the merged model (and its tolerance), top-1 agreement, the check's verdict and the export
time. Where llama-cpp-python is importable it then generates greedily from the f16 export with
llama.cpp and compares the tokens with the merged model's on ``--prompts`` prompts from the run's
evaluation data, and says whether each answer ended at the end-of-turn token.

    python benchmarks/gguf_parity.py                  # trains 30 steps, all quantizations
    python benchmarks/gguf_parity.py --run runs/x --quants f16 q8_0 --prompts 8
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def train_demo_run(folder: Path, steps: int) -> Path:
    """The window's demo run (resources/presets/demo.yaml: LoRA rank 16 on the demo model), ``steps`` long."""
    from worker_runs import train_in_process

    from studio.core import config as configmod

    cfg = configmod.load(ROOT / "resources" / "presets" / "demo.yaml")
    cfg.model.path = str(ROOT / cfg.model.path)
    cfg.data.train = str(ROOT / cfg.data.train)
    cfg.train.max_steps = steps
    cfg.eval.sample_prompts = []
    cfg.output.report_to = []
    run = folder / "demo-run"
    run.mkdir()
    configmod.save(cfg, run / "config.yaml")
    status = train_in_process(run)
    if status != "completed":
        raise SystemExit(f"the demo run ended {status}")
    return run


def quant_table(run: Path, quants: list[str], out: Path) -> list[dict]:
    from studio.worker import export

    rows = []
    for quant in quants:
        start = time.perf_counter()
        report = export.export_gguf(run, out / quant, quant)
        seconds = time.perf_counter() - start
        logits = report["checks"]["logits"]
        rows.append({"quant": quant, "mib": Path(report["gguf"]).stat().st_size / 2**20,
                     "error": logits["relative_error"], "tolerance": logits["tolerance"],
                     "top1": logits["top1_agreement"], "verdict": report["verdict"], "seconds": seconds,
                     "generation": report["checks"].get("generation"), "gguf": report["gguf"]})
    return rows


def llama_cpp_parity(run: Path, gguf: str, prompts: int, max_new_tokens: int) -> list[dict]:
    from studio.worker import export
    from studio.worker.gguf_check import sample_conversations
    from studio.worker.gguf_generate import llama_cpp_tokens, prompt_tokens, reference_tokens, stop_text

    ctx = export._context(run)
    model = export._merged_model(ctx, export._source(ctx, None), ctx.cfg.method.name).eval()
    stop = ctx.tokenizer.token_to_id(stop_text(ctx))
    rows = ctx.eval_examples or ctx.train_examples
    out = []
    for conv in sample_conversations(rows, prompts):
        ids = prompt_tokens(ctx, conv)
        ref = reference_tokens(ctx, model, ids, max_new_tokens)
        got = llama_cpp_tokens(Path(gguf), ids, max_new_tokens)
        out.append({"prompt_tokens": len(ids), "same": ref == got, "reference": ref, "llama_cpp": got,
                    "ref_stops": bool(ref) and ref[-1] == stop, "llama_stops": bool(got) and got[-1] == stop,
                    "last": ctx.tokenizer.id_to_token(got[-1]) if got else None,
                    "answer": ctx.tokenizer.decode(got, skip_special_tokens=True)[:60]})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="an existing run folder (default: train a demo LoRA run)")
    parser.add_argument("--steps", type=int, default=30, help="steps of the demo run it trains (the preset's 30)")
    parser.add_argument("--quants", nargs="+", default=["f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0"])
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else train_demo_run(Path(tmp), args.steps)
        table = quant_table(run, args.quants, Path(tmp) / "gguf")
        print(f"\n{'type':6} {'MiB':>6} {'logit err':>10} {'tolerance':>9} {'top-1':>6} {'export s':>8}  check")
        for r in table:
            print(f"{r['quant']:6} {r['mib']:6.2f} {r['error']:10.2e} {r['tolerance']:9.0e} {r['top1']:6.3f} "
                  f"{r['seconds']:8.1f}  {r['verdict']}")
        f16 = next((r for r in table if r["quant"] == "f16"), None)
        try:
            import llama_cpp
        except Exception as exc:  # not installed, or its library does not load
            print(f"\nllama.cpp: llama-cpp-python is not importable ({exc}); no generation parity")
            return 0
        if f16 is None:
            return 0
        print(f"\nllama.cpp generation parity (llama-cpp-python {llama_cpp.__version__}, f16 export, greedy):")
        results = llama_cpp_parity(run, f16["gguf"], args.prompts, args.max_new_tokens)
        for i, r in enumerate(results):
            print(f"  prompt {i}: {r['prompt_tokens']} tokens -> {len(r['llama_cpp'])} generated, identical={r['same']}, "
                  f"last token {r['last']}, stopped at eot={r['llama_stops']} (merged model: {r['ref_stops']}) {r['answer']!r}")
        same = sum(r["same"] for r in results)
        stops = sum(r["llama_stops"] for r in results)
        print(f"  {same}/{len(results)} prompts give identical greedy tokens; {stops}/{len(results)} stop at <|eot_id|>")
        if f16["generation"]:
            print(f"  the export check's generation part: {f16['generation']['detail']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
