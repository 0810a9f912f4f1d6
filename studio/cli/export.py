"""``studio export RUN_DIR --merged OUT | --adapter OUT``: a run's weights as a usable folder."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="the run folder")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--merged", metavar="OUT", help="write a standalone model (adapter merged into the base)")
    group.add_argument("--adapter", metavar="OUT", help="write the adapter (PEFT format) with the tokenizer")
    parser.add_argument("--checkpoint", help="export this checkpoint folder instead of final/")


def run(args: argparse.Namespace) -> int:
    from studio.worker import export

    if args.merged:
        out = export.export_merged(args.run_dir, args.merged, args.checkpoint)
        print(f"merged model written to {out} (load it with AutoModelForCausalLM.from_pretrained)", file=sys.stderr)
    else:
        out = export.export_adapter(args.run_dir, args.adapter, args.checkpoint)
        print(f"adapter written to {out} (load it with peft.PeftModel.from_pretrained on the base model)",
              file=sys.stderr)
    return 0
