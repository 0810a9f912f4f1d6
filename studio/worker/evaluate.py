"""Evaluation beyond the loss: generation, per-task metrics, and overfitting/forgetting signals."""

from __future__ import annotations

import re
import string
from collections import Counter

#: Tasks whose answers are scored by n-gram overlap with the reference; the rest by exact match and F1.
OVERLAP_TASKS = ("generation", "summarization")
#: Tasks whose answers are tool calls: scored on the function names and JSON arguments
#: (:mod:`studio.core.tool_calls`), not on the text.
TOOL_TASKS = ("tool_call", "function_call")
STOP_TOKENS = ("<|eot_id|>", "<|end_of_text|>", "<|im_end|>", "<|endoftext|>", "</s>", "<end_of_turn>")


# -- generation ---------------------------------------------------------------------------

def stop_ids(tokenizer) -> list[int]:
    """Token ids that end a generated answer: the model's EOS and common end-of-turn tokens."""
    ids = {tokenizer.token_to_id(t) for t in STOP_TOKENS}
    if tokenizer.eos_token:
        ids.add(tokenizer.token_to_id(tokenizer.eos_token))
    return sorted(i for i in ids if i is not None)


def generate(ctx, model, conversations: list[list[dict]], max_new_tokens: int) -> list[str]:
    """Greedy answers to conversations rendered with the run's chat template.

    Prompts are rendered by the same Jinja template as training and encoded by the core
    tokenizer (which never adds a second BOS).
    """
    import torch

    hf_tok = ctx.hf_tokenizer()
    stops = stop_ids(ctx.tokenizer)
    pad_id = ctx.pad.id if ctx.pad.id is not None else (stops[0] if stops else 0)
    was_training = model.training
    model.eval()
    answers = []
    try:
        for messages in conversations:
            text = hf_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            ids = torch.tensor([ctx.tokenizer.encode(text)], device=ctx.device)
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                     do_sample=False, eos_token_id=stops or None, pad_token_id=pad_id)
            new = [t for t in out[0, ids.shape[1]:].tolist() if t not in stops]
            answers.append(ctx.tokenizer.decode(new, skip_special_tokens=True).strip())
    finally:
        model.train(was_training)
    return answers


# -- metrics ------------------------------------------------------------------------------

def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 between a prediction and a reference."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def task_metrics(tasks: list[str], predictions: list[str], references: list[str]) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}``: BLEU and ROUGE-L for generation/summarization; for tool_call the share of
    answers that call the same functions (``name_match``) with equal JSON arguments (``call_match``) and the
    share that are a well-formed call at all (``valid_call``); EM and F1 otherwise."""
    by_task: dict[str, list[tuple[str, str]]] = {}
    for task, pred, ref in zip(tasks, predictions, references):
        by_task.setdefault(task, []).append((pred, ref))
    out = {}
    for task, pairs in sorted(by_task.items()):
        preds, refs = [p for p, _ in pairs], [r for _, r in pairs]
        if task in OVERLAP_TASKS:
            out[task] = {"bleu": bleu(preds, refs), "rougeL": rouge_l(preds, refs), "count": len(pairs)}
        elif task in TOOL_TASKS:
            out[task] = tool_call_scores(preds, refs)
        else:
            out[task] = {"exact_match": sum(map(exact_match, preds, refs)) / len(pairs),
                         "f1": sum(map(token_f1, preds, refs)) / len(pairs), "count": len(pairs)}
    return out


def tool_call_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Shares of answers that are a valid call, call the right functions, and with equal arguments."""
    from studio.core.tool_calls import calls_match, parse_calls

    matches = [calls_match(p, r) for p, r in zip(predictions, references)]
    n = max(len(matches), 1)
    return {"call_match": sum(full for _, full in matches) / n, "name_match": sum(name for name, _ in matches) / n,
            "valid_call": sum(bool(parse_calls(p)) for p in predictions) / n, "count": len(matches)}


def bleu(predictions: list[str], references: list[str]) -> float:
    """Corpus BLEU (sacrebleu, 0-100)."""
    import sacrebleu

    return round(float(sacrebleu.corpus_bleu(predictions, [references]).score), 4)


def rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean ROUGE-L F-measure (rouge-score, 0-1)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references)]
    return round(sum(scores) / max(len(scores), 1), 6)


# -- signals ------------------------------------------------------------------------------

def overfitting(history: list, patience: int) -> bool:
    """Whether eval loss rose ``patience`` evaluations in a row while train loss fell.

    Args:
        history: ``[step, eval_loss, train_loss]`` per evaluation, oldest first (train loss is
            the mean since the previous evaluation).
    """
    if len(history) < patience + 1:
        return False
    window = history[-(patience + 1):]
    evals = [h[1] for h in window]
    trains = [h[2] for h in window if h[2] is not None]
    rising = all(b > a for a, b in zip(evals, evals[1:]))
    falling = len(trains) >= 2 and trains[-1] < trains[0]
    return rising and falling


def forgetting(history: list, threshold: float = 0.05) -> bool:
    """Whether the general-text loss climbed over ``threshold`` (relative) above its first value."""
    if len(history) < 2:
        return False
    first, last = history[0][1], history[-1][1]
    return last > first * (1 + threshold)
