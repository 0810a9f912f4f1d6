"""The check run after every GGUF export: did the template, the stop tokens and the weights survive?

Each part reads the written file back, independently of the code that wrote it:

- ``metadata``: architecture, context length, layer and head counts, rope base, the chat template
  and the special ids read back equal the run's;
- ``tokenizer``: transformers rebuilds the tokenizer from the GGUF (``gguf_file=``) and it gives
  exactly Studio's ids for a sample of the run's own conversations rendered with its template;
- ``stop_token``: the file's EOS and end-of-turn ids are the token that closes an assistant turn;
- ``logits``: the weights, dequantized and put back into the merged model's layout, give logits
  within the quantization's tolerance (:data:`TOLERANCES`) of the merged model's on a few rows;
- ``template``: the Modelfile's TEMPLATE renders the same text as the Jinja template;
- ``generation`` (only where llama-cpp-python is importable, for unquantized files): llama.cpp's
  greedy tokens equal the merged model's and stop at the end-of-turn token.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Callable

log = logging.getLogger("studio.worker")

#: Largest logit error allowed, as max |logit difference| / max |merged logit| over the check's rows.
#: About twice what each type gives on the demo model (docs/export.md has the measured figures);
#: the k-quant values follow their bits per weight between those.
TOLERANCES = {"f32": 1e-5, "f16": 5e-3, "bf16": 2e-2, "q8_0": 3e-2, "q6_k": 6e-2, "q5_1": 0.2, "q5_0": 0.2,
              "q5_k_m": 0.2, "q5_k_s": 0.2, "q4_1": 0.3, "q4_0": 0.3, "q4_k_m": 0.3, "q4_k_s": 0.3,
              "q3_k_m": 0.5, "q3_k_s": 0.5, "q3_k_l": 0.5, "q2_k": 0.8}
UNQUANTIZED = ("f32", "f16", "bf16")
CHECK_FILE = "gguf-check.json"


#: Characters of a raw-text document the checks render.
TEXT_CHARS = 2000


def sample_conversations(examples: list, count: int) -> list[list[dict]]:
    """Up to ``count`` of the run's conversations, spread over the data (a preference row with its chosen
    answer; a raw-text document as one user message of its first :data:`TEXT_CHARS` characters)."""
    step = max(1, len(examples) // max(count, 1))
    out = []
    for ex in examples[::step][:count]:
        if ex.text is not None:
            out.append([{"role": "user", "content": ex.text[:TEXT_CHARS]}])
            continue
        msgs = list(ex.messages) + list(ex.chosen or [])
        out.append([{"role": m.role, "content": m.content} for m in msgs])
    return out


def read_metadata(path: Path) -> dict:
    """The GGUF's key/value metadata as plain Python values (token types and merges left out)."""
    from studio.worker.gguf_read import read_gguf

    meta, _ = read_gguf(path)
    meta.pop("tokenizer.ggml.merges", None)
    meta.pop("tokenizer.ggml.token_type", None)
    return meta


def _result(passed: bool, detail: str, **extra) -> dict:
    return {"passed": bool(passed), "detail": detail, **extra}


def check_metadata(meta: dict, expected: dict) -> dict:
    """Every expected key is present with the expected value."""
    wrong = []
    for key, want in expected.items():
        got = meta.get(key)
        same = abs(got - want) <= 1e-6 * max(1.0, abs(want)) if isinstance(want, float) and got is not None else got == want
        if not same:
            shown = (got[:60] + "…") if isinstance(got, str) and len(got) > 60 else got
            wrong.append(f"{key} is {shown!r}" + ("" if got is None else f", expected {want!r}"[:80]))
    return _result(not wrong, "; ".join(wrong) or f"{len(expected)} values read back as written", checked=len(expected))


def check_tokenizer(folder: Path, name: str, studio_tokenizer, texts: list[str]) -> dict:
    """transformers' tokenizer rebuilt from the GGUF gives Studio's ids for each text."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=name)
    except Exception as exc:  # a file transformers cannot read fails the check, with the reason
        return _result(False, f"transformers could not rebuild the tokenizer from the GGUF: {exc}")
    bad = []
    for n, text in enumerate(texts):
        want, got = studio_tokenizer.encode(text), tok(text, add_special_tokens=False)["input_ids"]
        if want != got:
            at = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
            bad.append({"conversation": n, "token": at, "studio": want[at:at + 5], "gguf": got[at:at + 5]})
    tokens = sum(len(studio_tokenizer.encode(t)) for t in texts)
    detail = (f"{len(texts)} conversations ({tokens} tokens) give identical ids" if not bad else
              f"{len(bad)} of {len(texts)} conversations give different ids (first at token {bad[0]['token']})")
    return _result(not bad, detail, mismatches=bad[:5])


def check_stop_token(meta: dict, stop_text: str | None, studio_tokenizer) -> dict:
    """The file's EOS (and end-of-turn id) is the token that closes an assistant turn in training."""
    tokens = meta.get("tokenizer.ggml.tokens") or []
    eos, eot = meta.get("tokenizer.ggml.eos_token_id"), meta.get("tokenizer.ggml.eot_token_id")
    want = studio_tokenizer.token_to_id(stop_text) if stop_text else None
    eos_text = tokens[eos] if isinstance(eos, int) and 0 <= eos < len(tokens) else None
    problems = []
    if want is None:
        problems.append("the training template closes assistant turns with no special token")
    if eos != want:
        problems.append(f"EOS is id {eos} ({eos_text!r}), but training ends each answer with {stop_text!r} (id {want})")
    if eot is not None and eot != want:
        problems.append(f"end-of-turn id is {eot}, expected {want}")
    return _result(not problems, "; ".join(problems) or f"generation stops at {stop_text} (id {want})",
                   stop_token=stop_text, stop_id=want)


def gguf_state_dict(path: Path, model, interleave: bool) -> tuple[dict, list[str]]:
    """The GGUF's tensors dequantized into ``model``'s state-dict names and layout; and problems found."""
    import torch

    from studio.worker.gguf_export import _gguf_name, deinterleave_rope_rows
    from studio.worker.gguf_read import dequantize, read_gguf

    _, tensors = read_gguf(path)
    config, state, problems = model.config, {}, []
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    for hf_name, ref in model.state_dict().items():
        name = _gguf_name(hf_name)
        if name == "output.weight" and name not in tensors and getattr(config, "tie_word_embeddings", False):
            continue
        if name not in tensors:
            problems.append(f"{name} (for {hf_name}) is missing")
            continue
        array = dequantize(tensors[name])
        if interleave and name.endswith("attn_q.weight"):
            array = deinterleave_rope_rows(array, heads)
        elif interleave and name.endswith("attn_k.weight"):
            array = deinterleave_rope_rows(array, kv_heads)
        if tuple(array.shape) != tuple(ref.shape):
            problems.append(f"{name} has shape {tuple(array.shape)}, the model's {hf_name} {tuple(ref.shape)}")
            continue
        state[hf_name] = torch.from_numpy(array.copy()).to(ref.dtype)
    return state, problems


def check_logits(path: Path, model, interleave: bool, rows: list[list[int]], quant: str) -> dict:
    """Logits of the dequantized GGUF weights against the merged model's, on ``rows`` of token ids."""
    import torch

    state, problems = gguf_state_dict(path, model, interleave)
    if problems:
        return _result(False, "; ".join(problems[:5]))
    twin = copy.deepcopy(model)
    twin.load_state_dict(state, strict=False)
    worst, agree, total, scale = 0.0, 0, 0, 0.0
    with torch.no_grad():
        for ids in rows:
            x = torch.tensor([ids])
            ref, got = model(x).logits.float(), twin(x).logits.float()
            worst = max(worst, (ref - got).abs().max().item())
            scale = max(scale, ref.abs().max().item())
            agree += (ref.argmax(-1) == got.argmax(-1)).sum().item()
            total += ref.shape[1]
    error = worst / scale if scale else float("inf")
    tolerance = TOLERANCES.get(quant, 0.6)
    ok = error <= tolerance and error == error  # NaN fails
    return _result(ok, f"relative logit error {error:.2e} (tolerance {tolerance:.0e} for {quant}); "
                       f"top-1 token agrees at {agree}/{total} positions",
                   relative_error=error, tolerance=tolerance, max_abs_error=worst, top1_agreement=agree / max(total, 1))


def check_template(template, go_template: str | None, conversations: list, bos_text: str) -> dict:
    """The Modelfile TEMPLATE renders the Jinja template's text for each conversation."""
    from studio.core.ollama import template_differences, untrimmed_messages

    if not go_template:
        return _result(False, "the Modelfile has no TEMPLATE")
    try:
        diffs = template_differences(template, go_template, conversations, bos_text)
    except Exception as exc:  # a TEMPLATE that does not render fails the check, with the reason
        return _result(False, f"the Modelfile TEMPLATE does not render: {exc}")
    detail = (f"{len(conversations)} conversations render identically (whole and as prompts)" if not diffs else
              f"{len(diffs)} renderings differ (first: conversation {diffs[0]['conversation']}, {diffs[0]['form']})")
    untrimmed = untrimmed_messages(template, conversations)
    if untrimmed:
        detail += (f"; note: {untrimmed} sampled messages begin or end with white space, which the training "
                   "template trimmed and Ollama passes on as typed")
    return _result(not diffs, detail, differences=diffs[:5], untrimmed_messages=untrimmed)


def run_check(ctx, gguf_path: Path, model, quant: str, interleave: bool, modelfile_text: str | None,
              samples: int = 8, logit_rows: int = 3, say: Callable[[str], None] | None = None,
              generate: bool = True) -> dict:
    """Every part of the check on one exported file; returns the report (``passed`` is all parts passing).

    ``generate=False`` leaves out the llama.cpp generation part even where llama.cpp is installed.
    """
    from studio.core.ollama import modelfile_template
    from studio.worker.gguf_generate import check_generation
    from studio.worker.gguf_special import expected_metadata, stop_token_text

    say = say or (lambda _t: None)
    gguf_path = Path(gguf_path)
    conversations = sample_conversations(ctx.sample_examples(samples), samples)
    texts = [ctx.template.render(c) for c in conversations]
    meta = read_metadata(gguf_path)
    checks = {}
    say("checking metadata")
    checks["metadata"] = check_metadata(meta, expected_metadata(ctx, model.config))
    say("checking the tokenizer")
    checks["tokenizer"] = check_tokenizer(gguf_path.parent, gguf_path.name, ctx.tokenizer, texts)
    checks["stop_token"] = check_stop_token(meta, stop_token_text(ctx), ctx.tokenizer)
    say("checking logits")
    rows = [ctx.tokenizer.encode(t)[:128] for t in texts[:logit_rows]]
    checks["logits"] = check_logits(gguf_path, model, interleave, rows, quant)
    bos = ctx.tokenizer.bos_token if meta.get("tokenizer.ggml.add_bos_token") and ctx.tokenizer.bos_token else ""
    checks["template"] = check_template(ctx.template, modelfile_template(modelfile_text or ""), conversations, bos)
    generation = check_generation(ctx, gguf_path, model, quant, conversations, say) if generate else None
    if generation is not None:
        checks["generation"] = generation
    passed = all(c["passed"] for c in checks.values())
    return {"file": gguf_path.name, "quant": quant, "passed": passed,
            "verdict": "passed" if passed else "FAILED: " + ", ".join(k for k, c in checks.items() if not c["passed"]),
            "checks": checks}


def format_report(report: dict) -> str:
    """The report as lines for a terminal."""
    lines = [f"GGUF check of {report['file']}: {report['verdict']}"]
    for name, c in report["checks"].items():
        lines.append(f"  {'ok ' if c['passed'] else 'BAD'} {name}: {c['detail']}")
    return "\n".join(lines)
