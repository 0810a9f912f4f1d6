"""The chat process: answers prompts with a trained run's model and with its base model.

Usage::

    python -m studio.worker.chat RUN_DIR_OR_FINAL_DIR

The window never loads a model itself (it must not import torch); it starts this process and
talks to it in JSON lines. Requests on stdin::

    {"id": 1, "messages": [{"role": "user", "content": "..."}], "which": "tuned", "max_new_tokens": 128}

``which`` is ``tuned`` (the run's adapter or full model) or ``base`` (the model it started
from). Replies on stdout, one JSON object per line with a ``type``::

    {"type": "ready", "tuned": "<folder>", "base": "<folder>", "kind": "adapter", "template": "llama3"}
    {"type": "answer", "id": 1, "which": "tuned", "text": "...", "tokens": 17, "seconds": 0.4}
    {"type": "error", "id": 1, "error": "...", "hint": "..."}

Prompts are rendered with the chat template saved with the run (the one it was trained with)
and encoded by the core tokenizer, exactly as the worker's sample generations are; generation
stops at the template's end-of-turn token. For an adapter, the base answer comes from the same
weights with the adapter switched off, so only one model is held in memory.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import IO, Any

from studio.core.errors import ModelError, StudioError

log = logging.getLogger("studio.worker.chat")
MANIFEST = "studio.json"
MAX_NEW_TOKENS = 256


def final_folder(path: str | Path) -> Path:
    """``RUN_DIR/final`` for a run folder, or the folder itself when it holds a manifest."""
    path = Path(path)
    for candidate in (path, path / "final"):
        if (candidate / MANIFEST).exists():
            return candidate
    raise ModelError(f"{path} has no trained model to chat with (no {MANIFEST} in it or in its final/ folder)",
                     "pick a run that completed; a stopped run can be resumed to completion first")


class ChatModel:
    """The run's model and its base, with the run's template and stop tokens."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = final_folder(folder)
        self.manifest = json.loads((self.folder / MANIFEST).read_text(encoding="utf-8"))
        if self.manifest.get("task") == "reward":
            raise ModelError(f"{self.folder} is a reward model: it scores answers, it does not write them",
                             "chat with a run trained with SFT, DPO, KTO, ORPO or GRPO")
        self.kind = self.manifest.get("kind", "adapter")
        self.base_path = self._base_path()
        self._load()

    def _base_path(self) -> Path:
        from studio.worker.context import resolve_model_path

        return resolve_model_path(str(self.manifest.get("base_model", "")))

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from studio.core.tokenizer import load_tokenizer
        from studio.worker.evaluate import stop_ids

        self.tokenizer = load_tokenizer(str(self.folder))
        self.hf_tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        self.stops = stop_ids(self.tokenizer)
        self.base = AutoModelForCausalLM.from_pretrained(str(self.base_path), dtype=torch.float32)
        if self.kind == "adapter":
            from peft import PeftModel

            self.tuned = PeftModel.from_pretrained(self.base, str(self.folder))
        else:
            self.tuned = AutoModelForCausalLM.from_pretrained(str(self.folder), dtype=torch.float32)
        self.tuned.eval()
        self.base.eval()

    def answer(self, messages: list[dict], which: str, max_new_tokens: int) -> tuple[str, int]:
        """Greedy answer and its length in tokens."""
        import contextlib

        import torch

        text = self.hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = torch.tensor([self.tokenizer.encode(text)])
        model, switch = self.tuned, contextlib.nullcontext()
        if which == "base":
            if self.kind == "adapter":
                switch = self.tuned.disable_adapter()
            else:
                model = self.base
        pad = self.stops[0] if self.stops else 0
        with torch.no_grad(), switch:
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=self.stops or None, pad_token_id=pad)
        new = [t for t in out[0, ids.shape[1]:].tolist() if t not in self.stops]
        return self.tokenizer.decode(new, skip_special_tokens=True).strip(), len(new)


def reply(out: IO[str], type_: str, **fields: Any) -> None:
    # "v" as in the worker's events, so the window's protocol.LineReader takes these lines as
    # messages rather than as plain log text.
    out.write(json.dumps({"v": 1, "type": type_, **fields}, ensure_ascii=False) + "\n")
    out.flush()


def handle(model: ChatModel, line: str, out: IO[str]) -> None:
    """Answer one request line; a bad request or a generation error becomes an ``error`` reply."""
    request_id = None
    try:
        request = json.loads(line)
        request_id = request.get("id")
        which = request.get("which", "tuned")
        if which not in ("tuned", "base"):
            raise StudioError(f"unknown model {which!r}", "ask for 'tuned' or 'base'")
        limit = int(request.get("max_new_tokens") or MAX_NEW_TOKENS)
        start = time.perf_counter()
        text, tokens = model.answer(request["messages"], which, limit)
        reply(out, "answer", id=request_id, which=which, text=text, tokens=tokens,
              seconds=round(time.perf_counter() - start, 3))
    except StudioError as exc:
        reply(out, "error", id=request_id, error=exc.message, hint=exc.hint)
    except (ValueError, KeyError, TypeError) as exc:
        reply(out, "error", id=request_id, error=f"bad request: {exc}", hint="send one JSON object per line")
    except Exception as exc:  # a failed generation must not end the chat
        log.exception("generation failed")
        reply(out, "error", id=request_id, error=f"generation failed: {exc}",
              hint="see the chat process log; try a shorter conversation")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.worker.chat", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a run folder (its final/ is used) or a final/ folder")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    out = sys.stdout
    try:
        model = ChatModel(args.folder)
    except StudioError as exc:
        reply(out, "error", id=None, error=exc.message, hint=exc.hint)
        return 2
    except Exception as exc:
        reply(out, "error", id=None, error=f"could not load the model: {exc}",
              hint="check that the run's final/ folder and its base model are intact")
        return 2
    reply(out, "ready", tuned=str(model.folder), base=str(model.base_path), kind=model.kind,
          template=str(model.manifest.get("template", "")))
    for line in sys.stdin:
        if line.strip():
            handle(model, line, out)
    return 0


if __name__ == "__main__":
    from studio.worker import runtime_env

    runtime_env.apply()  # generation meets a new length every token: bounded kernel caches
    sys.exit(main())
