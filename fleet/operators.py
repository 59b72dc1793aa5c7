"""Operators: hashed passwords, a command-signing key each (encrypted with the password),
and the signing of commands in the kiosk's format (edge.fleet.sign_command)."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.security import check_password_hash, generate_password_hash

from edge.errors import BadInput
from edge.fleet.commands import OPERATOR_ID, sign_command
from fleet.store import FleetStore

MIN_PASSWORD = 10


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
    """

    def __init__(
        self, *, attempts: int = 5, lockout_s: float = 300.0, session_s: float = 8 * 3600
    ) -> None:
        self.attempts = attempts
        self.lockout_s = lockout_s
        self.session_s = session_s  # an unlocked key is dropped this long after login
        self._keys: dict[str, tuple[str, ec.EllipticCurvePrivateKey, float]] = {}
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def login(self, store: FleetStore, operator_id: str, password: str) -> tuple[str, Operator]:
        """Check the password; returns (a handle for the session, the operator)."""
        now = time.monotonic()
        with self._lock:
            count, since = self._failures.get(operator_id, (0, now))
            if count >= self.attempts and now - since < self.lockout_s:
                raise LoginRefused("too many wrong passwords: wait a few minutes")
        row = store.operator(operator_id) if OPERATOR_ID.match(operator_id or "") else None
        if (
            row is None
            or row["disabled"]
            or not check_password_hash(row["password_hash"], password)
        ):
            with self._lock:
                count, since = self._failures.get(operator_id, (0, now))
                if now - since >= self.lockout_s:
                    count, since = 0, now
                self._failures[operator_id] = (count + 1, since)
            raise LoginRefused("wrong operator or password")
        key = _decrypt(row["private_key"], password)
        handle = secrets.token_urlsafe(24)
        with self._lock:
            self._failures.pop(operator_id, None)
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
