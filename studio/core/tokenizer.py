"""A model's tokenizer, loaded without transformers.

Core encoding needs only ``tokenizer.json`` (through the ``tokenizers`` library) and the JSON
or Jinja files beside it, so the GUI process can encode in a background thread without
importing transformers or torch, and the preview and the trainer share one implementation.

Special tokens are read the way transformers 5 reads them: ``tokenizer_config.json`` first
(``bos_token``/``eos_token``/``pad_token`` as a string or an ``{"content": ...}`` dict,
``added_tokens_decoder``), then the legacy ``special_tokens_map.json``. The chat template
comes from ``chat_template.jinja`` when present, else from ``tokenizer_config.json``
(a string, or a list of named templates whose ``default`` is used).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from studio.core.errors import ModelError

# transformers writes this for "no limit"; we report None instead.
_NO_LIMIT = 10**20
#: One batch encoding at a time per process: the window tokenizes on several background threads
#: (preview, statistics, preflight), and ``tokenizers``' batch encoder, which runs its own thread
#: pool without the interpreter lock, crashed the process when two threads entered it at once.
_BATCH_LOCK = threading.Lock()
SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _read_json(path: Path) -> dict:
    """A JSON object from ``path``, ``{}`` when the file is absent."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc})",
                         "restore the file from the model's original download") from exc
    return data if isinstance(data, dict) else {}


def _token_text(value: Any) -> str | None:
    """A special token given as a string or as an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _chat_templates(folder: Path, config: dict) -> dict[str, str]:
    """Every named chat template of a tokenizer folder; the main one is named ``default``."""
    templates: dict[str, str] = {}
    raw = config.get("chat_template")
    if isinstance(raw, str):
        templates["default"] = raw
    elif isinstance(raw, list):
        templates.update({t["name"]: t["template"] for t in raw if isinstance(t, dict) and "name" in t})
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        # transformers 5 lets the .jinja file win over the JSON copy.
        templates["default"] = jinja.read_text(encoding="utf-8")
    extra = folder / "additional_chat_templates"
    if extra.is_dir():
        for file in sorted(extra.glob("*.jinja")):
            templates[file.name.removesuffix(".jinja")] = file.read_text(encoding="utf-8")
    return templates


class Tokenizer:
    """A tokenizer folder: ``tokenizer.json`` plus its special tokens and chat template.

    Text is always tokenized without adding special tokens: the chat template writes BOS
    itself, so adding it again would give two.

    Attributes:
        path: the folder it was loaded from.
        bos_token, eos_token, pad_token, unk_token: special token strings (``None`` if absent).
        chat_template: the default chat template source, or ``None``.
        chat_templates: every named template (``default`` is :attr:`chat_template`).
        model_max_length: the tokenizer's declared context length, or ``None``.
    """

    def __init__(self, backend: Any, folder: Path, config: dict, special_map: dict) -> None:
        self._tk = backend
        self.path = str(folder)
        self.config = config
        specials = {name: _token_text(config.get(name)) or _token_text(special_map.get(name))
                    for name in SPECIAL_NAMES}
        self.specials = {k: v for k, v in specials.items() if v}
        self.bos_token = specials["bos_token"]
        self.eos_token = specials["eos_token"]
        self.pad_token = specials["pad_token"]
        self.unk_token = specials["unk_token"]
        self.chat_templates = _chat_templates(folder, config)
        self.chat_template = self.chat_templates.get("default")
        limit = config.get("model_max_length")
        self.model_max_length = int(limit) if isinstance(limit, (int, float)) and 0 < limit < _NO_LIMIT else None
        self._added = {int(i): t for i, t in backend.get_added_tokens_decoder().items()}

    # -- vocabulary -------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included."""
        return self._tk.get_vocab_size(with_added_tokens=True)

    @property
    def added_tokens(self) -> dict[str, int]:
        """Every added token (special or not) and its id."""
        return {t.content: i for i, t in self._added.items()}

    @property
    def special_tokens(self) -> list[str]:
        """Special token strings: added tokens marked special plus the named ones, in id order."""
        found = [t.content for _, t in sorted(self._added.items()) if t.special]
        return found + [t for t in self.specials.values() if t not in found]

    def token_to_id(self, token: str) -> int | None:
        """The id of ``token``, or ``None`` when it is not in the vocabulary."""
        return self._tk.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        """The token string of ``token_id``, or ``None`` when out of range."""
        return self._tk.id_to_token(token_id)

    @property
    def bos_id(self) -> int | None:
        return self.token_to_id(self.bos_token) if self.bos_token else None

    @property
    def eos_id(self) -> int | None:
        return self.token_to_id(self.eos_token) if self.eos_token else None

    @property
    def pad_id(self) -> int | None:
        return self.token_to_id(self.pad_token) if self.pad_token else None

    # -- encoding ---------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; never adds special tokens."""
        return self._tk.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of many texts at once (parallel inside ``tokenizers``)."""
        with _BATCH_LOCK:
            return [e.ids for e in self._tk.encode_batch(texts, add_special_tokens=False)]

    def encode_offsets(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Ids and character ``(start, end)`` offsets of many texts, for mapping text spans to tokens."""
        with _BATCH_LOCK:
            return [(e.ids, e.offsets) for e in self._tk.encode_batch(texts, add_special_tokens=False)]

    def encodings(self, texts: list[str]) -> list:
        """``tokenizers`` encodings of many texts (ids, offsets and lookups between characters and tokens)."""
        with _BATCH_LOCK:
            return self._tk.encode_batch(texts, add_special_tokens=False)

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        """Text of ``ids``; special tokens are kept unless asked otherwise."""
        return self._tk.decode(list(ids), skip_special_tokens=skip_special_tokens)

    @property
    def adds_bos_by_default(self) -> bool:
        """Whether plain ``tokenizer(text)`` in transformers would prepend BOS (its post-processor does).

        A pipeline that renders a template which already writes BOS and then tokenizes the text
        with special tokens would get two BOS; core encoding never adds them.
        """
        bos = self.bos_id
        return bos is not None and self._tk.encode("a", add_special_tokens=True).ids[:1] == [bos]

    # -- facts for the preflight lints -------------------------------------------------------

    @property
    def warnings(self) -> list[str]:
        """Facts about this tokenizer that can spoil fine-tuning, as sentences."""
        out = []
        if not self.pad_token:
            out.append("the tokenizer has no pad token; Studio picks a reserved token or, failing that, EOS")
        elif self.pad_token == self.eos_token:
            out.append(f"the pad token {self.pad_token} is also the EOS token; tools that mask labels by pad id "
                       "would stop the model learning to end its answers")
        if not self.chat_template:
            out.append("the tokenizer has no chat template; pick a built-in one (llama3, qwen2.5, gemma3, mistral...)")
        return out

    def __repr__(self) -> str:
        return f"Tokenizer({self.path!r}, vocab_size={self.vocab_size}, eos={self.eos_token!r}, pad={self.pad_token!r})"


def _add_missing_tokens(backend: Any, config: dict) -> None:
    """Add tokens listed in ``added_tokens_decoder`` that ``tokenizer.json`` lacks, as transformers does."""
    from tokenizers import AddedToken

    decoder = config.get("added_tokens_decoder") or {}
    for spec in decoder.values():
        content = _token_text(spec)
        if content and backend.token_to_id(content) is None:
            token = AddedToken(content, special=bool(spec.get("special", True)))
            backend.add_special_tokens([token]) if token.special else backend.add_tokens([token])


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load the tokenizer of a model folder or of a tokenizer-only folder.

    Args:
        path: a folder holding ``tokenizer.json`` (and usually ``tokenizer_config.json``).

    Raises:
        ModelError: the folder does not exist, has no ``tokenizer.json`` or it is unreadable.
    """
    from tokenizers import Tokenizer as Backend

    folder = Path(path)
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist", "check the model path")
    file = folder / "tokenizer.json"
    if not file.is_file():
        raise ModelError(f"{folder} has no tokenizer.json",
                         "use a model saved with a fast tokenizer (transformers save_pretrained writes "
                         "tokenizer.json), or convert it once with AutoTokenizer.from_pretrained(...).save_pretrained")
    try:
        backend = Backend.from_file(str(file))
    except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
        raise ModelError(f"{file} cannot be read ({exc})", "restore the file from the model's original download") from exc
    config = _read_json(folder / "tokenizer_config.json")
    _add_missing_tokens(backend, config)
    return Tokenizer(backend, folder, config, _read_json(folder / "special_tokens_map.json"))
