"""Operators: hashed passwords, a command-signing key each (encrypted with the password),
and the signing of commands in the kiosk's format (edge.fleet.sign_command)."""

from __future__ import annotations

import functools
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.security import check_password_hash, generate_password_hash

from fleet.store import FleetStore
from protocol.commands import OPERATOR_ID, sign_command
from protocol.errors import BadInput

MIN_PASSWORD = 10


@functools.cache
def _dummy_hash() -> str:
    """What an unknown operator's password is checked against: same method and cost."""
    return generate_password_hash(secrets.token_urlsafe(16))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()


class LoginRefused(BadInput):
    code = "login_refused"


@dataclass(frozen=True, slots=True)
class Operator:
    id: str
    name: str


def create_operator(store: FleetStore, operator_id: str, name: str, password: str) -> str:
    """A new operator with a fresh P-256 key; returns the public key PEM for kiosks' trust dir."""
    if not OPERATOR_ID.match(operator_id):
        raise BadInput(f"operator id must match {OPERATOR_ID.pattern}")
    if len(password) < MIN_PASSWORD:
        raise BadInput(f"the password needs at least {MIN_PASSWORD} characters")
    if store.operator(operator_id) is not None:
        raise BadInput(f"operator {operator_id} exists already")
    key = ec.generate_private_key(ec.SECP256R1())
    public = _public_pem(key)
    store.add_operator(
        {
            "id": operator_id,
            "name": name,
            "password_hash": generate_password_hash(password),
            "private_key": _encrypted_pem(key, password),
            "public_key": public,
            "created_at": time.time(),
            "disabled": False,
        }
    )
    return public


def set_password(store: FleetStore, operator_id: str, old: str, new: str) -> None:
    row = store.operator(operator_id)
    if row is None or not check_password_hash(row["password_hash"], old):
        raise LoginRefused("wrong operator or password")
    if len(new) < MIN_PASSWORD:
        raise BadInput(f"the password needs at least {MIN_PASSWORD} characters")
    key = _decrypt(row["private_key"], old)
    store.update_operator(
        operator_id,
        password_hash=generate_password_hash(new),
        private_key=_encrypted_pem(key, new),
    )


def _public_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _encrypted_pem(key: ec.EllipticCurvePrivateKey, password: str) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode("utf-8")),
    ).decode()


def _decrypt(pem: str, password: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=password.encode("utf-8"))
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BadInput("the operator's key is not an EC key")
    return key


class KeyRing:
    """Operators' signing keys, unlocked at login and held in memory for the session only.

    The database holds each key encrypted with its operator's password, so a copy of the
    database alone cannot sign commands; a console restart asks operators to log in again.
    Login attempts are counted in the store (docs/fleet-console.md, "Login"): per operator
    and client address, and per address, so they hold across restarts and processes.
    """

    def __init__(
        self,
        *,
        attempts: int = 5,
        address_attempts: int = 20,
        lockout_s: float = 300.0,
        session_s: float = 8 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.attempts = attempts
        self.address_attempts = address_attempts
        self.lockout_s = lockout_s
        self.session_s = session_s  # an unlocked key is dropped this long after login
        self.clock = clock  # wall time: the store's counts outlive this process
        self._keys: dict[str, tuple[str, ec.EllipticCurvePrivateKey, float]] = {}
        self._lock = threading.Lock()

    def login(
        self, store: FleetStore, operator_id: str, password: str, *, address: str = "local"
    ) -> tuple[str, Operator]:
        """Check the password; returns (a handle for the session, the operator).

        The attempt is counted before the password is checked and given back on success,
        and an unknown or disabled operator costs the same hash (a dummy one), so neither
        simultaneous guesses nor timing tell more than one wrong password does.
        """
        by_address = _digest("address", address)
        by_pair = _digest("operator", operator_id, address)
        limits = [(by_address, self.address_attempts), (by_pair, self.attempts)]
        if not store.take_login_attempt(limits, now=self.clock(), window_s=self.lockout_s):
            raise LoginRefused("too many wrong passwords: wait a few minutes")
        row = store.operator(operator_id) if OPERATOR_ID.match(operator_id or "") else None
        usable = row is not None and not row["disabled"]
        matches = check_password_hash(
            row["password_hash"] if row is not None and usable else _dummy_hash(), password
        )
        if row is None or not usable or not matches:
            raise LoginRefused("wrong operator or password")
        store.login_succeeded(refund=by_address, clear=by_pair)
        key = _decrypt(row["private_key"], password)
        handle = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            for old in [h for h, e in self._keys.items() if e[2] <= now]:
                del self._keys[old]
            self._keys[handle] = (operator_id, key, now + self.session_s)
        return handle, Operator(row["id"], row["name"])

    def _entry(self, handle: str | None) -> tuple[str, ec.EllipticCurvePrivateKey] | None:
        with self._lock:
            entry = self._keys.get(handle or "")
            if entry is None:
                return None
            if entry[2] <= time.monotonic():
                del self._keys[handle or ""]
                return None
            return entry[0], entry[1]

    def logout(self, handle: str | None) -> None:
        with self._lock:
            self._keys.pop(handle or "", None)

    def operator_of(self, handle: str | None) -> str | None:
        entry = self._entry(handle)
        return entry[0] if entry else None

    def sign(
        self,
        handle: str,
        name: str,
        args: dict[str, Any],
        *,
        target: str,
        ttl_s: float,
    ) -> dict[str, Any]:
        """A command envelope signed with the session's operator key, for one kiosk."""
        entry = self._entry(handle)
        if entry is None:
            raise LoginRefused("the session has ended: log in again")
        operator_id, key = entry
        return sign_command(key, operator_id, name, args, ttl_s, target=target)
