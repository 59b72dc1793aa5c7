"""`kiosk print test|jobs|reprint`: the printer, through the running daemon or directly."""

from __future__ import annotations

import argparse
from typing import Any

from edge.cli.context import Context
from edge.errors import EXIT_OK, BadInput, KioskError


def add_parsers(sub: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    printer = sub.add_parser("print", parents=[common], help="printer jobs")
    printer.set_defaults(handler=run)
    printer_sub = printer.add_subparsers(
        dest="print_command", required=True, parser_class=parser_class
    )
    printer_sub.add_parser("test", parents=[common], help="print a test page")
    jobs = printer_sub.add_parser("jobs", parents=[common], help="list recent print jobs")
    jobs.add_argument("--status", choices=["pending", "printed", "failed"])
    reprint = printer_sub.add_parser(
        "reprint", parents=[common], help="reprint a kept job (from this device, audited as cli)"
    )
    reprint.add_argument("job_id")


def run(args: argparse.Namespace, ctx: Context) -> int:
    daemon = ctx.daemon.running()
    if args.print_command == "jobs":
        query = f"?status={args.status}" if args.status else ""
        if daemon:
            answer = ctx.daemon.request("GET", f"/api/printer/jobs{query}")
            if answer is None:  # it stopped between the two requests
                raise KioskError("the daemon stopped answering")
            jobs = answer["jobs"]
        else:
            jobs = ctx.parts.printer.jobs(status=args.status)
        text = "\n".join(
            f"{j['id']}  {j['status']:<8} {j['kind']:<8} {j['title']}"
            + (f"  ({j['last_error']})" if j["last_error"] else "")
            + ("" if j.get("kept", True) else "  [erased, cannot be reprinted]")
            for j in jobs
        )
        ctx.emit({"jobs": jobs}, text or "no print jobs")
        return EXIT_OK
    if daemon and args.print_command == "test":
        outcome = ctx.daemon.request("POST", "/api/printer/test")
        if outcome is None:
            raise KioskError("the daemon stopped answering")
        if isinstance(outcome.get("error"), dict):  # a refused request, not a failed print
            error = outcome["error"]
            raise (BadInput if error["code"] == "bad_input" else KioskError)(error["message"])
    elif args.print_command == "test":
        from edge.printing import print_test_page

        outcome = print_test_page(ctx.parts.printer, ctx.config).as_dict()
    else:  # the device's own operator (root or the kiosk user), audited as "cli"
        from edge.store.staff import CLI

        outcome = ctx.parts.printer.reprint(args.job_id, actor=CLI).as_dict()
    text = (
        f"printed (job {outcome['job_id']})"
        if outcome["printed"]
        else f"not printed, kept for reprint (job {outcome['job_id']}): {outcome['error']}"
    )
    ctx.emit(outcome, text)
    return EXIT_OK if outcome["printed"] else 3
