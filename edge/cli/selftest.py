"""`kiosk selftest`: every configured part checked, by the running daemon or locally."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from edge.cli.context import Context
from edge.errors import KioskError

if TYPE_CHECKING:
    from edge.events import Event


def add_parsers(sub: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    selftest = sub.add_parser("selftest", parents=[common], help="check every configured part")
    selftest.set_defaults(handler=run)
    selftest.add_argument(
        "--print", dest="print_test", action="store_true", help="also print a test page"
    )
    selftest.add_argument(
        "--local", action="store_true", help="test the parts directly even if the daemon is running"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from edge.selftest import Check, exit_code, render_table

    config = ctx.config
    if not args.local and ctx.daemon.running():
        answer = ctx.daemon.request("GET", f"/api/selftest?print={int(args.print_test)}")
        if answer is None or "checks" not in answer:
            raise KioskError("the running daemon did not answer the self-test")
        checks = [Check(**c) for c in answer["checks"]]
        source = "daemon"
    else:
        checks = _local_selftest(ctx, print_test=args.print_test)
        source = "local"
    code = exit_code(checks)
    ctx.emit(
        {
            "source": source,
            "kiosk_id": config.kiosk.id,
            "exit_code": code,
            "checks": [c.as_dict() for c in checks],
        },
        f"self-test of {config.kiosk.id} ({source})\n{render_table(checks)}",
    )
    return code


def _local_selftest(ctx: Context, *, print_test: bool) -> list[Any]:
    from edge.adapters import build_camera
    from edge.controls import Controls, SimulatedPins
    from edge.selftest import (
        Check,
        check_camera,
        check_controls,
        check_key,
        check_printer,
        check_runtime_files,
        check_storage,
    )

    config = ctx.config
    checks: list[Check] = [check_camera(build_camera(config.camera))]
    try:
        parts = ctx.parts
    except KioskError as err:
        checks.append(Check("storage", "fail", str(err)))
        checks.append(check_key(config.storage.data_key_path))
    else:
        try:
            checks.append(check_printer(parts.printer, config, print_test=print_test))
            checks.append(check_storage(parts.store, config))
            checks.append(check_key(config.storage.data_key_path))
        finally:
            ctx.close()
    controls = Controls(
        buttons=config.buttons, tamper=config.tamper, led=config.led, bus=_NullBus()
    )
    controls.start()
    try:
        if config.tamper.type == "simulated":
            SimulatedPins(controls).set_door("closed")
        checks[1:1] = check_controls(controls)
    finally:
        controls.stop()
    checks.extend(check_runtime_files(config.models.dir))
    return checks


class _NullBus:
    def post(self, event: Event) -> None:
        pass
