"""What a model folder holds, read without torch: shapes from config.json and safetensors headers.

Preflight needs exact parameter counts (a LoRA adapter's size is a sum over the shapes of the
adapted layers) before anything heavy is imported. A safetensors file starts with an 8-byte
little-endian header length followed by a JSON header naming every tensor's dtype and shape,
so reading those few kilobytes gives the exact counts of a multi-gigabyte checkpoint at once.
When a folder has no safetensors (a config-only folder, or a hub id not yet downloaded), the
shapes of a Llama-style decoder are derived from config.json instead.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from math import prod
from pathlib import Path

from studio.core.errors import ModelError

#: Bytes per element for the dtypes safetensors and config.json name.
DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1, "BOOL": 1,
               "float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}


@dataclass
class ModelShape:
    """The shape of a decoder-only model, enough to count parameters and estimate memory.

    Attributes:
        tensors: every weight name -> shape (exact, from safetensors; or derived from config).
        exact: True when ``tensors`` came from safetensors headers rather than config.json.
    """

    path: str
    model_type: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    dtype: str
    tensors: dict[str, tuple[int, ...]] = field(default_factory=dict)
    exact: bool = False

    @property
    def params_total(self) -> int:
        return sum(prod(shape) for shape in self.tensors.values())

    def linear_weights(self) -> dict[str, tuple[int, int]]:
        """Module name -> (in_features, out_features) of every linear layer except the output head.

        This is the set PEFT's ``all-linear`` adapts: embeddings and ``lm_head`` are excluded.
        """
        out = {}
        for name, shape in self.tensors.items():
            if len(shape) == 2 and name.endswith(".weight") and not _is_embedding_or_head(name):
                out[name[: -len(".weight")]] = (shape[1], shape[0])
        return out

    def layer_index(self, name: str) -> int | None:
        """The decoder layer a tensor belongs to (``model.layers.3.mlp...`` -> 3), else None."""
        parts = name.split(".")
        for i, part in enumerate(parts[:-1]):
            if part in ("layers", "h", "blocks") and parts[i + 1].isdigit():
                return int(parts[i + 1])
        return None


def _is_embedding_or_head(name: str) -> bool:
    return "embed" in name or "lm_head" in name or name.endswith("wte.weight") or name.endswith("wpe.weight")


def read_safetensors_header(path: str | Path) -> dict[str, dict]:
    """The JSON header of one safetensors file: tensor name -> {dtype, shape, data_offsets}."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(length))
    except (OSError, struct.error, ValueError) as exc:
        raise ModelError(f"cannot read the safetensors header of {path}: {exc}",
                         "the file may be truncated; download the model again") from None
    header.pop("__metadata__", None)
    return header


def read_model_shape(path: str | Path) -> ModelShape:
    """Read a model folder's config.json and, when present, its safetensors headers.

    Raises:
        ModelError: the folder has no config.json or it is not a decoder config Studio knows.
    """
    folder = Path(path)
    config_file = folder / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{config_file} does not exist", "choose a model folder that holds config.json") from None
    except ValueError as exc:
        raise ModelError(f"{config_file} is not valid JSON: {exc}", "download the model again") from None
    info = _info_from_config(str(folder), config)
    tensors = _safetensors_shapes(folder)
    if tensors:
        info.tensors, info.exact = tensors, True
    else:
        info.tensors = derived_llama_shapes(info)
    return info


def _info_from_config(path: str, config: dict) -> ModelShape:
    config = config.get("text_config", config)
    try:
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        return ModelShape(
            path=path, model_type=str(config.get("model_type", "")), hidden_size=hidden,
            intermediate_size=int(config.get("intermediate_size", 4 * hidden)),
            num_layers=int(config["num_hidden_layers"]), num_heads=heads,
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads), vocab_size=int(config["vocab_size"]),
            max_position_embeddings=int(config.get("max_position_embeddings") or 0),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            dtype=str(config.get("torch_dtype") or config.get("dtype") or "float32"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}/config.json lacks a field preflight needs: {exc}",
                         "preflight understands decoder-only configs (Llama, Mistral, Qwen...)") from None


def _safetensors_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        for name, meta in read_safetensors_header(file).items():
            shapes[name] = tuple(int(d) for d in meta["shape"])
    return shapes


def derived_llama_shapes(info: ModelShape) -> dict[str, tuple[int, ...]]:
    """The weight shapes of a Llama-style decoder with ``info``'s sizes (used when no safetensors)."""
    h, i, hd = info.hidden_size, info.intermediate_size, info.head_dim
    q, kv = info.num_heads * hd, info.num_kv_heads * hd
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (info.vocab_size, h)}
    for n in range(info.num_layers):
        p = f"model.layers.{n}."
        shapes.update({
            p + "self_attn.q_proj.weight": (q, h), p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, q),
            p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h),
            p + "mlp.down_proj.weight": (h, i),
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
        })
    shapes["model.norm.weight"] = (h,)
    if not info.tie_word_embeddings:
        shapes["lm_head.weight"] = (info.vocab_size, h)
    return shapes
