"""``studio export RUN_DIR --merged OUT | --adapter OUT | --gguf OUT [--quant Q]``: a run's weights as a usable folder.

``--gguf`` writes one GGUF file for llama.cpp, Ollama and LM Studio, a Modelfile, a README and the
export check's report (``gguf-check.json``), and prints the check and the ``ollama create`` line.
With ``--json`` the stages, the progress and the report are also written to stdout as one JSON
object per line (the window reads them).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="the run folder")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--merged", metavar="OUT", help="write a standalone model (adapter merged into the base)")
    group.add_argument("--adapter", metavar="OUT", help="write the adapter (PEFT format) with the tokenizer")
    group.add_argument("--gguf", metavar="OUT", help="write a GGUF file (llama.cpp, Ollama, LM Studio) with a "
                                                     "Modelfile, a README and the export check into this folder")
    parser.add_argument("--quant", default="f16", help="GGUF quantization: f32, f16 (default), bf16, q8_0, q5_1, q5_0, "
                                                       "q4_1, q4_0; k-quants (q4_k_m, q5_k_m, q6_k...) need llama.cpp's "
                                                       "llama-quantize on PATH")
    parser.add_argument("--checkpoint", "--from", dest="checkpoint", metavar="CKPT",
                        help="export this checkpoint folder instead of final/")
    parser.add_argument("--json", action="store_true", help="also write stages, progress and the report to stdout "
                                                            "as JSON lines")


def run(args: argparse.Namespace) -> int:
    from studio.worker import export

    if args.gguf:
        return _gguf(args)
    if args.merged:
        out = export.export_merged(args.run_dir, args.merged, args.checkpoint)
        print(f"merged model written to {out} (load it with AutoModelForCausalLM.from_pretrained)", file=sys.stderr)
    else:
        out = export.export_adapter(args.run_dir, args.adapter, args.checkpoint)
        print(f"adapter written to {out} (load it with peft.PeftModel.from_pretrained on the base model)",
              file=sys.stderr)
    return 0


def _emit(args, **event) -> None:
    if args.json:
        print(json.dumps(event), flush=True)


def _gguf(args: argparse.Namespace) -> int:
    from studio.worker import export
    from studio.worker.gguf_check import format_report

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)
        _emit(args, type="stage", text=text)

    def progress(done: int, total: int, tensor: str) -> None:
        _emit(args, type="progress", done=done, total=total, tensor=tensor)
        if not args.json and (done == total or done % 20 == 0):
            print(f"  {done}/{total} tensors written", file=sys.stderr, flush=True)

    report = export.export_gguf(args.run_dir, args.gguf, args.quant, args.checkpoint, say=say, progress=progress)
    print(format_report(report), file=sys.stderr)
    print(f"files: {report['gguf']}, {report['modelfile']}, {report['readme']}", file=sys.stderr)
    print(f"to run it in Ollama: {report['ollama_create']}", file=sys.stderr)
    _emit(args, type="report", report=report)
    if not report["passed"]:
        print("error: the export was written but its check failed (see gguf-check.json in the export folder): "
              "do not trust this file", file=sys.stderr)
        return 3
    return 0
