"""Generation with llama.cpp itself (llama-cpp-python), where it is installed.

Greedy tokens from the GGUF must equal the merged model's, and generation must stop at the
end-of-turn token. Only unquantized files are compared token for token: a quantized model may
rightly pick another token where two are close.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("studio.worker")


def llama_cpp_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except Exception:  # not installed, or its shared library does not load here
        return False
    return True


def check_generation(ctx, gguf_path: Path, model, quant: str, conversations: list, say, prompts: int = 3,
                     max_new_tokens: int = 24) -> dict | None:
    """The ``generation`` part of the check, or None when llama.cpp is not importable or the file is quantized."""
    from studio.worker.gguf_check import UNQUANTIZED, _result

    if quant not in UNQUANTIZED or not llama_cpp_available():
        return None
    say("generating with llama.cpp")
    prompt_ids = [prompt_tokens(ctx, c) for c in conversations[:prompts]]
    runs = [(reference_tokens(ctx, model, ids, max_new_tokens), llama_cpp_tokens(gguf_path, ids, max_new_tokens))
            for ids in prompt_ids]
    stop = ctx.tokenizer.token_to_id(stop_text(ctx))
    same = sum(a == b for a, b in runs)
    stopped = sum(bool(b) and b[-1] == stop for _, b in runs)
    return _result(same == len(runs), f"llama.cpp's greedy tokens equal the merged model's on {same}/{len(runs)} "
                                      f"prompts; {stopped} ended at the stop token",
                   prompts=len(runs), identical=same, stopped_at_stop_token=stopped)


def stop_text(ctx) -> str | None:
    from studio.worker.gguf_special import stop_token_text

    return stop_token_text(ctx)


def prompt_tokens(ctx, conversation: list[dict]) -> list[int]:
    """The conversation up to its last assistant turn, rendered with the generation prompt and encoded."""
    last = max((i for i, m in enumerate(conversation) if m["role"] == "assistant"), default=len(conversation))
    return ctx.tokenizer.encode(ctx.template.render(conversation[:last], add_generation_prompt=True))


def reference_tokens(ctx, model, ids: list[int], max_new_tokens: int) -> list[int]:
    """The merged model's greedy continuation, ending at an end-of-generation token as llama.cpp's does.

    llama.cpp ends generation at any of its end-of-generation tokens (EOS, end-of-turn and the
    usual end markers such as ``<|end_of_text|>``), so the reference stops at the same set.
    """
    import torch

    from studio.worker.evaluate import stop_ids

    stops = stop_ids(ctx.tokenizer)
    x = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=stops, pad_token_id=stops[0])
    return out[0, len(ids):].tolist()


def llama_cpp_tokens(gguf_path: Path, ids: list[int], max_new_tokens: int) -> list[int]:
    """llama.cpp's greedy continuation of ``ids`` (it stops at the file's end-of-generation tokens)."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(gguf_path), n_ctx=max(512, len(ids) + max_new_tokens + 8), n_threads=1,
                          verbose=False, seed=0)
    out = []
    for token in llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
        out.append(token)
        if llm.token_eos() == token or llama_cpp.llama_vocab_is_eog(llm._model.vocab, token) or len(out) >= max_new_tokens:
            break
    return out
