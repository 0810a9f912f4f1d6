"""`studio inspect`: validate a dataset and print its token-length statistics.

Prints the validation report (format, usable/total rows, each bad row with its reason) and,
from the same encoding the trainer uses, a length histogram, percentiles, what a
``max_length`` cut loses, the padding waste of every padding strategy at a batch size, and a
recommended ``max_length``. Lengths are cached per file content, tokenizer, template and
options, so a second run on a big file only pays for loading it. ``--json`` prints one JSON
object instead. Exit status: 0 on success, 2 on unusable input (message and hint on stderr).

Raw text that can be read as a stream (:func:`studio.core.text_stream.open_text`) is read once and
never held: the report gives its documents, tokens, and with ``--max-length`` the blocks training
cuts and the remainder, and a histogram of document lengths (blocks are never truncated or padded,
so the truncation and padding tables do not apply).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from studio.cli.dataset_args import add_dataset_arguments, data_path, load_inputs, positive, scan_text

BAR_WIDTH = 40


def add_arguments(parser) -> None:
    add_dataset_arguments(parser)
    parser.add_argument("--batch-size", type=positive, default=8, metavar="B",
                        help="rows per batch for the padding-waste table (default: 8)")
    parser.add_argument("--multiple-of", type=positive, default=8, metavar="N",
                        help="rounding of the 'multiple' padding strategy (default: 8)")
    parser.add_argument("--bins", type=positive, default=16, help="bars in the length histogram (default: 16)")
    parser.add_argument("--no-cache", action="store_true", help="measure again instead of using cached lengths")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the text report")


def run(args) -> int:
    from studio.core import stats
    from studio.core.lengths import measure_file

    inputs = load_inputs(args, load_data=False)
    found = scan_text(args, data_path(args.data), inputs.tokenizer)
    if found is not None:
        return _text_run(args, inputs, found)
    inputs.report, measured = measure_file(data_path(args.data), inputs.encoder, args.format, args.columns,
                                           use_cache=not args.no_cache, text_split=args.text_split)
    result = stats.compute(measured, batch_size=args.batch_size, max_length=args.max_length,
                           context=stats.context_length(inputs.model_path, inputs.tokenizer),
                           multiple_of=args.multiple_of, side=args.truncation_side, bins=args.bins)
    if args.json:
        print(json.dumps(_as_json(inputs, measured, result)))
    else:
        sys.stdout.write("\n".join(_text_report(inputs, measured, result)) + "\n")
    return 0


def _text_run(args, inputs, found) -> int:
    """The report of raw text read as a stream: counts, blocks at ``--max-length``, document lengths."""
    from studio.core.text_scan import length_bins, length_percentiles

    report = found.report()
    blocks = found.blocks(inputs.tokenizer, args.max_length, limit=0) if args.max_length else None
    bins, points = length_bins(found.lengths, args.bins), length_percentiles(found.lengths)
    if args.json:
        text = {"documents": found.documents, "tokens": found.tokens, "end_token": found.end_token,
                "max_length": args.max_length, "blocks": blocks.count if blocks else None,
                "remainder": blocks.remainder if blocks else None,
                "lengths": {"histogram": [asdict(b) for b in bins], "percentiles": points}}
        print(json.dumps({"data": _data_json(report), "model": str(inputs.model_path), "text": text}))
        return 0
    lines = ["Dataset", *("  " + line for line in report.summary().splitlines()),
             f"Model     {inputs.model_path}   (raw text: no chat template)", "",
             "Continued pre-training", f"  {blocks.summary()}" if blocks else
             f"  {found.documents:,} documents, {found.tokens:,} tokens (each document ends with {found.end_token}); "
             "add --max-length N to see the blocks of N tokens training cuts",
             "  (blocks are never truncated or padded: the truncation and padding tables do not apply)", "",
             f"Document lengths in tokens: {found.documents:,} documents"]
    lines += _bars(bins) + ["  " + "   ".join(f"{k} {v:,}" for k, v in points.items())]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _data_json(report) -> dict:
    return {"path": str(report.path), "format": report.format, "total_rows": report.total_rows,
            "usable_rows": report.usable_rows, "bad_row_count": report.bad_total,
            "bad_rows": [{"row": b.row, "reason": b.reason} for b in report.bad_rows]}


def _as_json(inputs, measured, result) -> dict:
    report = inputs.report
    return {
        "data": {"path": str(report.path), "format": report.format, "total_rows": report.total_rows,
                 "usable_rows": report.usable_rows,
                 "bad_rows": [{"row": row, "reason": reason} for row, reason in report.bad_rows]},
        "model": str(inputs.model_path),
        "template": {"name": inputs.template.name, "warnings": list(inputs.encoder.warnings)},
        "encoding_warnings": {"count": measured.warning_count,
                              "first": [{"row": r, "message": m} for r, m in measured.warnings]},
        "stats": result.to_dict(),
    }


def _text_report(inputs, measured, result) -> list[str]:
    return [*_validation(inputs, measured), "", *_lengths(result), "", *_truncation(result), "",
            *_waste(result), "", *_recommendation(result)]


def _validation(inputs, measured) -> list[str]:
    lines = ["Dataset", *("  " + line for line in inputs.report.summary().splitlines())]
    lines.append(f"Model     {inputs.model_path}   template: {inputs.template.name}")
    lines += [f"  warning: {w}" for w in inputs.encoder.warnings]
    if measured.warning_count:
        lines.append(f"  encoding warnings: {measured.warning_count:,}")
        lines += [f"    row {row}: {message}" for row, message in measured.warnings[:10]]
    return lines


def _lengths(result) -> list[str]:
    per_row = " (chosen and rejected counted apart)" if result.sequences_per_row == 2 else ""
    lines = [f"Token lengths: {result.sequences:,} sequences{per_row}, mean {result.mean:.1f}"]
    lines += _bars(result.histogram, "  ✂ cut at max_length")
    lines.append("  " + "   ".join(f"{k} {v:,}" for k, v in result.percentiles.items()))
    return lines


def _bars(histogram, overflow: str = "") -> list[str]:
    widest = max((b.count for b in histogram), default=0) or 1
    lines = []
    for b in histogram:
        bar = "█" * round(BAR_WIDTH * b.count / widest)
        lines.append(f"  {b.lo:>7,}–{b.hi - 1:<7,} │{bar:<{BAR_WIDTH}} {b.count:,}{overflow if b.overflow else ''}")
    return lines


def percent(share: float) -> str:
    """``0.4%``; a share too small for one decimal but not zero reads ``<0.1%``."""
    return "<0.1%" if 0 < share < 0.0005 else f"{share:.1%}"


def _truncation(result) -> list[str]:
    t = result.truncation
    return [f"Truncation at max_length {t.max_length:,} ({result.truncation_side} side cut)",
            f"  sequences truncated   {t.truncated:,} of {t.sequences:,} ({percent(t.share)})",
            f"  loss tokens lost      {t.lost_loss_tokens:,} of {t.loss_tokens:,} ({percent(t.lost_share)})",
            f"  left with no loss     {t.emptied:,} sequences (they would train nothing)"]


def _waste(result) -> list[str]:
    lines = [f"Padding waste at batch size {result.batch_size}, max_length {result.max_length:,}",
             f"  {'strategy':<12}{'pad tokens':>14}{'all tokens':>14}{'waste':>8}{'batches':>9}{'peak batch':>12}"]
    for w in result.waste:
        lines.append(f"  {w.strategy:<12}{w.pad_tokens:>14,}{w.total_tokens:>14,}{percent(w.share):>8}"
                     f"{w.batches:>9,}{w.peak_batch_tokens:>12,}")
    lines.append("  (waste = pad tokens / all tokens; packing wastes the unused tail of each packed row)")
    return lines


def _recommendation(result) -> list[str]:
    context = f", capped at the model's context {result.context_length:,}" if result.context_length else ""
    cached = "  (lengths from the statistics cache)" if result.cache_hit else ""
    return [f"Recommended max_length: {result.recommended_max_length:,} "
            f"(smallest multiple of 64 that fits 99% of sequences whole{context}){cached}"]
