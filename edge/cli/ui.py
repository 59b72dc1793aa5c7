"""`kiosk ui pin-hash`: the hash of a technician PIN for `[ui] technician_pin_hash`."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from edge.cli.context import Context
from edge.errors import EXIT_OK, BadInput


def add_parsers(sub: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    ui = sub.add_parser("ui", parents=[common], help="touchscreen UI settings")
    ui.set_defaults(handler=run)
    ui_sub = ui.add_subparsers(dest="ui_command", required=True, parser_class=parser_class)
    ui_sub.add_parser(
        "pin-hash",
        parents=[common],
        help="hash a technician PIN (read from the terminal or stdin, never from the command line)",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Hashes a PIN; no kiosk config needed."""
    from werkzeug.security import generate_password_hash

    if sys.stdin.isatty():
        pin = getpass.getpass("Technician PIN (4-12 digits): ")
        if getpass.getpass("Again: ") != pin:
            raise BadInput("the two PINs differ")
    else:
        pin = sys.stdin.readline().strip()
    if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
        raise BadInput("a technician PIN is 4 to 12 digits")
    hashed = generate_password_hash(pin)
    ctx.emit({"technician_pin_hash": hashed}, f'[ui]\ntechnician_pin_hash = "{hashed}"')
    return EXIT_OK
