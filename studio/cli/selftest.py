"""``studio --self-test``: check that this installation can open the window and train."""

from __future__ import annotations

import json
import sys


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def run(args) -> int:
    from studio.core.selftest import run_self_test

    def show(check) -> None:
        if not args.json:
            print(f"  {'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}", flush=True)
            if check.hint:
                print(f"        what to do: {check.hint}", flush=True)

    if not args.json:
        print("Checking this Studio installation (about a minute)...", flush=True)
    report = run_self_test(on_check=show)
    print(json.dumps(report.to_dict()) if args.json else report.verdict(), file=sys.stdout, flush=True)
    return 0 if report.ok else 1
