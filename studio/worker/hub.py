"""Pushing a run to the Hugging Face Hub: its adapter, merged model or checked GGUF, with a model card.

The token comes from the caller (typed by the person) or from ``HF_TOKEN`` in the environment. It
is handed to ``huggingface_hub`` for the upload and nowhere else: never written to the run's
config, log or events, nor printed.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Callable

from studio.core.errors import StudioError

WHAT = ("adapter", "merged", "gguf")
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def hub_token(typed: str | None = None) -> str:
    """The token typed by the person, else ``HF_TOKEN`` (or ``HUGGING_FACE_HUB_TOKEN``) from the environment."""
    token = (typed or os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or "").strip()
    if not token:
        raise StudioError("no Hugging Face token: pushing needs a token with write access",
                          "type one when asked, or set HF_TOKEN in the environment "
                          "(create one at huggingface.co/settings/tokens)")
    return token


class _CountingFile(io.BufferedReader):
    """A file that reports how many bytes were read, for the upload's progress bar."""

    def __init__(self, path: Path, on_read: Callable[[int], None]) -> None:
        super().__init__(io.FileIO(str(path), "rb"))
        self._on_read = on_read

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self._on_read(len(data))
        return data


def push(run_dir: str | Path, repo_id: str, what: str = "adapter", token: str | None = None, quant: str = "q8_0",
         private: bool = False, endpoint: str | None = None, say: Callable[[str], None] | None = None,
         progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Export ``what`` from the run into a temporary folder, add a model card and upload it to ``repo_id``.

    Returns:
        ``{"repo": ..., "url": ..., "files": [...]}``.

    Raises:
        StudioError: for a malformed repository name, a missing token, an export that cannot be made
            or whose GGUF check failed, and upload errors (with the Hub's message).
    """
    from studio.worker import export

    say = say or (lambda _t: None)
    if what not in WHAT:
        raise StudioError(f"cannot push {what!r}", f"push one of {', '.join(WHAT)}")
    if not _REPO.match(repo_id or ""):
        raise StudioError(f"{repo_id!r} is not a Hub repository name", "write it as OWNER/NAME, e.g. alice/travel-lora")
    token = hub_token(token)
    with tempfile.TemporaryDirectory(prefix="studio-push-") as tmp:
        folder = Path(tmp) / "export"
        check = None
        say(f"exporting the {what}")
        if what == "adapter":
            export.export_adapter(run_dir, folder)
        elif what == "merged":
            export.export_merged(run_dir, folder)
        else:
            check = export.export_gguf(run_dir, folder, quant, say=say)
            if not check["passed"]:
                raise StudioError(f"the GGUF export failed its check ({check['verdict']}), so it was not pushed",
                                  "see the check's details with `studio export RUN --gguf OUT`")
        (folder / "README.md").write_text(model_card(run_dir, repo_id, what, check), encoding="utf-8")
        return _upload(folder, repo_id, token, private, endpoint or os.environ.get("HF_ENDPOINT"), say, progress)


def _upload(folder: Path, repo_id: str, token: str, private: bool, endpoint: str | None, say, progress) -> dict:
    from huggingface_hub import CommitOperationAdd, HfApi

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    total = 2 * sum(p.stat().st_size for p in files)  # each file is read twice: hashed, then sent
    done = 0

    def on_read(n: int) -> None:
        nonlocal done
        done = min(total, done + n)
        if progress:
            progress(done, total, "uploading")

    api = HfApi(endpoint=endpoint, token=token)
    try:
        say(f"creating {repo_id} on the Hub (if it does not exist)")
        api.create_repo(repo_id, private=private, exist_ok=True)
        say(f"uploading {len(files)} files")
        handles = [_CountingFile(p, on_read) for p in files]
        ops = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=h)
               for p, h in zip(files, handles)]
        try:
            info = api.create_commit(repo_id, ops, commit_message="Upload from Studio")
        finally:
            for h in handles:
                h.close()
    except Exception as exc:  # the Hub's own message (401, 403, network) says what went wrong
        message = str(exc).replace(token, "***")
        raise StudioError(f"pushing to {repo_id} failed: {message.splitlines()[0] if message else type(exc).__name__}",
                          "check the repository name and that the token has write access to it") from None
    if progress:
        progress(total, total, "uploaded")
    return {"repo": repo_id, "url": str(info.commit_url), "files": [p.relative_to(folder).as_posix() for p in files]}


def _final_metrics(run_dir: Path) -> dict:
    """Last training loss, last evaluation loss and step from the run's events."""
    out: dict = {}
    path = run_dir / "events.jsonl"
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("type") == "step":
            out.update(step=event.get("step"), train_loss=event.get("loss"))
        elif event.get("type") == "eval":
            out.update(eval_loss=event.get("eval_loss"))
        elif event.get("type") == "finished":
            out.update(status=event.get("status"))
    return out


def model_card(run_dir: str | Path, repo_id: str, what: str, check: dict | None = None) -> str:
    """A README.md for the Hub: base model, data, method, settings, final metrics (and the GGUF check)."""
    from studio.core import config as configmod

    run_dir = Path(run_dir)
    cfg = configmod.load(run_dir / "config.yaml")
    base = cfg.model.path
    tags = ["studio", cfg.method.name, cfg.train.objective] + (["gguf"] if what == "gguf" else [])
    library = "peft" if what == "adapter" else "transformers" if what == "merged" else "gguf"
    front = [f"library_name: {library}", "tags:"] + [f"- {t}" for t in tags]
    if "/" in base and not Path(base).exists():
        front.append(f"base_model: {base}")
    metrics = _final_metrics(run_dir)
    settings = {"method": cfg.method.name, "objective": cfg.train.objective, "learning_rate": cfg.train.learning_rate,
                "batch_size": cfg.train.batch_size, "max_steps": cfg.train.max_steps, "epochs": cfg.train.epochs,
                "max_length": cfg.data.max_length, "template": cfg.model.template}
    if cfg.method.name in ("lora", "dora", "qlora"):
        settings.update({"method.rank": cfg.method.rank, "method.alpha": cfg.method.alpha,
                         "method.target_modules": ", ".join(cfg.method.target_modules)})
    lines = ["---", *front, "---", "", f"# {repo_id.split('/')[-1]}", "",
             f"Fine-tuned with Studio ({cfg.method.name}, {cfg.train.objective}); this repository holds the {what}.", "",
             "## Base model", "", f"`{base}`", "", "## Data", ""]
    lines += [f"- train: `{Path(cfg.data.train).name}`"] + ([f"- eval: `{Path(cfg.data.eval).name}`"] if cfg.data.eval else [])
    lines += ["", "## Settings", "", "| setting | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in settings.items()]
    lines += ["", "## Final metrics", "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    if check:
        lines += ["", "## GGUF", "", f"`{Path(check['gguf']).name}`, export check: **{check['verdict']}**.", "",
                  "Ollama: download the folder and run `ollama create NAME -f Modelfile`."]
    return "\n".join(lines) + "\n"
