"""The ``studio`` command: the window by default, and headless subcommands.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``. Modules import nothing heavy at module level, so ``studio --help`` and
the window start at once. A :class:`~studio.core.errors.StudioError` from any subcommand is
printed as a message and hint, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from studio.core.errors import StudioError

#: subcommand -> (module, one-line help)
COMMANDS = {
    "preview": ("studio.cli.preview", "show how rows are tokenized: special tokens, loss mask, padding"),
    "inspect": ("studio.cli.inspect", "validate a dataset and print token-length statistics"),
    "train": ("studio.cli.train", "train from a config file (headless), resume, dry-run, print launch commands"),
    "export": ("studio.cli.export", "export a run's adapter, merged model or GGUF (llama.cpp, Ollama, LM Studio)"),
    "push": ("studio.cli.push", "upload a run's adapter, merged model or GGUF to the Hugging Face Hub"),
    "runs": ("studio.cli.runs", "list the runs in the registry"),
    "gui": ("studio.cli.gui", "open the studio window (the default)"),
    "self-test": ("studio.cli.selftest", "check the installation: PyTorch, GPU, bf16, a window, two training steps"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="studio", description="Studio: fine-tune language models on your own machine. With no command, opens the window.")
    parser.add_argument("--screenshot", metavar="PATH", help="render the window after start-up to a PNG and exit")
    parser.add_argument("--self-test", action="store_true", help="same as `studio self-test`")
    sub = parser.add_subparsers(dest="command")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("--screenshot"):
        argv = ["gui", *argv]
    elif argv[0] == "--self-test":
        argv = ["self-test", *argv[1:]]
    args = build_parser().parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except StudioError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
