"""Remember measured sequence lengths so a second look at a big dataset is instant.

An entry is keyed by everything that can change a token count: the bytes of the data file
(every file, for a saved-dataset folder), the bytes of the tokenizer files (the chat template
lives there), the resolved template, the encode options that matter before truncation, the
data format and column mapping, and :data:`VERSION`. Truncation is not part of the key:
lengths are stored untruncated and every ``max_length`` is computed from them.

Entries are JSON files under ``$STUDIO_HOME/cache/stats`` when ``STUDIO_HOME`` is set, else
under the platform's user cache folder (``~/.cache/studio/stats`` on Linux). A damaged or
unreadable entry is a miss, never an error: the cache only ever saves time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

log = logging.getLogger("studio.stats")

#: bump when the stored shape or the meaning of a length changes
VERSION = 1
#: the tokenizer files whose bytes decide how text is encoded
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "chat_template.json")
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """The folder holding statistics cache entries (not created here)."""
    home = os.environ.get("STUDIO_HOME")
    if home:
        return Path(home) / "cache" / "stats"
    import platformdirs

    return Path(platformdirs.user_cache_dir("studio")) / "stats"


def _hash_file(digest, path: Path) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)


def content_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes, or of every file (with its relative name) in a folder."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(item.relative_to(path)).encode() + b"\0")
            _hash_file(digest, item)
    else:
        _hash_file(digest, path)
    return digest.hexdigest()


def tokenizer_hash(folder: str | Path) -> str:
    """SHA-256 over the tokenizer files present in ``folder``."""
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        item = Path(folder) / name
        if item.is_file():
            digest.update(name.encode() + b"\0")
            _hash_file(digest, item)
    return digest.hexdigest()


def make_key(data_path: str | Path, tokenizer_folder: str | Path, **settings) -> str:
    """One cache key from the data file, the tokenizer folder and the other ``settings``.

    Args:
        data_path: the dataset file or saved-dataset folder.
        tokenizer_folder: the folder whose tokenizer files encode the data.
        **settings: anything else that changes lengths (template, loss, format, columns);
            values must be JSON-serialisable (``str()`` is used otherwise).
    """
    parts = {"v": VERSION, "data": content_hash(data_path), "tokenizer": tokenizer_hash(tokenizer_folder),
             **settings}
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load(key: str) -> dict | None:
    """The stored entry for ``key``, or ``None`` on a miss (absent, unreadable, other version)."""
    path = cache_dir() / f"{key}.json"
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("v") == VERSION else None


def store(key: str, entry: dict) -> Path | None:
    """Write ``entry`` for ``key`` atomically; ``None`` (and a log line) if it cannot be written."""
    folder = cache_dir()
    path = folder / f"{key}.json"
    tmp = folder / f".{key}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({**entry, "v": VERSION}, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not write the statistics cache %s: %s", path, exc)
        return None
    return path
