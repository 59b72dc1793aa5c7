"""The technician sign-in: a staff name and PIN (edge/store/staff.py), or the shared technician
PIN hashed in config. 5 wrong tries lock it for 15 minutes (kept in the store, so a restart does
not reset the count). Each try is counted before its PIN is looked at, in one store transaction,
so simultaneous requests never get more tries than are left."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from edge.store.staff import SHARED, StaffAccounts
from web_ui.ports import Kiosk

logger = logging.getLogger(__name__)

FAILURES_KEY = "ui.technician.failures"
LOCKED_UNTIL_KEY = "ui.technician.locked_until"


@dataclass(frozen=True)
class PinResult:
    verdict: str  # "ok", "wrong", "locked", "unset", "malformed"
    tries_left: int = 0
    locked_s: float = 0.0
    actor: str = ""  # who signed in ("ok" only): a staff name or "technician"


@functools.cache
def _decoy_hash() -> str:
    """Checked for an unknown name, so that a wrong name costs as long as a wrong PIN."""
    return generate_password_hash("0000")


class PinGate:
    def __init__(self, kiosk: Kiosk, *, clock: Any = time.time) -> None:
        self.kiosk = kiosk
        self.clock = clock

    @property
    def _ui(self) -> Any:
        return self.kiosk.config.ui

    @property
    def staff(self) -> StaffAccounts:
        return StaffAccounts(self.kiosk.store)

    def available(self) -> bool:
        """Someone can sign in: the shared PIN is set or a staff account exists."""
        return bool(self._ui.technician_pin_hash) or self.staff.any()

    def locked_for(self) -> float:
        return max(0.0, self._get(LOCKED_UNTIL_KEY) - self.clock())

    def check(self, pin: str, name: str = "") -> PinResult:
        """The PIN of `name` (empty: the shared technician PIN)."""
        ui = self._ui
        actor = (name or SHARED).strip().lower()
        expected = ui.technician_pin_hash if actor == SHARED else self.staff.pin_hash(actor)
        if not self.available():
            return PinResult("unset")
        # Count this try first (and lock if it is the last one), then look at the PIN.
        with self.kiosk.store.transaction() as conn:
            now = self.clock()
            locked_until = _number(conn, LOCKED_UNTIL_KEY)
            if locked_until > now:
                return PinResult("locked", 0, locked_until - now)
            failures = int(_number(conn, FAILURES_KEY))
            if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
                return PinResult("malformed", ui.technician_max_tries - failures)
            failures += 1
            last = failures >= ui.technician_max_tries
            if last:
                until = now + ui.technician_lock_min * 60
                _put(conn, LOCKED_UNTIL_KEY, str(until))
                _put(conn, FAILURES_KEY, "0")
            else:
                _put(conn, FAILURES_KEY, str(failures))
        right = check_password_hash(expected or _decoy_hash(), pin) and bool(expected)
        if right:
            with self.kiosk.store.transaction() as conn:
                _put(conn, FAILURES_KEY, "0")
                if last and _number(conn, LOCKED_UNTIL_KEY) == until:
                    _put(conn, LOCKED_UNTIL_KEY, "0")  # the last try was the right one
            logger.info("technician sign-in accepted", extra={"shared_pin": actor == SHARED})
            return PinResult("ok", ui.technician_max_tries, actor=actor)
        if last:
            logger.warning("technician sign-in locked after %d wrong tries", failures)
            return PinResult("locked", 0, until - self.clock())
        logger.warning("wrong technician PIN", extra={"failures": failures})
        return PinResult("wrong", ui.technician_max_tries - failures)

    def _get(self, key: str) -> float:
        value = self.kiosk.store.get_kv(key)
        return _float(value)


def _number(conn: Any, key: str) -> float:
    row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return _float(row[0] if row else None)


def _float(value: str | None) -> float:
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


def _put(conn: Any, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO kv(key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
