"""Named staff logins (a handle and a hashed PIN) and the audit of what was done under them."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from werkzeug.security import generate_password_hash

from edge.errors import BadInput
from edge.store.db import Store
from protocol.staff import (
    CENTRAL,
    CLI,
    ROLES,
    SHARED,
    check_central,
    check_name,
    check_pin,
)


class StaffAccounts:
    """Who may sign in on the technician screen by name. PINs are kept as scrypt hashes only."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def add(self, name: str, pin: str, *, replace: bool = False, role: str = "technician") -> str:
        handle = check_name(name)
        hashed = generate_password_hash(check_pin(pin))
        if role not in ROLES:
            raise BadInput(f"vai trò: {' | '.join(ROLES)} (role: {' | '.join(ROLES)})")
        with self.store.transaction() as conn:
            try:
                conn.execute(
                    "INSERT INTO staff(name, pin_hash, created_at, role) VALUES (?, ?, ?, ?)"
                    + (
                        " ON CONFLICT(name) DO UPDATE SET pin_hash = excluded.pin_hash,"
                        " role = excluded.role, disabled = 0"
                    )
                    * replace,
                    (handle, hashed, self.clock(), role),
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
        rows = self.store.query(
            "SELECT name, created_at, role, disabled, origin FROM staff ORDER BY name"
        )
        return [{**dict(r), "disabled": bool(r["disabled"])} for r in rows]

    def any(self) -> bool:
        return bool(self.store.query("SELECT 1 FROM staff WHERE disabled = 0 LIMIT 1"))

    def pin_hash(self, name: str) -> str | None:
        found = self.account(name)
        return found[0] if found else None

    def account(self, name: str) -> tuple[str, str] | None:
        """(PIN hash, role) of an account that may sign in; None if unknown or disabled."""
        rows = self.store.query(
            "SELECT pin_hash, role FROM staff WHERE name = ? AND disabled = 0", (name,)
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def set_central(self, accounts: Any, *, actor: str) -> dict[str, Any]:
        """Central's list of accounts (the signed set-staff command) replaces every account
        that came from central, in one transaction with its audit rows: all or nothing. Local
        accounts (`kiosk staff add`) stay unless the list names them (central then owns them).
        Each entry: {name, pin_hash (a werkzeug hash made centrally), role, disabled}."""
        wanted = check_central(accounts)
        now = self.clock()
        with self.store.transaction() as conn:
            before = {
                r[0]: (r[1], r[2], bool(r[3]))
                for r in conn.execute(
                    "SELECT name, pin_hash, role, disabled FROM staff WHERE origin = 'central'"
                )
            }
            removed = sorted(set(before) - {a["name"] for a in wanted})
            for name in removed:
                conn.execute("DELETE FROM staff WHERE name = ?", (name,))
                record(conn, at=now, actor=actor, action="staff.removed", subject=name)
            changed = []
            for a in wanted:
                state = (a["pin_hash"], a["role"], a["disabled"])
                if before.get(a["name"]) == state:
                    continue
                conn.execute(
                    "INSERT INTO staff(name, pin_hash, created_at, role, disabled, origin) "
                    "VALUES (?, ?, ?, ?, ?, 'central') ON CONFLICT(name) DO UPDATE SET "
                    "pin_hash = excluded.pin_hash, role = excluded.role, "
                    "disabled = excluded.disabled, origin = 'central'",
                    (a["name"], a["pin_hash"], now, a["role"], int(a["disabled"])),
                )
                action = "staff.disabled" if a["disabled"] else "staff.set"
                record(conn, at=now, actor=actor, action=action, subject=a["name"], kind=a["role"])
                changed.append(a["name"])
        return {"accounts": len(wanted), "changed": changed, "removed": removed}


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
    return actor if actor in (SHARED, CLI, CENTRAL) else "staff"
