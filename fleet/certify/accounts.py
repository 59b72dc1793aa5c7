"""The certification workstation's accounts: password + TOTP logins, lockout, sessions.

Passwords are hashed as the console's operators' are (werkzeug, fleet/operators.py). The TOTP
secret is sealed in the store; a code is good once (the officer's last used time step is kept)
and five failed logins in a row lock the account for `lockout_s`. A session's officer and the
PIN of the officer's signing token live only in this process's memory (Sessions), never in the
cookie, the store or a log; they go at logout, at the idle timeout, and when the process ends.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyotp
from werkzeug.security import check_password_hash, generate_password_hash

from fleet.store import FleetStore
from protocol.errors import BadInput

MIN_PASSWORD = 10
MAX_FAILURES = 5
ROLES = ("officer", "admin")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
AGENCY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ISSUER = "Kiosk TTHC chứng thực"


class LoginRefused(BadInput):
    code = "login_refused"


@dataclass(frozen=True, slots=True)
class Officer:
    username: str
    full_name: str
    title: str
    agency: str
    role: str


@functools.cache
def _dummy_hash() -> str:
    """What an unknown officer's password is checked against: same method and cost."""
    return generate_password_hash(secrets.token_urlsafe(16))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()


def provisioning_uri(username: str, secret: str, *, issuer: str = ISSUER) -> str:
    """otpauth:// URI for an authenticator app (RFC 6238: SHA-1, 6 digits, 30 s)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def create_officer(
    store: FleetStore,
    username: str,
    *,
    full_name: str,
    title: str,
    agency: str,
    role: str,
    password: str,
    token_label: str = "",
    key_label: str = "",
    now: float | None = None,
) -> str:
    """A new officer or admin; returns the TOTP provisioning URI (shown once)."""
    if not USERNAME.match(username):
        raise BadInput(f"username must match {USERNAME.pattern}")
    if not AGENCY.match(agency):
        raise BadInput(f"agency must match {AGENCY.pattern}")
    if role not in ROLES:
        raise BadInput(f"role must be one of {', '.join(ROLES)}")
    if not full_name.strip() or not title.strip():
        raise BadInput("the full name and the title are printed on copies: give both")
    if len(password) < MIN_PASSWORD:
        raise BadInput(f"the password needs at least {MIN_PASSWORD} characters")
    if role == "officer" and not key_label:
        raise BadInput("an officer needs the label of the signing key on their token")
    if store.officer(username) is not None:
        raise BadInput(f"officer {username} exists already")
    secret = pyotp.random_base32()
    store.add_officer(
        {
            "username": username,
            "full_name": full_name.strip(),
            "title": title.strip(),
            "agency": agency,
            "role": role,
            "password_hash": generate_password_hash(password),
            "token_label": token_label,
            "key_label": key_label,
            "active": True,
            "failed_logins": 0,
            "locked_until": None,
            "last_totp_step": None,
            "created_at": time.time() if now is None else now,
        },
        totp_secret=secret,
    )
    return provisioning_uri(username, secret)


class Accounts:
    """Checks logins against the store: password, then TOTP; counts failures."""

    def __init__(
        self,
        store: FleetStore,
        *,
        lockout_s: float = 900.0,
        address_attempts: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.lockout_s = lockout_s
        self.address_attempts = address_attempts
        self.clock = clock

    def login(self, username: str, password: str, code: str, *, address: str) -> Officer:
        """The officer, or LoginRefused (one message for every wrong part, so a guess tells
        nothing about which part was wrong; "locked" and "too many" say so)."""
        now = self.clock()
        by_address = _digest("officer-address", address)
        if not self.store.take_login_attempt(
            [(by_address, self.address_attempts)], now=now, window_s=self.lockout_s
        ):
            raise LoginRefused("too many attempts from this address: wait a few minutes")
        username = (username or "").strip().lower()
        row = self.store.officer(username) if USERNAME.match(username) else None
        usable = row is not None and row["active"]
        good_password = check_password_hash(
            row["password_hash"] if row is not None and usable else _dummy_hash(), password
        )
        if row is None or not usable:
            raise LoginRefused("wrong username, password or code")
        if row["locked_until"] is not None and row["locked_until"] > now:
            raise LoginRefused("locked after too many failed logins: wait or ask an admin")
        step = self._totp_step(username, code, now) if good_password else None
        if step is None:
            self.store.officer_failed_login(
                username, now=now, limit=MAX_FAILURES, lockout_s=self.lockout_s
            )
            raise LoginRefused("wrong username, password or code")
        if not self.store.officer_logged_in(username, step=step):
            # The code was used already (replayed, or two logins at once): a failure too.
            self.store.officer_failed_login(
                username, now=now, limit=MAX_FAILURES, lockout_s=self.lockout_s
            )
            raise LoginRefused("wrong username, password or code")
        self.store.login_succeeded(refund=by_address, clear="")
        return Officer(username, row["full_name"], row["title"], row["agency"], row["role"])

    def _totp_step(self, username: str, code: str, now: float) -> int | None:
        """The time step `code` belongs to (now, or one step either side for clock drift)."""
        code = (code or "").strip().replace(" ", "")
        if not re.fullmatch(r"\d{6}", code):
            return None
        secret = self.store.totp_secret(username)
        if secret is None:
            return None
        totp = pyotp.TOTP(secret)
        here = totp.timecode(_utc(now))
        found = None
        for step in (here - 1, here, here + 1):
            if secrets.compare_digest(totp.generate_otp(step), code):
                found = step
        return found


def _utc(now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, tz=dt.UTC)


@dataclass(slots=True)
class _Session:
    officer: Officer
    pin: str
    last_seen: float
    ends: float


class Sessions:
    """Logged-in officers by an opaque handle (the only thing the cookie holds), with the PIN
    of each one's signing token; dropped at logout, after idle_s without a request, or
    session_s after login."""

    def __init__(
        self,
        *,
        idle_s: float = 15 * 60,
        session_s: float = 10 * 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s = idle_s
        self.session_s = session_s
        self.clock = clock
        self._by_handle: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def open(self, officer: Officer, pin: str) -> str:
        handle = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._expire(now)
            self._by_handle[handle] = _Session(officer, pin, now, now + self.session_s)
        return handle

    def _expire(self, now: float) -> None:
        for handle in [h for h, s in self._by_handle.items() if not self._alive(s, now)]:
            self._drop(handle)

    def _alive(self, s: _Session, now: float) -> bool:
        return now < s.ends and now - s.last_seen < self.idle_s

    def _drop(self, handle: str) -> None:
        s = self._by_handle.pop(handle, None)
        if s is not None:
            s.pin = ""

    def get(self, handle: str | None, *, touch: bool = True) -> Officer | None:
        """The session's officer, or None (unknown, ended or idle too long: then dropped)."""
        now = self.clock()
        with self._lock:
            s = self._by_handle.get(handle or "")
            if s is None:
                return None
            if not self._alive(s, now):
                self._drop(handle or "")
                return None
            if touch:
                s.last_seen = now
            return s.officer

    def pin(self, handle: str | None) -> str | None:
        with self._lock:
            s = self._by_handle.get(handle or "")
            return s.pin if s is not None and self._alive(s, self.clock()) else None

    def close(self, handle: str | None) -> Officer | None:
        with self._lock:
            s = self._by_handle.get(handle or "")
            self._drop(handle or "")
            return s.officer if s is not None else None

    def close_officer(self, username: str) -> None:
        """End every session of an officer (disabled by an admin)."""
        with self._lock:
            for handle in [h for h, s in self._by_handle.items() if s.officer.username == username]:
                self._drop(handle)

    def __len__(self) -> int:
        with self._lock:
            self._expire(self.clock())
            return len(self._by_handle)
