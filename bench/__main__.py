"""`python -m bench`: measure every registered figure and report it with the machine."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from bench import (  # noqa: F401  (registers the figures)
    certify,
    chip,
    copies,
    document,
    figures,
    fleet,
    fleet_console,
    fleet_leader,
    identity,
    search,
    services,
    speech,
    web_ui,
)
from bench.machine import describe
from bench.registry import FIGURES, measure
from bench.report import report

logger = logging.getLogger("bench")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="samples per figure (default 5)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--budget",
        type=float,
        default=600.0,
        help="seconds the whole bench may take; figures not done by then fail (default 600)",
    )
    parser.add_argument(
        "--only", metavar="TEXT", help="measure only figures whose name contains TEXT"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    deadline = time.monotonic() + args.budget
    chosen = [f for f in FIGURES if not args.only or args.only.lower() in f.name.lower()]
    if not chosen:
        parser.error(f"no figure name contains {args.only!r}")
    results = [measure(fig, runs=args.runs, deadline=deadline) for fig in chosen]
    report(describe(), results, runs=args.runs, as_json=args.json)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
