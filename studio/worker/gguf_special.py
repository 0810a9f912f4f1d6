"""What a run says its GGUF must hold: special ids, the stop token and the model's settings.

The export writes these values and the check compares the file against them, so a value lost or
changed between the run and the file shows up as a failed check.
"""

from __future__ import annotations

from studio.worker.gguf_export import SpecialIds, gguf_architecture, rope_parameters


def stop_token_text(ctx) -> str | None:
    """The special token that closes an assistant turn in the run's template (``<|eot_id|>`` for Llama 3)."""
    closing = ctx.template.closings.get("assistant", "")
    tok = ctx.tokenizer
    candidates = set(tok.special_tokens) | set(tok.added_tokens)
    hits = sorted((closing.find(t), -len(t), t) for t in candidates if t and t in closing)
    if hits:
        return hits[0][2]
    return tok.eos_token


def special_ids(ctx) -> SpecialIds:
    """BOS, EOS (= the end-of-turn token generation must stop at), end-of-turn and pad ids."""
    tok = ctx.tokenizer
    stop = stop_token_text(ctx)
    stop_id = tok.token_to_id(stop) if stop else None
    if stop_id is None:
        stop_id = tok.eos_id
    return SpecialIds(bos=tok.bos_id, eos=stop_id, eot=stop_id,
                      pad=ctx.pad.id, add_bos=bool(tok.adds_bos_by_default))


def expected_metadata(ctx, config) -> dict:
    """GGUF key -> value the file must hold for this run and model config."""
    arch, _ = gguf_architecture(config)
    ids = special_ids(ctx)
    head_kv = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    out = {"general.architecture": arch,
           f"{arch}.context_length": int(config.max_position_embeddings),
           f"{arch}.block_count": int(config.num_hidden_layers),
           f"{arch}.embedding_length": int(config.hidden_size),
           f"{arch}.feed_forward_length": int(config.intermediate_size),
           f"{arch}.attention.head_count": int(config.num_attention_heads),
           f"{arch}.attention.head_count_kv": int(head_kv),
           f"{arch}.attention.layer_norm_rms_epsilon": float(config.rms_norm_eps),
           f"{arch}.rope.freq_base": float(rope_parameters(config)["rope_theta"]),
           "tokenizer.chat_template": ctx.template.source,
           "tokenizer.ggml.eos_token_id": ids.eos,
           "tokenizer.ggml.add_bos_token": ids.add_bos}
    for key, value in (("bos_token_id", ids.bos), ("eot_token_id", ids.eot), ("padding_token_id", ids.pad)):
        if value is not None:
            out[f"tokenizer.ggml.{key}"] = value
    return out
