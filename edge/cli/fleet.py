"""`kiosk fleet status|send-test`: fleet reporting, from the running daemon or the outbox."""

from __future__ import annotations

import argparse
from typing import Any

from edge.cli.context import Context
from edge.errors import EXIT_OK, KioskError


def add_parsers(sub: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    fleet = sub.add_parser("fleet", parents=[common], help="fleet reporting (MQTT)")
    fleet.set_defaults(handler=run)
    fleet_sub = fleet.add_subparsers(dest="fleet_command", required=True, parser_class=parser_class)
    fleet_sub.add_parser("status", parents=[common], help="connection state and outbox depth")
    fleet_sub.add_parser("send-test", parents=[common], help="queue a test event for central")


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Asks the running daemon; without one, reads (or adds to) the outbox directly."""
    config = ctx.config
    if ctx.daemon.running():
        if args.fleet_command == "status":
            status = ctx.daemon.request("GET", "/api/status")
            if status is None:  # it stopped between the two requests
                raise KioskError("the daemon stopped answering")
            data: dict[str, Any] = {
                "daemon": True,
                "fleet": status["fleet"],
                "outbox": status["parts"]["storage"]["outbox"],
            }
        else:
            queued = ctx.daemon.request("POST", "/api/fleet/test-event")
            if queued is None or isinstance(queued.get("error"), dict):
                raise KioskError("the daemon did not queue the test event")
            data = queued
    else:
        from edge.fleet import queue_event

        outbox = ctx.parts.outbox
        if args.fleet_command == "send-test":
            message = queue_event(outbox, config.kiosk.id, "fleet.test", "info", {"by": "cli"})
            data = {"queued": message.id, "seq": message.seq, "daemon": False}
        else:
            data = {
                "daemon": False,
                "fleet": {"enabled": config.mqtt.type == "broker"},
                "outbox": outbox.depth(),
            }
    if args.fleet_command == "status":
        fleet = data["fleet"]
        state = (
            ("connected" if fleet.get("connected") else "not connected")
            if fleet.get("enabled", True)
            else "off"
        )
        text = (
            f"fleet: {state}"
            + ("" if data["daemon"] else " (daemon not running)")
            + f"\noutbox: {data['outbox']}"
        )
    else:
        text = f"test event queued ({data['queued']})"
    ctx.emit(data, text)
    return EXIT_OK
