"""Build Studio's demo resources: sample travel-tips datasets and a tiny Llama model.

Usage::

    python resources/build_demo.py                 # datasets, tokenizer and model
    python resources/build_demo.py --datasets-only # only resources/datasets/

Everything is seeded: a rebuild gives byte-identical datasets and tokenizer (a test checks
both), and a model trained with the same initialisation and batch order (its float results
may differ slightly between machines and torch builds).

Writes ``resources/datasets/`` (chat in OpenAI, ShareGPT and Alpaca shapes, preference
pairs, prompt/completion, an evaluation set and general text for forgetting checks) and
``resources/demo-model/`` (see ``demo_model.py``). Timing on a 2-core development
machine: datasets under a second; tokenizer one to three seconds; model pre-training
(200 steps of 8 x 256 tokens) about 7.5 CPU-minutes, i.e. close to four minutes of wall
time on two idle cores (it took 27 minutes while the cores were shared with other jobs).
The pre-training loss goes from 8.05 to about 1.2.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import demo_rows as R  # noqa: E402  (sibling module, found through the path above)

DATASETS = HERE / "datasets"
MODEL_DIR = HERE / "demo-model"
SEED = 1234

SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}


def chat_rows(rng: random.Random, n: int = 300) -> list[list[dict]]:
    """Conversations: about a quarter with a system prompt, a fifth multi-turn."""
    rows = []
    for _ in range(n):
        turns = rng.choice([2, 3]) if rng.random() < 0.2 else 1
        rows.append(R.conversation(rng, turns, system=rng.random() < 0.25))
    return rows


def to_sharegpt(messages: list[dict]) -> dict:
    """OpenAI messages as a ShareGPT ``conversations`` record."""
    return {"conversations": [{"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]} for m in messages]}


def to_alpaca(messages: list[dict]) -> dict:
    """OpenAI messages as an Alpaca record; earlier turns go to ``history``."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    turns = [m["content"] for m in messages if m["role"] != "system"]
    pairs = [turns[i:i + 2] for i in range(0, len(turns), 2)]
    record = {"instruction": pairs[-1][0], "input": "", "output": pairs[-1][1]}
    if system:
        record["system"] = system[0]
    if len(pairs) > 1:
        record["history"] = pairs[:-1]
    return record


def completion_rows(rng: random.Random, n: int = 100) -> list[dict]:
    """Prompt/completion pairs with plain-string fields."""
    rows = []
    for _ in range(n):
        q, a = R.qa_pair(rng, R.city(rng))
        rows.append({"prompt": q, "completion": a})
    return rows


def eval_rows(rng: random.Random) -> list[dict]:
    """60 evaluation rows: 20 generation, 25 short-answer qa, 15 summarisation."""
    rows = []
    for _ in range(20):
        q, a = R.qa_pair(rng, R.city(rng))
        rows.append({"task": "generation", "messages": [{"role": "user", "content": q}], "reference": a})
    for _ in range(25):
        q, a = R.short_qa(rng)
        rows.append({"task": "qa", "messages": [{"role": "user", "content": q}], "reference": a})
    for _ in range(15):
        paragraph, summary = R.summary_task(rng)
        prompt = f"Summarise this paragraph in one sentence.\n\n{paragraph}"
        rows.append({"task": "summarization", "messages": [
            {"role": "system", "content": "You summarise travel notes in one sentence."},
            {"role": "user", "content": prompt}], "reference": summary})
    return rows


def write_jsonl(path: Path, rows: list) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_json(path: Path, rows: list) -> None:
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def build_datasets(out: Path = DATASETS) -> dict[str, int]:
    """Write every demo dataset into ``out``; returns rows written per file name."""
    out.mkdir(parents=True, exist_ok=True)
    # One generator per file, so changing one dataset leaves the others byte-identical.
    chats = chat_rows(random.Random(SEED))
    files = {
        "travel_chat.jsonl": [{"messages": m} for m in chats],
        "travel_sharegpt.json": [to_sharegpt(m) for m in chats],
        "travel_alpaca.json": [to_alpaca(m) for m in chats],
        "travel_prefs.jsonl": [R.preference(rng) for rng in [random.Random(SEED + 1)] for _ in range(150)],
        "travel_completion.jsonl": completion_rows(random.Random(SEED + 2)),
        "travel_eval.jsonl": eval_rows(random.Random(SEED + 3)),
        "general_text.jsonl": [{"text": R.general_text(rng)} for rng in [random.Random(SEED + 4)] for _ in range(100)],
    }
    for name, rows in files.items():
        (write_json if name.endswith(".json") else write_jsonl)(out / name, rows)
    return {name: len(rows) for name, rows in files.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets-only", action="store_true", help="write only resources/datasets/")
    args = parser.parse_args(argv)
    for name, count in build_datasets().items():
        print(f"datasets/{name}: {count} rows")
    if not args.datasets_only:
        import demo_model  # torch and transformers are only needed for the model

        demo_model.build(DATASETS, MODEL_DIR, seed=SEED)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
