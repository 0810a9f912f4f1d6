"""``studio push RUN_DIR OWNER/NAME [--what adapter|merged|gguf]``: upload a run to the Hugging Face Hub.

The token is read from ``HF_TOKEN`` or typed at a hidden prompt; it is never taken on the command
line (where shell history and process lists would keep it) and never written anywhere.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="the run folder")
    parser.add_argument("repo", help="the Hub repository, OWNER/NAME (created if it does not exist)")
    parser.add_argument("--what", choices=("adapter", "merged", "gguf"), default="adapter",
                        help="what to upload: the adapter (default), the merged model, or a checked GGUF with its "
                             "Modelfile")
    parser.add_argument("--quant", default="q8_0", help="GGUF quantization with --what gguf (default q8_0)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--json", action="store_true", help="also write stages and progress to stdout as JSON lines")


def run(args: argparse.Namespace) -> int:
    from studio.worker import hub

    def emit(**event) -> None:
        if args.json:
            print(json.dumps(event), flush=True)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)
        emit(type="stage", text=text)

    shown = [-1]

    def progress(done: int, total: int, what: str) -> None:
        emit(type="progress", done=done, total=total, stage=what)
        percent = 100 * done // max(total, 1)
        if not args.json and percent // 10 != shown[0]:
            shown[0] = percent // 10
            print(f"  {what}: {percent}%", file=sys.stderr, flush=True)

    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if not token and sys.stdin.isatty():
        token = getpass.getpass("Hugging Face token (write access; not shown, not saved): ")
    result = hub.push(args.run_dir, args.repo, args.what, token, args.quant, args.private, say=say, progress=progress)
    print(f"pushed {len(result['files'])} files to {args.repo}: {result['url']}", file=sys.stderr)
    emit(type="pushed", **result)
    return 0
