"""Describe, find and fetch models without loading them.

Everything here reads files as JSON or raw bytes: ``config.json``, the tokenizer's JSON files
and the safetensors headers (an 8-byte length then a JSON table of tensor shapes). That is
enough to show architecture, parameter count, vocabulary, context length, chat template and
special tokens in the window within milliseconds, and never imports torch or transformers.
Hub access goes through ``huggingface_hub`` only.
"""

from __future__ import annotations

import json
import logging
import math
import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from studio.core.errors import ModelError

log = logging.getLogger("studio.models")

#: the repository root when Studio runs from a checkout or an editable install
def _resources_root() -> Path:
    """The folder that holds ``resources/``: the source checkout, else ``share/studio`` of the
    environment Studio is installed in (where the installer puts the demo resources)."""
    checkout = Path(__file__).resolve().parents[2]
    installed = Path(sys.prefix) / "share" / "studio"
    return installed if not (checkout / "resources").is_dir() and (installed / "resources").is_dir() else checkout


REPO_ROOT = _resources_root()

_TOKEN_KEYS = ("bos_token", "eos_token", "pad_token", "unk_token")


@dataclass
class ModelInfo:
    """What a person needs to know about a model folder before training it.

    Attributes:
        path: the folder described.
        architecture: e.g. ``LlamaForCausalLM`` ("" when config.json has none).
        model_type: e.g. ``llama``.
        parameters: total parameter count from the safetensors headers, or an estimate
            from config.json when there are no safetensors files (see ``parameters_exact``).
        parameters_exact: whether ``parameters`` was counted from the weights.
        vocab_size, context_length, hidden_size, layers: from config.json (0 if absent).
        dtype: the stored weight dtype (config's ``torch_dtype``/``dtype``).
        has_chat_template: the tokenizer ships a chat template.
        special_tokens: role -> token string (bos, eos, pad, unk) from the tokenizer files.
        extra_special_tokens: other added special tokens (first few).
        pad_token: the tokenizer's own pad token, or "" when it has none.
        needs_remote_code: config.json maps classes to Python files shipped with the model.
        has_tokenizer: a ``tokenizer.json`` exists (core encoding needs it).
        weight_files: the safetensors (or other weight) files found.
        warnings: plain-language problems found while reading.
    """

    path: str
    architecture: str = ""
    model_type: str = ""
    parameters: int = 0
    parameters_exact: bool = False
    vocab_size: int = 0
    context_length: int = 0
    hidden_size: int = 0
    layers: int = 0
    dtype: str = ""
    has_chat_template: bool = False
    special_tokens: dict = field(default_factory=dict)
    extra_special_tokens: list = field(default_factory=list)
    pad_token: str = ""
    needs_remote_code: bool = False
    has_tokenizer: bool = False
    weight_files: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def parameters_text(self) -> str:
        """The parameter count in plain words, e.g. ``1.24 B`` or ``≈ 7.0 M (estimated)``."""
        if not self.parameters:
            return "unknown"
        text = human_count(self.parameters)
        return text if self.parameters_exact else f"≈ {text} (estimated from config.json)"


def human_count(n: int) -> str:
    """``1234567`` -> ``1.23 M``."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return str(n)


def resource_path(relative: str) -> Path:
    """Resolve a path such as ``resources/demo-model`` against the repository root.

    Relative paths in configs are written from the repository root so presets work from
    any working directory; an existing path relative to the current directory wins.
    """
    p = Path(relative).expanduser()
    if p.is_absolute() or p.exists():
        return p
    candidate = REPO_ROOT / p
    return candidate if candidate.exists() else p


def resolve_config_paths(cfg):
    """Make a config's model and data paths absolute when they name files under the repository.

    Presets say ``resources/demo-model``; a worker started in a run folder must still find it.
    Paths that exist nowhere (hub ids, files not yet made) are left as written.
    """
    from studio.core.config import PATH_FIELDS

    for section, name in PATH_FIELDS:
        part = getattr(cfg, section)
        value = getattr(part, name)
        if value and resource_path(value).exists():
            setattr(part, name, str(resource_path(value).resolve()))
    return cfg


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not readable JSON: {exc}",
                         "re-download the model or fix the file") from None
    return data if isinstance(data, dict) else {}


def safetensors_parameters(path: Path) -> int:
    """Count the parameters in one safetensors file by reading only its header."""
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise ModelError(f"{path} is too short to be a safetensors file", "re-download the model")
        (length,) = struct.unpack("<Q", raw)
        if length > 100_000_000:
            raise ModelError(f"{path} has an implausible safetensors header", "re-download the model")
        header = json.loads(fh.read(length))
    return sum(math.prod(t.get("shape", [])) for k, t in header.items() if k != "__metadata__")


def _weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return files
    return sorted([*folder.glob("*.bin"), *folder.glob("*.pt"), *folder.glob("*.gguf")])


def estimate_parameters(config: dict) -> int:
    """Rough decoder-only parameter count from config.json (embeddings + attention + MLP)."""
    h = int(config.get("hidden_size") or 0)
    layers = int(config.get("num_hidden_layers") or 0)
    vocab = int(config.get("vocab_size") or 0)
    inter = int(config.get("intermediate_size") or 4 * h)
    heads = int(config.get("num_attention_heads") or 1)
    kv = int(config.get("num_key_value_heads") or heads)
    kv_dim = h * kv // max(heads, 1)
    per_layer = 2 * h * h + 2 * h * kv_dim + 3 * h * inter + 2 * h
    embeddings = vocab * h * (1 if config.get("tie_word_embeddings") else 2)
    return layers * per_layer + embeddings


def _token_text(value) -> str:
    """Tokenizer configs store a token either as a string or as an AddedToken dict."""
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return str(value) if value else ""


def _special_tokens(folder: Path) -> tuple[dict, list, bool]:
    """(role -> token, other special tokens, has chat template) from the tokenizer files."""
    tok_cfg = _read_json(folder / "tokenizer_config.json")
    smap = _read_json(folder / "special_tokens_map.json")
    roles = {k: _token_text(tok_cfg.get(k) or smap.get(k)) for k in _TOKEN_KEYS}
    roles = {k: v for k, v in roles.items() if v}
    decoder = tok_cfg.get("added_tokens_decoder") or {}
    extra = [_token_text(v) for v in decoder.values() if isinstance(v, dict) and v.get("special")]
    extra = [t for t in extra if t not in roles.values()]
    template = bool(tok_cfg.get("chat_template")) or (folder / "chat_template.jinja").exists() \
        or (folder / "chat_template.json").exists()
    return roles, extra, template


def describe_model(path: str | Path) -> ModelInfo:
    """Read a model (or tokenizer-only) folder and describe it without loading weights.

    Raises:
        ModelError: the folder does not exist or holds neither config.json nor tokenizer files.
    """
    folder = resource_path(str(path))
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist",
                         "pick a folder that holds config.json, or a model from the Hugging Face cache")
    config = _read_json(folder / "config.json")
    has_tokenizer = (folder / "tokenizer.json").exists()
    if not config and not has_tokenizer:
        raise ModelError(f"{folder} holds neither config.json nor tokenizer.json",
                         "pick the folder that contains the model's config.json and tokenizer files")
    info = ModelInfo(path=str(folder), has_tokenizer=has_tokenizer)
    _fill_from_config(info, config)
    _fill_weights(info, folder, config)
    roles, extra, info.has_chat_template = _special_tokens(folder)
    info.special_tokens = {k.replace("_token", ""): v for k, v in roles.items()}
    info.extra_special_tokens = extra[:12]
    info.pad_token = info.special_tokens.get("pad", "")
    _add_warnings(info)
    return info


def _fill_from_config(info: ModelInfo, config: dict) -> None:
    text_cfg = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    merged = {**text_cfg, **{k: v for k, v in config.items() if v is not None}}
    archs = config.get("architectures") or []
    info.architecture = archs[0] if archs else ""
    info.model_type = str(config.get("model_type", ""))
    info.vocab_size = int(merged.get("vocab_size") or 0)
    info.context_length = int(merged.get("max_position_embeddings") or merged.get("n_positions") or 0)
    info.hidden_size = int(merged.get("hidden_size") or 0)
    info.layers = int(merged.get("num_hidden_layers") or 0)
    info.dtype = str(config.get("torch_dtype") or config.get("dtype") or "")
    info.needs_remote_code = bool(config.get("auto_map"))


def _fill_weights(info: ModelInfo, folder: Path, config: dict) -> None:
    files = _weight_files(folder)
    info.weight_files = [f.name for f in files]
    safetensors = [f for f in files if f.suffix == ".safetensors"]
    if safetensors:
        try:
            info.parameters = sum(safetensors_parameters(f) for f in safetensors)
            info.parameters_exact = True
            return
        except (OSError, ValueError, ModelError) as exc:
            info.warnings.append(f"could not read the safetensors headers ({exc}); the count is estimated")
    if config:
        info.parameters = estimate_parameters(config)


def _add_warnings(info: ModelInfo) -> None:
    if not info.has_tokenizer:
        info.warnings.append("no tokenizer.json: Studio's token preview and trainer need the fast tokenizer file")
    if not info.weight_files:
        info.warnings.append("no weight files found: this folder can be used for its tokenizer only")
    if not info.has_chat_template:
        info.warnings.append("no chat template: pick a built-in template (llama3, qwen2.5, gemma3, mistral...) on the Method page")
    if info.needs_remote_code:
        info.warnings.append("this model ships its own Python code (auto_map in config.json); it loads only "
                             "with 'trust remote code' ticked")


@dataclass
class CachedModel:
    """A model found in the local Hugging Face cache."""

    repo_id: str
    path: str
    size_bytes: int


def list_cached_models(cache_dir: str | Path | None = None) -> list[CachedModel]:
    """Models in the Hugging Face cache (newest snapshot of each), sorted by name.

    An absent or unreadable cache gives an empty list: having no cache is normal.
    """
    from huggingface_hub import scan_cache_dir

    try:
        cache = scan_cache_dir(cache_dir)
    except Exception as exc:  # CacheNotFound, permission problems: nothing to offer
        log.info("no usable Hugging Face cache: %s", exc)
        return []
    out = []
    for repo in cache.repos:
        if repo.repo_type != "model" or not repo.revisions:
            continue
        newest = max(repo.revisions, key=lambda r: r.last_modified)
        out.append(CachedModel(repo.repo_id, str(newest.snapshot_path), repo.size_on_disk))
    return sorted(out, key=lambda m: m.repo_id.lower())


def looks_like_hub_id(text: str) -> bool:
    """``owner/name`` with no path on disk behind it."""
    text = text.strip()
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not Path(text).expanduser().exists() and not text.startswith((".", "~"))


#: called with (MiB done, MiB total) while a download runs
Progress = Callable[[int, int], None]
_MIB = 2**20


def _progress_class(progress: Progress | None):
    """A tqdm subclass that reports snapshot_download's byte counters to ``progress`` in MiB.

    The hub library creates several bars (bytes transferred, bytes written, files); only the
    byte bars are reported, and nothing is printed.
    """
    import io

    from tqdm.auto import tqdm

    class _Report(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.update(disable=False, file=io.StringIO())
            kwargs.pop("name", None)
            super().__init__(*args, **kwargs)
            self._emit()

        def update(self, n=1):
            out = super().update(n)
            self._emit()
            return out

        def refresh(self, *args, **kwargs):
            # the hub library grows ``total`` as it learns file sizes, then refreshes
            out = super().refresh(*args, **kwargs)
            self._emit()
            return out

        def _emit(self):
            if progress is not None and self.unit == "B" and self.total:
                progress(int(self.n // _MIB), max(int(self.total // _MIB), 1))

    return _Report


def download_model(repo_id: str, progress: Progress | None = None, cache_dir: str | None = None) -> str:
    """Download a hub model into the Hugging Face cache and return its local folder.

    Only the files Studio uses are fetched (configs, tokenizer, safetensors weights).

    Raises:
        ModelError: offline, unknown repository, gated model or a failed transfer, each
            with what to do.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub import errors as hf_errors

    patterns = ["*.json", "*.jinja", "*.safetensors", "*.model", "*.txt", "*.py"]
    try:
        return snapshot_download(repo_id, cache_dir=cache_dir, allow_patterns=patterns,
                                 tqdm_class=_progress_class(progress))
    except hf_errors.GatedRepoError:
        raise ModelError(f"{repo_id} is gated: the hub wants you to accept its licence",
                         "accept the licence on huggingface.co, run `hf auth login`, then try again") from None
    except hf_errors.RepositoryNotFoundError:
        raise ModelError(f"there is no model called {repo_id} on the Hugging Face hub (or it is private)",
                         "check the spelling (owner/name) or log in with `hf auth login`") from None
    except (hf_errors.LocalEntryNotFoundError, OSError) as exc:
        raise offline_error(repo_id, exc) from None
    except Exception as exc:  # httpx/requests transport errors differ between hub versions
        if _is_connection_problem(exc):
            raise offline_error(repo_id, exc) from None
        raise ModelError(f"downloading {repo_id} failed: {exc}", "try again, or download it another way "
                         "and pick the folder") from None


def _is_connection_problem(exc: BaseException) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & {"ConnectionError", "ConnectError", "TimeoutException", "Timeout", "ConnectTimeout"}) \
        or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


def offline_error(repo_id: str, exc: BaseException | None = None) -> ModelError:
    """The message shown when the hub cannot be reached."""
    detail = f" ({type(exc).__name__})" if exc is not None else ""
    return ModelError(f"cannot reach the Hugging Face hub to download {repo_id}: this machine looks offline{detail}",
                      "connect to the internet and try again, or pick a local folder or a model "
                      "already in the Hugging Face cache")
