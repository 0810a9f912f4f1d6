"""Writing a merged model as one GGUF file (llama.cpp, Ollama, LM Studio) with the ``gguf`` package.

The file carries everything a runner needs to chat the way the run trained: the weights (in
llama.cpp's tensor names and, for the Llama layout, its rotary row order), the byte-level BPE
vocabulary with its merges and token types, the BOS/EOS/end-of-turn/pad ids, the chat template
the run trained with, the rope settings and the context length.

Supported: Llama (Llama 2/3.x and the demo model), Mistral and Qwen2 models with a byte-level BPE
tokenizer. Quantizations the ``gguf`` package writes itself: f32, f16, bf16, q8_0, q5_0, q5_1,
q4_0, q4_1; the k-quants go through llama.cpp's ``llama-quantize`` (see :func:`kquantize`).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from studio.core.errors import StudioError

log = logging.getLogger("studio.worker")

#: Quantizations written here: name -> (GGML tensor type of 2-D weights, llama.cpp file type).
QUANTS = {"f32": ("F32", "ALL_F32"), "f16": ("F16", "MOSTLY_F16"), "bf16": ("BF16", "MOSTLY_BF16"),
          "q8_0": ("Q8_0", "MOSTLY_Q8_0"), "q5_1": ("Q5_1", "MOSTLY_Q5_1"), "q5_0": ("Q5_0", "MOSTLY_Q5_0"),
          "q4_1": ("Q4_1", "MOSTLY_Q4_1"), "q4_0": ("Q4_0", "MOSTLY_Q4_0")}
#: Quantizations that need llama.cpp's ``llama-quantize`` (k-quants need whole 256-value blocks).
KQUANTS = ("q6_k", "q5_k_m", "q5_k_s", "q4_k_m", "q4_k_s", "q3_k_m", "q3_k_s", "q3_k_l", "q2_k")
#: Hugging Face model_type -> GGUF architecture, and whether llama.cpp expects q/k rows interleaved.
ARCHITECTURES = {"llama": ("llama", True), "mistral": ("llama", True), "qwen2": ("qwen2", False)}
SUPPORTED_TEXT = "Llama (Llama 2/3.x and the demo model), Mistral and Qwen2"

_LAYER_TENSORS = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
                  "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
                  "self_attn.o_proj.weight": "attn_output.weight", "self_attn.q_proj.bias": "attn_q.bias",
                  "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias",
                  "post_attention_layernorm.weight": "ffn_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
                  "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}
_TOP_TENSORS = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                "lm_head.weight": "output.weight"}

_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _qwen2_split() -> str:
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    return PRETOKENIZE_REGEX


@dataclass
class SpecialIds:
    """The special token ids a runner needs: where text starts, where a turn and the text end."""

    bos: int | None
    eos: int
    eot: int | None
    pad: int | None
    add_bos: bool


@dataclass
class GGUFPlan:
    """What :func:`write_gguf` writes besides the weights, decided before any weight is touched."""

    quant: str
    template: str
    specials: SpecialIds
    name: str = "model"


# -- checks before export -------------------------------------------------------------------------

def check_quant(quant: str) -> str:
    """The quantization name, lower case; unknown names raise with the list of known ones."""
    q = quant.lower()
    if q not in QUANTS and q not in KQUANTS:
        raise StudioError(f"--quant {quant}: unknown quantization",
                          f"use one of {', '.join(QUANTS)} (written by Studio) or {', '.join(KQUANTS)} "
                          "(through llama.cpp's llama-quantize)")
    if q in KQUANTS and not shutil.which("llama-quantize"):
        raise StudioError(f"--quant {quant} is a k-quant, which Studio makes with llama.cpp's llama-quantize, "
                          "and llama-quantize is not on PATH",
                          f"install llama.cpp (its llama-quantize tool) and try again, or use one of "
                          f"{', '.join(QUANTS)}, which Studio writes itself")
    return q


def gguf_architecture(config) -> tuple[str, bool]:
    """(GGUF architecture, interleave q/k rows) for a transformers config; others raise, naming the supported."""
    model_type = getattr(config, "model_type", "?")
    if model_type not in ARCHITECTURES:
        raise StudioError(f"GGUF export supports {SUPPORTED_TEXT} models; this run's model is {model_type!r}",
                          "export a merged model with --merged OUT and convert it with llama.cpp's "
                          "convert_hf_to_gguf.py, which knows more architectures")
    return ARCHITECTURES[model_type]


# -- tokenizer ------------------------------------------------------------------------------------

def tokenizer_metadata(tokenizer_json: Path, vocab_size: int) -> dict:
    """tokens, token types, merges and the pre-tokenizer name of a byte-level BPE ``tokenizer.json``.

    The vocabulary has exactly one token per embedding row, as llama.cpp expects: padded with
    unused ``[PAD<i>]`` tokens, and without tokens whose id has no row.
    """
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback") or (data.get("decoder") or {}).get("type") != "ByteLevel":
        raise StudioError(f"{tokenizer_json}: GGUF export supports byte-level BPE tokenizers (Llama 3, Qwen2, "
                          "Mistral's Tekken); this one is a sentencepiece-style or other vocabulary",
                          "export with --merged OUT and convert it with llama.cpp's convert_hf_to_gguf.py")
    by_id: dict[int, str] = {i: t for t, i in model["vocab"].items()}
    types = {i: 1 for i in by_id}  # NORMAL
    for added in data.get("added_tokens") or []:
        by_id[added["id"]] = added["content"]
        types[added["id"]] = 3 if added.get("special") else 4  # CONTROL or USER_DEFINED
    beyond = sorted(i for i in by_id if i >= vocab_size)
    if beyond:  # e.g. Llama 3.2's <|image|> (id 128256) in a tokenizer shared with the vision models
        log.info("%s: tokens %s have no embedding row in the model and are left out", tokenizer_json, beyond[:5])
    size = vocab_size
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(size)]
    token_types = [types.get(i, 5) for i in range(size)]  # UNUSED for padding rows
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    return {"tokens": tokens, "token_types": token_types, "merges": merges, "pre": _pre_tokenizer(data, tokenizer_json)}


def _pre_tokenizer(data: dict, path: Path) -> str:
    """llama.cpp's name for the way this tokenizer splits text before BPE."""
    pre = data.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre])
    splits = [p.get("pattern", {}).get("Regex") for p in parts if p.get("type") == "Split"]
    if splits == [_LLAMA3_SPLIT]:
        return "llama-bpe"
    if splits == [_qwen2_split()]:
        return "qwen2"
    if not splits and any(p.get("type") == "ByteLevel" and p.get("use_regex", True) for p in parts):
        return "gpt-2"
    raise StudioError(f"{path}: its pre-tokenizer (how text is split before BPE) is not one GGUF export knows "
                      "(Llama 3's, Qwen2's or GPT-2's)",
                      "export with --merged OUT and convert it with llama.cpp's convert_hf_to_gguf.py")


# -- weights ---------------------------------------------------------------------------------------

def gguf_tensors(state: dict, config, interleave: bool) -> list[tuple[str, "object"]]:
    """(GGUF name, float32 numpy array) per tensor, in llama.cpp's names and row order."""
    heads, kv_heads = config.num_attention_heads, getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    out = []
    for hf_name, tensor in state.items():
        name = _gguf_name(hf_name)
        if name is None:
            raise StudioError(f"GGUF export does not know the tensor {hf_name}",
                              "export with --merged OUT and convert it with llama.cpp's convert_hf_to_gguf.py")
        if name == "output.weight" and getattr(config, "tie_word_embeddings", False):
            continue  # llama.cpp reuses token_embd for the output when output.weight is absent
        array = tensor.detach().float().cpu().numpy()
        if interleave and name.endswith("attn_q.weight"):
            array = interleave_rope_rows(array, heads)
        elif interleave and name.endswith("attn_k.weight"):
            array = interleave_rope_rows(array, kv_heads)
        out.append((name, array))
    out.extend(_rope_factor_tensor(config))
    return out


def _gguf_name(hf_name: str) -> str | None:
    if hf_name in _TOP_TENSORS:
        return _TOP_TENSORS[hf_name]
    parts = hf_name.split(".")
    if parts[:2] == ["model", "layers"] and len(parts) > 3:
        rest = _LAYER_TENSORS.get(".".join(parts[3:]))
        return f"blk.{parts[2]}.{rest}" if rest else None
    return None


def interleave_rope_rows(weight, heads: int):
    """transformers rotates the two halves of each head; llama.cpp's Llama rotates neighbouring pairs.

    Row ``h*d + i`` (first half) and ``h*d + d/2 + i`` (second half) become rows ``2i`` and ``2i+1``.
    """
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def deinterleave_rope_rows(weight, heads: int):
    """The inverse of :func:`interleave_rope_rows`."""
    rows = weight.shape[0]
    return weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def rope_parameters(config) -> dict:
    """The config's rope settings as one dict (transformers 5 ``rope_parameters`` or older attributes)."""
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    params["rope_type"] = params.get("rope_type") or params.get("type") or "default"
    return params


def _rope_factor_tensor(config) -> list:
    """Llama 3.1+ stretch long wavelengths; llama.cpp reads the per-frequency divisors from ``rope_freqs``."""
    import numpy as np

    rope = rope_parameters(config)
    if rope["rope_type"] != "llama3":
        return []
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    factor, low, high = rope["factor"], rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_ctx = rope.get("original_max_position_embeddings", 8192)
    factors = []
    for i in range(0, head_dim, 2):
        wavelen = 2 * math.pi * rope["rope_theta"] ** (i / head_dim)
        if wavelen < old_ctx / high:
            factors.append(1.0)
        elif wavelen > old_ctx / low:
            factors.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            factors.append(1.0 / ((1 - smooth) / factor + smooth))
    return [("rope_freqs.weight", np.array(factors, dtype=np.float32))]


def _tensor_type(name: str, array, quant: str):
    """The GGML type of one tensor: 1-D tensors stay f32; rows that do not fill whole blocks fall back to f16."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    if array.ndim == 1:
        return GGMLQuantizationType.F32
    qtype = GGMLQuantizationType[QUANTS[quant][0]]
    if array.shape[-1] % GGML_QUANT_SIZES[qtype][0]:
        log.info("%s: rows of %d values do not fill %s blocks; written as f16", name, array.shape[-1], quant)
        return GGMLQuantizationType.F16
    return qtype


# -- the file --------------------------------------------------------------------------------------

def write_gguf(path: Path, model, tokenizer_json: Path, plan: GGUFPlan,
               progress: Callable[[int, int, str], None] | None = None) -> Path:
    """Write ``model`` (a merged causal LM) as GGUF at ``path``; ``progress(done, total, tensor)`` per tensor."""
    import gguf
    from gguf import quants

    config = model.config
    arch, interleave = gguf_architecture(config)
    tensors = gguf_tensors(model.state_dict(), config, interleave)
    types = [_tensor_type(n, a, plan.quant) for n, a in tensors]
    writer = gguf.GGUFWriter(str(path), arch)
    _add_model_metadata(writer, config, plan)
    _add_tokenizer_metadata(writer, tokenizer_json, config, plan)
    for (name, array), qtype in zip(tensors, types):
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        nbytes = array.size // block * size
        writer.add_tensor_info(name, array.shape, array.dtype, nbytes, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for i, ((name, array), qtype) in enumerate(zip(tensors, types)):
        writer.write_tensor_data(quants.quantize(array, qtype))
        if progress:
            progress(i + 1, len(tensors), name)
    writer.close()
    return path


def _add_model_metadata(writer, config, plan: GGUFPlan) -> None:
    import gguf

    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name(plan.name)
    writer.add_file_type(int(gguf.LlamaFileType[QUANTS[plan.quant][1]]))
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_head_count_kv(int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(int(config.vocab_size))
    writer.add_rope_dimension_count(int(head_dim))
    if head_dim != config.hidden_size // config.num_attention_heads:
        writer.add_key_length(int(head_dim))
        writer.add_value_length(int(head_dim))
    rope = rope_parameters(config)
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    if rope["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif rope["rope_type"] not in ("default", "llama3"):
        raise StudioError(f"GGUF export does not write rope scaling of type {rope['rope_type']!r} yet",
                          "export with --merged OUT and convert it with llama.cpp's convert_hf_to_gguf.py")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _add_tokenizer_metadata(writer, tokenizer_json: Path, config, plan: GGUFPlan) -> None:
    vocab = tokenizer_metadata(tokenizer_json, int(config.vocab_size))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab["pre"])
    writer.add_token_list(vocab["tokens"])
    writer.add_token_types(vocab["token_types"])
    writer.add_token_merges(vocab["merges"])
    ids = plan.specials
    if ids.bos is not None:
        writer.add_bos_token_id(ids.bos)
    writer.add_eos_token_id(ids.eos)
    if ids.eot is not None:
        writer.add_eot_token_id(ids.eot)
    if ids.pad is not None:
        writer.add_pad_token_id(ids.pad)
    writer.add_add_bos_token(ids.add_bos)
    writer.add_add_eos_token(False)
    if plan.template:
        writer.add_chat_template(plan.template)


def kquantize(source: Path, out: Path, quant: str) -> Path:
    """Requantize an f16/f32 GGUF to a k-quant with llama.cpp's ``llama-quantize``."""
    tool = shutil.which("llama-quantize")
    if not tool:
        raise StudioError("llama-quantize is not on PATH", "install llama.cpp or pick a quantization Studio writes")
    done = subprocess.run([tool, str(source), str(out), quant.upper()], capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise StudioError(f"llama-quantize failed to make {quant}: {tail}",
                          "k-quants need rows whose length is a multiple of 256; try q8_0 or q4_0")
    return out
