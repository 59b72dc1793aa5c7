"""Named staff logins (a handle and a hashed PIN) and the audit of what was done under them."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from werkzeug.security import generate_password_hash

from edge.errors import BadInput
from edge.store.db import Store

# The config's shared technician PIN ([ui] technician_pin_hash) signs in under this name; the
# `kiosk` command line on the device acts as "cli". Neither can be a staff account's name.
SHARED = "technician"
CLI = "cli"
NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
PIN = re.compile(r"^[0-9]{4,12}$")


def check_name(name: str) -> str:
    """A login handle: 2-32 lower-case letters, digits, '.', '_' or '-', starting with a letter."""
    handle = name.strip().lower()
    if not NAME.fullmatch(handle):
        raise BadInput(
            "tên đăng nhập: 2-32 chữ thường không dấu, số, '.', '_' hoặc '-' "
            "(login name: 2-32 lower-case letters, digits, '.', '_' or '-', starting with a letter)"
        )
    if handle in (SHARED, CLI):
        raise BadInput(f"tên {handle!r} đã dành riêng (the name {handle!r} is reserved)")
    return handle


def check_pin(pin: str) -> str:
    if not (pin.isascii() and PIN.fullmatch(pin)):
        raise BadInput("mã PIN gồm 4 đến 12 chữ số (a PIN is 4 to 12 digits)")
    return pin


class StaffAccounts:
    """Who may sign in on the technician screen by name. PINs are kept as scrypt hashes only."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def add(self, name: str, pin: str, *, replace: bool = False) -> str:
        handle = check_name(name)
        hashed = generate_password_hash(check_pin(pin))
        with self.store.transaction() as conn:
            try:
                conn.execute(
                    "INSERT INTO staff(name, pin_hash, created_at) VALUES (?, ?, ?)"
                    + (" ON CONFLICT(name) DO UPDATE SET pin_hash = excluded.pin_hash" * replace),
                    (handle, hashed, self.clock()),
                )
            except sqlite3.IntegrityError as err:
                raise BadInput(
                    f"đã có tài khoản {handle!r} (account {handle!r} exists; --replace sets a new PIN)"
                ) from err
        return handle

    def remove(self, name: str) -> bool:
        with self.store.transaction() as conn:
            return (
                conn.execute("DELETE FROM staff WHERE name = ?", (name.strip().lower(),)).rowcount
                > 0
            )

    def list(self) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT name, created_at FROM staff ORDER BY name")
        return [dict(r) for r in rows]

    def any(self) -> bool:
        return bool(self.store.query("SELECT 1 FROM staff LIMIT 1"))

    def pin_hash(self, name: str) -> str | None:
        rows = self.store.query("SELECT pin_hash FROM staff WHERE name = ?", (name,))
        return rows[0][0] if rows else None


def record(
    conn: sqlite3.Connection,
    *,
    at: float,
    actor: str,
    action: str,
    subject: str = "",
    kind: str = "",
) -> None:
    """One audit row, inside the caller's transaction (the act and its record commit together)."""
    conn.execute(
        "INSERT INTO audit(at, actor, action, subject, kind) VALUES (?, ?, ?, ?, ?)",
        (at, actor, action, subject, kind),
    )


def recent(store: Store, *, limit: int = 50) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT seq, at, actor, action, subject, kind FROM audit ORDER BY seq DESC LIMIT ?",
        (limit,),
    )
    return [dict(r) for r in rows]


def actor_class(actor: str) -> str:
    """What a log line may say about who acted: never a staff member's name."""
    return actor if actor in (SHARED, CLI) else "staff"
