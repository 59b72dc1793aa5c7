"""`kiosk staff add|list|remove|audit`: named logins for the technician screen, and its audit."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from typing import Any

from edge.cli.context import Context
from edge.errors import EXIT_FAILED, EXIT_OK, BadInput


def add_parsers(sub: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    staff = sub.add_parser(
        "staff", parents=[common], help="named logins for the technician screen, and the audit"
    )
    staff.set_defaults(handler=run)
    staff_sub = staff.add_subparsers(dest="staff_command", required=True, parser_class=parser_class)
    add = staff_sub.add_parser(
        "add",
        parents=[common],
        help="add a login (PIN read from the terminal or stdin, never from the command line)",
    )
    add.add_argument("name", help="login handle, e.g. lan.nguyen (not a full name)")
    add.add_argument("--replace", action="store_true", help="set a new PIN for an existing login")
    add.add_argument(
        "--role",
        choices=("staff", "technician"),
        default="technician",
        help="staff: answers calls and confirms identities; technician: also the hardware actions",
    )
    staff_sub.add_parser("list", parents=[common], help="the logins on this kiosk")
    remove = staff_sub.add_parser("remove", parents=[common], help="remove a login")
    remove.add_argument("name")
    audit = staff_sub.add_parser(
        "audit", parents=[common], help="who signed in and reprinted what, newest first"
    )
    audit.add_argument("--limit", type=int, default=50)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from edge.store import Store
    from edge.store import staff as accounts

    emit, config = ctx.emit, ctx.config
    config.storage.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = Store(config.storage.db_path)
    store.open()
    try:
        staff = accounts.StaffAccounts(store)
        match args.staff_command:
            case "add":
                name = accounts.check_name(args.name)  # before asking for a PIN
                name = staff.add(name, _read_pin(), replace=args.replace, role=args.role)
                emit({"added": name}, f"login {name} can now sign in on the technician screen")
                return EXIT_OK
            case "list":
                rows = staff.list()
                text = "\n".join(
                    f"{r['name']}  {r['role']}{' (disabled)' * r['disabled']}  {r['origin']}"
                    f"  since {_when(r['created_at'])}"
                    for r in rows
                )
                emit({"staff": rows}, text or "no staff logins (only the shared technician PIN)")
                return EXIT_OK
            case "remove":
                removed = staff.remove(args.name)
                emit({"removed": removed}, "removed" if removed else f"no login {args.name!r}")
                return EXIT_OK if removed else EXIT_FAILED
            case "audit":
                rows = accounts.recent(store, limit=args.limit)
                text = "\n".join(
                    f"{_when(r['at'])}  {r['actor']:<16} {r['action']:<17} {r['subject']} {r['kind']}"
                    for r in rows
                )
                emit({"audit": rows}, text or "nothing recorded yet")
                return EXIT_OK
    finally:
        store.close()
    raise BadInput(f"unknown staff command {args.staff_command!r}")


def _read_pin() -> str:
    if sys.stdin.isatty():
        pin = getpass.getpass("PIN (4-12 digits): ")
        if getpass.getpass("Again: ") != pin:
            raise BadInput("hai mã PIN khác nhau (the two PINs differ)")
        return pin
    return sys.stdin.readline().strip()


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds")
