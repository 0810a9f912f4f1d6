"""``studio runs``: list the runs in the registry, with status settled against live processes."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per run")
    parser.add_argument("--status", help="only runs with this status (running, completed, stopped, failed)")


def open_registry():
    """The run registry; says so on stderr when it was damaged and has been rebuilt."""
    from studio.core.runs import Registry

    registry = Registry()
    if registry.notice:
        print(f"note: {registry.notice}", file=sys.stderr)
    return registry


def run(args: argparse.Namespace) -> int:
    registry = open_registry()
    registry.refresh_status()
    runs = [r for r in registry.list() if not args.status or r.status == args.status]
    if args.json:
        for rec in runs:
            print(json.dumps(dataclasses.asdict(rec), ensure_ascii=False))
        return 0
    if not runs:
        print("no runs yet: start one with studio train resources/presets/demo.yaml")
        return 0
    print(format_table(runs))
    return 0


def format_table(runs: list) -> str:
    """Runs as an aligned text table (newest first)."""
    header = ("ID", "NAME", "STATUS", "METHOD", "OBJECTIVE", "STEP", "BEST EVAL", "FOLDER")
    rows = [header]
    for r in runs:
        step = f"{r.step}/{r.max_steps}" if r.max_steps else str(r.step or "")
        best = f"{r.best_eval_loss:.4f}" if r.best_eval_loss is not None else ""
        rows.append((r.id, r.name, r.status, r.method, r.objective, step, best, r.run_dir))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row[:-1], widths)) + "  " + str(row[-1]) for row in rows]
    failed = [r for r in runs if r.status == "failed" and r.error]
    lines += [f"\n{r.id} failed: {r.error}\n  hint: {r.hint}" for r in failed[:5]]
    return "\n".join(lines)
