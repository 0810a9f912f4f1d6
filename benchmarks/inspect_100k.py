"""Time `studio inspect` cold on 100k generated chat rows, against the token-by-token path in the same run.

Usage::

    python benchmarks/inspect_100k.py [--rows 100000] [--model resources/demo-model] [--template auto]
                                      [--keep DIR] [--hf-rows 2000] [--ids-rows 10000] [--no-reference]

Writes a seeded OpenAI-messages JSONL file (a system prompt, a question of 4-40 words, an answer
of a long-tailed length: about 150 tokens a row with the demo tokenizer), then, in this order:

1. **cold**: ``python -m studio inspect --json`` in a fresh ``STUDIO_HOME`` and cache folder:
   the time a person waits the first time (process start, reading and checking the file,
   measuring every row, the statistics).
2. **cached**: the same command again (the statistics cache answers).
3. **reference**: the path every row took before, kept in the code as the reference: the
   template rendered by Jinja for every row, and every row encoded token by token as the
   trainer encodes it (``lengths.measure_reference``), in two processes that each read the
   file and measure half of it, as the window and ``studio inspect`` used to.
4. **transformers**: ``apply_chat_template(tokenize=True, return_assistant_tokens_mask=True)``
   of transformers' own tokenizer, as TRL's assistant-only loss gets its masks, on the first
   ``--hf-rows`` rows (it is too slow for all of them): tokens per CPU-second only.

Results must be the same: the statistics of cold, cached and reference are hashed, and so are
the stored lengths and loss spans of every row (the cache entry of the cold run against the
reference's); the ids and labels of the first ``--ids-rows`` rows encoded for training, with
the template written directly and through Jinja, are hashed too. Each figure is given as wall
time, CPU time (all processes and threads; the machine is shared, so CPU time moves less with
the load) and tokens per second per core.
"""

from __future__ import annotations

import argparse
import hashlib
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
WORDS = ("the train to Lisbon leaves early so book a seat near the window and bring water "
         "museums close on Mondays while markets open at dawn; ask locals where they eat").split()
STORED = ("rows", "lengths", "loss_spans", "warnings", "warning_count")


def sentence(rng: random.Random, words: int) -> str:
    """A plain sentence of ``words`` words."""
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` chat rows whose lengths spread from a few dozen to a few thousand tokens."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(rows):
            messages = [{"role": "system", "content": "You are a helpful travel assistant."},
                        {"role": "user", "content": sentence(rng, rng.randint(4, 40))},
                        {"role": "assistant", "content": sentence(rng, int(rng.lognormvariate(3.85, 0.8)) + 1)}]
            fh.write(json.dumps({"messages": messages}) + "\n")


def digest(value) -> str:
    """A short hash of a JSON-able value (statistics: without the cache-hit flag, which is no result)."""
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if k != "cache_hit"}
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run ``command`` to its end: (wall seconds, CPU seconds of it and its children, stdout)."""
    cpu, start = children_cpu(), time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{' '.join(command[:4])}... failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return wall, children_cpu() - cpu, out.stdout


def inspect(data: Path, args, home: Path) -> tuple[float, float, dict]:
    env = {**os.environ, "STUDIO_HOME": str(home), "XDG_CACHE_HOME": str(home / "xdg-cache"), "PYTHONPATH": str(ROOT)}
    wall, cpu, out = run([sys.executable, "-m", "studio", "inspect", "--model", args.model, "--data", str(data),
                          "--template", args.template, "--json"], env)
    return wall, cpu, json.loads(out)


def reference(data: Path, args, folder: Path) -> tuple[float, float, dict]:
    """The reference path in two processes, each measuring half of the rows; their entries joined."""
    cpu, start = children_cpu(), time.perf_counter()
    half = args.rows // 2 + args.rows % 2
    procs = [subprocess.Popen([sys.executable, __file__, "--reference-part", str(data), args.model, args.template,
                               str(at), str(half), str(folder / f"part{at}.json")], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}) for at in (0, half)]
    if any(p.wait() != 0 for p in procs):
        sys.exit("the reference measurement failed")
    wall, used = time.perf_counter() - start, children_cpu() - cpu
    parts = [json.loads((folder / f"part{at}.json").read_text()) for at in (0, half)]
    joined = {k: parts[0][k] + parts[1][k] for k in ("rows", "lengths", "loss_spans")}
    joined["warnings"] = (parts[0]["warnings"] + parts[1]["warnings"])[:50]
    joined["warning_count"] = parts[0]["warning_count"] + parts[1]["warning_count"]
    return wall, used, joined


def reference_part(data: str, model: str, template: str, at: int, count: int, out: str) -> None:
    """Child process: read the whole file (as ``studio inspect`` does) and measure rows ``at:at+count``."""
    from studio.core import lengths
    from studio.core.data import load_examples
    from studio.core.encoding import EncodeOptions, Encoder
    from studio.core.tokenizer import load_tokenizer

    examples = load_examples(data).examples[at: at + count]
    encoder = Encoder(load_tokenizer(model), EncodeOptions(template=template))
    encoder.layouter.direct = None  # every row rendered by Jinja
    Path(out).write_text(json.dumps(lengths._to_entry(lengths.measure_reference(examples, encoder))))


def stats_of(entry: dict, model: str, tokenizer) -> dict:
    """The statistics ``studio inspect`` prints for a stored entry (its default settings)."""
    from studio.core import lengths, stats
    from studio.core.models import resource_path

    measured = lengths.Measured(**{k: entry[k] for k in STORED})
    return stats.compute(measured, batch_size=8, max_length=None, context=stats.context_length(resource_path(model),
                         tokenizer), multiple_of=8, side="right", bins=16).to_dict()


def ids_and_labels(data: Path, args) -> tuple[str, str, int]:
    """Hashes of the training ids and labels of the first rows, template written directly and by Jinja."""
    from studio.core.data import load_examples
    from studio.core.encoding import EncodeOptions, Encoder
    from studio.core.tokenizer import load_tokenizer

    rows = load_examples(data).examples[: args.ids_rows]
    fast = Encoder(load_tokenizer(args.model), EncodeOptions(template=args.template))
    slow = Encoder(fast.tokenizer, fast.options)
    slow.layouter.direct = None
    hashes = [digest([(e.input_ids, e.labels) for e in enc.encode_many(rows)]) for enc in (fast, slow)]
    return hashes[0], hashes[1], fast.layouter.direct is not None


def transformers_rate(data: Path, args) -> tuple[float, int]:
    """transformers' ``apply_chat_template`` with assistant masks: (tokens per CPU-second, tokens)."""
    from transformers import AutoTokenizer

    from studio.core.encoding import EncodeOptions, Encoder
    from studio.core.tokenizer import load_tokenizer

    template = Encoder(load_tokenizer(args.model), EncodeOptions(template=args.template)).template.text
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    with open(data, encoding="utf-8") as fh:
        rows = [json.loads(line)["messages"] for _, line in zip(range(args.hf_rows), fh)]
    cpu = time.process_time()
    tokens = 0
    for messages in rows:
        out = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
        tokens += len(out["input_ids"])
    return tokens / (time.process_time() - cpu), tokens


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--reference-part":
        data, model, template, at, count, out = sys.argv[2:8]
        return reference_part(data, model, template, int(at), int(count), out)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--model", default=str(ROOT / "resources" / "demo-model"))
    parser.add_argument("--template", default="auto", help="chat template (llama3 for a tokenizer-only folder)")
    parser.add_argument("--keep", metavar="DIR", help="write the dataset here and keep it")
    parser.add_argument("--hf-rows", type=int, default=2000, help="rows for the transformers baseline (0: skip)")
    parser.add_argument("--ids-rows", type=int, default=10_000, help="rows whose ids and labels are hashed (0: skip)")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference path (the slow part)")
    args = parser.parse_args()
    from studio.core.tokenizer import load_tokenizer

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores; load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        data = folder / f"chat150_{args.rows}.jsonl"
        if not data.exists():  # a kept file is reused: the same seed writes the same rows
            generate(data, args.rows)
        home = Path(tmp) / "home"
        cold, cold_cpu, report = inspect(data, args, home)
        warm, warm_cpu, again = inspect(data, args, home)
        (entry_file,) = (home / "cache" / "stats").glob("*.json")
        entry = json.loads(entry_file.read_text())
        tokens = sum(entry["lengths"])
        rate = lambda seconds: tokens / seconds  # noqa: E731
        print(f"{args.rows:,} rows, {tokens:,} tokens ({tokens / args.rows:.1f} a row), {data.stat().st_size / 1e6:.1f} MB")
        print(f"cold   studio inspect: {cold:6.1f} s wall {cold_cpu:6.1f} s CPU | {rate(cold):>9,.0f} tokens/s, "
              f"{rate(cold) / cores:>9,.0f} per core, {rate(cold_cpu):>9,.0f} per CPU-second")
        print(f"cached studio inspect: {warm:6.1f} s wall {warm_cpu:6.1f} s CPU")
        hashes = {"cold": (digest(report["stats"]), digest({k: entry[k] for k in STORED})),
                  "cached": (digest(again["stats"]), None)}
        if not args.no_reference:
            ref, ref_cpu, ref_entry = reference(data, args, Path(tmp))
            tokenizer = load_tokenizer(args.model)
            hashes["reference"] = (digest(stats_of(ref_entry, args.model, tokenizer)), digest(ref_entry))
            print(f"reference (Jinja, token by token, 2 processes): {ref:6.1f} s wall {ref_cpu:6.1f} s CPU | "
                  f"{rate(ref):>9,.0f} tokens/s, {rate(ref) / cores:>9,.0f} per core, {rate(ref_cpu):>9,.0f} per CPU-second")
            print(f"cold inspect against the reference: {ref / cold:.2f}x wall, {ref_cpu / cold_cpu:.2f}x CPU")
        if args.hf_rows:
            hf, hf_tokens = transformers_rate(data, args)
            print(f"transformers apply_chat_template with assistant masks ({args.hf_rows:,} rows, {hf_tokens:,} tokens): "
                  f"{hf:,.0f} tokens per CPU-second; cold inspect {rate(cold_cpu) / hf:.1f}x that")
        for name, (stats_hash, entry_hash) in hashes.items():
            print(f"hash {name:>9}: statistics {stats_hash}" + (f", lengths and loss spans {entry_hash}" if entry_hash else ""))
        same = len({h[0] for h in hashes.values()}) == 1 and len({h[1] for h in hashes.values() if h[1]}) == 1
        if args.ids_rows:
            fast, slow, direct = ids_and_labels(data, args)
            same = same and fast == slow
            print(f"hash ids and labels of {args.ids_rows:,} rows: template written directly {fast} "
                  f"({'used' if direct else 'not available for this template'}), through Jinja {slow}")
        print(f"results the same: {'yes' if same else 'NO'}")
        print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(json.dumps({"rows": args.rows, "tokens": tokens, "cold_wall_s": round(cold, 2), "cold_cpu_s": round(cold_cpu, 2),
                          "cached_wall_s": round(warm, 2), "tokens_per_s_per_core": round(rate(cold) / cores),
                          "same": same}))
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
