"""Staff sign-in: a staff name and PIN (edge/store/staff.py), or the shared technician PIN hashed
in config. 5 wrong tries lock one counter for 15 minutes, kept in the store (a restart does not
reset it). Each try is counted before its PIN is looked at, in one store transaction, so
simultaneous requests never get more tries than are left.

The counters are per place and per account, so no one locks out someone else:
- place "login" (the technician screen) and "prompt" (the citizen-facing staff prompt on the
  identity step) count apart: wrong PINs typed on the citizen's screen never lock the technician
  screen, for the shared PIN or for any named account;
- each account has its own counter; the shared technician PIN has its own;
- a name that is not an account (or a disabled one) gets a counter of its own as a real one
  does (one of 256 "unknown" counters per place, picked by a hash of the name: the kv table
  stays bounded and the typed name is not stored), so the prompt answers a real and an unknown
  name alike: the same messages, the same "tries left", a PIN hash checked either way. Tries
  on an unknown name can never sign in, and lock no real account.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from edge.store.staff import SHARED, StaffAccounts
from web_ui.ports import Kiosk

logger = logging.getLogger(__name__)

# The shared technician PIN on the technician screen (the keys from before named counters).
FAILURES_KEY = "ui.technician.failures"
LOCKED_UNTIL_KEY = "ui.technician.locked_until"
PLACES = ("login", "prompt")
UNKNOWN = "*unknown"  # cannot be an account's name (those start with a letter)
UNKNOWN_BUCKETS = 256


def unknown_counter(name: str) -> str:
    """The counter of a name that is no account: UNKNOWN and one of 256 buckets."""
    digest = hashlib.sha256(b"kiosk-edge/pin-name|" + name.encode()).digest()
    return f"{UNKNOWN}-{digest[0] % UNKNOWN_BUCKETS:02x}"


@dataclass(frozen=True)
class PinResult:
    verdict: str  # "ok", "wrong", "locked", "unset", "malformed"
    tries_left: int = 0
    locked_s: float = 0.0
    actor: str = ""  # who signed in ("ok" only): a staff name or "technician"
    role: str = ""  # "ok" only: "staff" or "technician" (the shared PIN is a technician)


@functools.cache
def _decoy_hash() -> str:
    """Checked for an unknown name, so that a wrong name costs as long as a wrong PIN."""
    return generate_password_hash("0000")


def counter_keys(place: str, who: str) -> tuple[str, str]:
    """The kv keys (failures, locked until) of one counter: `who` is an account's name, SHARED
    or an unknown_counter()."""
    if place not in PLACES:
        raise ValueError(place)
    if place == "login" and who == SHARED:
        return FAILURES_KEY, LOCKED_UNTIL_KEY
    return f"ui.pin.{place}.{who}.failures", f"ui.pin.{place}.{who}.locked_until"


class PinGate:
    def __init__(self, kiosk: Kiosk, *, clock: Any = time.time, place: str = "login") -> None:
        if place not in PLACES:
            raise ValueError(place)
        self.kiosk = kiosk
        self.clock = clock
        self.place = place
        _decoy_hash()  # made now: the first unknown name must not cost a hash more

    @property
    def _ui(self) -> Any:
        return self.kiosk.config.ui

    @property
    def staff(self) -> StaffAccounts:
        return StaffAccounts(self.kiosk.store)

    def available(self) -> bool:
        """Someone can sign in: the shared PIN is set or a staff account exists."""
        return bool(self._ui.technician_pin_hash) or self.staff.any()

    def locked_for(self, name: str = "") -> float:
        """Seconds the counter `name` (empty: the shared PIN) is still locked here."""
        _, until_key = counter_keys(self.place, self._who(name.strip().lower() or SHARED)[0])
        return max(0.0, self._get(until_key) - self.clock())

    def _who(self, actor: str) -> tuple[str, str | None, str]:
        """(counter, expected PIN hash or None, role) for a typed name."""
        if actor == SHARED:
            return SHARED, self._ui.technician_pin_hash or None, "technician"
        found = self.staff.account(actor)
        if found is None:
            return unknown_counter(actor), None, ""
        return actor, found[0], found[1]

    def check(self, pin: str, name: str = "") -> PinResult:
        """The PIN of `name` (empty: the shared technician PIN)."""
        ui = self._ui
        actor = (name or SHARED).strip().lower()
        who, expected, role = self._who(actor)
        if not self.available():
            return PinResult("unset")
        failures_key, until_key = counter_keys(self.place, who)
        # Count this try first (and lock if it is the last one), then look at the PIN.
        with self.kiosk.store.transaction() as conn:
            now = self.clock()
            locked_until = _number(conn, until_key)
            if locked_until > now:
                return PinResult("locked", 0, locked_until - now)
            failures = int(_number(conn, failures_key))
            if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
                return PinResult("malformed", ui.technician_max_tries - failures)
            failures += 1
            last = failures >= ui.technician_max_tries
            if last:
                until = now + ui.technician_lock_min * 60
                _put(conn, until_key, str(until))
                _put(conn, failures_key, "0")
            else:
                _put(conn, failures_key, str(failures))
        right = check_password_hash(expected or _decoy_hash(), pin) and bool(expected)
        kind = "shared" if who == SHARED else ("unknown" if who.startswith(UNKNOWN) else "named")
        if right:
            with self.kiosk.store.transaction() as conn:
                _put(conn, failures_key, "0")
                if last and _number(conn, until_key) == until:
                    _put(conn, until_key, "0")  # the last try was the right one
            logger.info(
                "staff sign-in accepted",
                extra={"shared_pin": who == SHARED, "place": self.place, "role": role},
            )
            return PinResult("ok", ui.technician_max_tries, actor=actor, role=role)
        # The log names the kind of counter, never the typed name (it may be a person's).
        if last:
            logger.warning(
                "staff sign-in locked after %d wrong tries",
                failures,
                extra={"place": self.place, "counter": kind},
            )
            return PinResult("locked", 0, until - self.clock())
        logger.warning(
            "wrong staff PIN", extra={"failures": failures, "place": self.place, "counter": kind}
        )
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
