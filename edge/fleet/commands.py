"""Signed fleet commands: envelope checks, operator keys, replay memory, handlers, results."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.client import topic_matches_sub

from edge.errors import BadInput
from edge.store.db import Store
from protocol.commands import (
    COMMAND_ID,
    COMMAND_NAME,
    OPERATOR_ID,
    verify_signature,
)
from protocol.files import write_atomic
from protocol.messages import COMMAND, COMMAND_RESULT, Severity, Topics, iso_time

logger = logging.getLogger(__name__)

MAX_COMMAND_BYTES = 64 * 1024
# update-catalog carries a whole catalog (gzip'd, base64): a few hundred procedures are over
# 64 KiB (docs/services.md, "Keeping the catalog current"); the unpacked size has its own bound.
MAX_BYTES_BY_COMMAND = {"update-catalog": 1024 * 1024}
REQUIRED_FIELDS = frozenset(
    {"schema", "id", "name", "args", "issued_at", "expires_at", "operator", "signature"}
)
OPTIONAL_FIELDS = frozenset({"target", "reply_to"})

CommandHandler = Callable[[dict[str, Any]], "dict[str, Any] | None"]
Reporter = Callable[[str, Severity, dict[str, Any]], None]


class BadArgs(BadInput):
    """Raised by a handler whose arguments make no sense; the command is refused 'bad_args'."""

    code = "bad_args"


@dataclass(frozen=True, slots=True)
class Command:
    """A handler with an optional JSON Schema (draft 2020-12) its args must satisfy."""

    handler: CommandHandler
    args_schema: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to publish for one command message, and where."""

    result: dict[str, Any]
    topic: str
    correlation: bytes | None = None

    @property
    def status(self) -> str:
        return self.result["status"]

    @property
    def reason(self) -> str | None:
        return self.result.get("reason")


class Refused(Exception):
    """Internal: the command is not run, for this reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# --- trust and replay memory ----------------------------------------------------------------


class OperatorKeys:
    """Operator public keys from a directory of PEM files; a file's name is the operator id.

    `nguyen.van.an.pem` holds the key of operator "nguyen.van.an". Files are re-read when they
    change, so adding or removing an operator needs no restart. Only EC P-256 keys are taken.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._cache: dict[str, tuple[tuple[int, int], ec.EllipticCurvePublicKey | None]] = {}
        self._lock = threading.Lock()

    def get(self, operator_id: str) -> ec.EllipticCurvePublicKey | None:
        if self.directory is None or not OPERATOR_ID.match(operator_id):
            return None
        path = self.directory / f"{operator_id}.pem"  # the id pattern admits no "/" or ".."
        try:
            info = path.stat()
        except OSError:
            return None
        stamp = (info.st_mtime_ns, info.st_size)
        with self._lock:
            cached = self._cache.get(operator_id)
            if cached and cached[0] == stamp:
                return cached[1]
            key = _load_operator_key(path)
            self._cache[operator_id] = (stamp, key)
            return key

    def operators(self) -> list[str]:
        if self.directory is None or not self.directory.is_dir():
            return []
        return sorted(
            p.stem
            for p in self.directory.glob("*.pem")
            if OPERATOR_ID.match(p.stem) and self.get(p.stem)
        )


def _load_operator_key(path: Path) -> ec.EllipticCurvePublicKey | None:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as err:
        logger.warning(
            "operator key unreadable, ignored", extra={"path": str(path), "error": str(err)}
        )
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        logger.warning("operator key is not EC P-256, ignored", extra={"path": str(path)})
        return None
    return key


class SeenCommands:
    """Ids of commands already taken, kept (in the kiosk's database) until they expire."""

    TABLE = "fleet_seen_commands"

    def __init__(self, store: Store, *, keep_after_expiry_s: float = 0) -> None:
        self.store = store
        self.keep_after_expiry_s = keep_after_expiry_s
        self._ready = False

    def _ensure_table(self) -> None:
        if self._ready:
            return
        with self.store.transaction() as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.TABLE} ("
                " id TEXT PRIMARY KEY,"  # the command's id
                " expires_at REAL NOT NULL,"  # forget it after this (it cannot run again anyway)
                " seen_at REAL NOT NULL)"
            )
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {self.TABLE}_expiry ON {self.TABLE}(expires_at)"
            )
        self._ready = True

    def remember(self, command_id: str, expires_at: float, *, now: float) -> bool:
        """Record the id; False if it was already there (a replay)."""
        self._ensure_table()
        with self.store.transaction() as conn:
            conn.execute(
                f"DELETE FROM {self.TABLE} WHERE expires_at < ?", (now - self.keep_after_expiry_s,)
            )
            cur = conn.execute(
                f"INSERT OR IGNORE INTO {self.TABLE}(id, expires_at, seen_at) VALUES (?, ?, ?)",
                (command_id, expires_at, now),
            )
            return cur.rowcount == 1

    def count(self) -> int:
        self._ensure_table()
        return self.store.query(f"SELECT COUNT(*) FROM {self.TABLE}")[0][0]


# --- processing one message -----------------------------------------------------------------


@dataclass
class _RefusalBudget:
    """At most `per_minute` refusal events; the rest are counted into the next one."""

    per_minute: int
    window_start: float = 0.0
    used: int = 0
    suppressed: int = field(default=0)

    def take(self, now: float) -> tuple[bool, int]:
        if now - self.window_start >= 60:
            self.window_start, self.used = now, 0
        if self.used >= self.per_minute:
            self.suppressed += 1
            return False, 0
        self.used += 1
        suppressed, self.suppressed = self.suppressed, 0
        return True, suppressed


class CommandProcessor:
    """Turns one message on cmd/<name> into one result; never raises, whatever the bytes."""

    def __init__(
        self,
        *,
        kiosk_id: str,
        topics: Topics,
        commands: Mapping[str, CommandHandler | Command],
        keys: OperatorKeys,
        seen: SeenCommands,
        report: Reporter | None = None,
        clock_skew_s: float = 120.0,
        max_ttl_s: float = 86400.0,
        refusal_events_per_minute: int = 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kiosk_id = kiosk_id
        self.topics = topics
        self.commands = {
            name: spec if isinstance(spec, Command) else Command(spec)
            for name, spec in commands.items()
        }
        self.keys = keys
        self.seen = seen
        self.report = report
        self.clock_skew_s = clock_skew_s
        self.max_ttl_s = max_ttl_s
        self.clock = clock
        self._budget = _RefusalBudget(refusal_events_per_minute)
        self._lock = threading.Lock()

    def process(
        self,
        name: str,
        payload: bytes,
        *,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> Outcome:
        envelope: dict[str, Any] | None = None
        try:
            with self._lock:  # one command at a time: handlers need not be re-entrant
                envelope = _parse(payload, MAX_BYTES_BY_COMMAND.get(name, MAX_COMMAND_BYTES))
                result = self._run(name, envelope)
        except Refused as refusal:
            result = self._refused(name, envelope, refusal)
        except Exception as err:  # a bug here must not take the kiosk down
            logger.exception("command processing failed", extra={"command": name})
            result = self._result(name, envelope, "error", "internal", type(err).__name__)
            self._report("fleet.command_failed", "error", result, envelope)
        return Outcome(result, self._reply_topic(name, envelope, response_topic), correlation)

    # The checks, in order: cheapest and least trusting first; nothing unsigned touches the
    # database; the id is remembered before the handler runs, so a crash mid-run cannot
    # lead to a second run.
    def _run(self, name: str, envelope: dict[str, Any]) -> dict[str, Any]:
        if "signature" not in envelope:
            raise Refused("unsigned", "the command carries no signature")
        issued, expires = _check_shape(envelope)
        if envelope["name"] != name:
            raise Refused("malformed", f"signed for command {envelope['name']!r}, sent to {name!r}")
        target = envelope.get("target")
        if target is not None and target != self.kiosk_id:
            raise Refused("wrong_target", f"signed for kiosk {target!r}")
        key = self.keys.get(envelope["operator"])
        if key is None:
            raise Refused(
                "unknown_operator", f"no trusted key for operator {envelope['operator']!r}"
            )
        if not verify_signature(key, envelope):
            raise Refused("bad_signature", "the signature does not verify")
        now = self.clock()
        if issued - now > self.clock_skew_s:
            raise Refused("not_yet_valid", f"issued {issued - now:.0f} s in the future")
        if now > expires:
            raise Refused("expired", f"expired {now - expires:.0f} s ago")
        if expires - issued > self.max_ttl_s:
            raise Refused(
                "ttl_too_long", f"valid for {expires - issued:.0f} s, at most {self.max_ttl_s:.0f}"
            )
        if not self.seen.remember(envelope["id"], expires, now=now):
            raise Refused("replayed", "this command id was seen before")
        spec = self.commands.get(name)
        if spec is None:
            raise Refused("unknown_command", f"this kiosk has no command {name!r}")
        args = envelope["args"]
        if spec.args_schema is not None:
            try:
                jsonschema.validate(args, spec.args_schema)
            except jsonschema.ValidationError as err:
                raise Refused("bad_args", _short(err.message)) from err
        logger.info(
            "running fleet command",
            extra={"command": name, "command_id": envelope["id"], "operator": envelope["operator"]},
        )
        try:
            value = spec.handler(dict(args))
        except BadArgs as err:
            raise Refused("bad_args", _short(str(err))) from err
        except Exception as err:
            logger.exception("command handler failed", extra={"command": name})
            result = self._result(name, envelope, "error", "handler_failed", _describe(err))
            self._report("fleet.command_failed", "error", result, envelope)
            return result
        if value is None:
            value = {}
        try:
            if not isinstance(value, dict):
                raise TypeError(f"handler returned {type(value).__name__}, not a dict")
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as err:
            result = self._result(name, envelope, "error", "handler_failed", _describe(err))
            self._report("fleet.command_failed", "error", result, envelope)
            return result
        return self._result(name, envelope, "ok", None, "", value)

    def _refused(
        self, name: str, envelope: dict[str, Any] | None, refusal: Refused
    ) -> dict[str, Any]:
        logger.warning(
            "fleet command refused",
            extra={"command": name, "reason": refusal.reason, "detail": refusal.message},
        )
        result = self._result(name, envelope, "refused", refusal.reason, refusal.message)
        self._report("fleet.command_refused", "warning", result, envelope)
        return result

    def _result(
        self,
        name: str,
        envelope: dict[str, Any] | None,
        status: str,
        reason: str | None,
        message: str,
        value: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        command_id = envelope.get("id") if envelope else None
        return {
            "schema": COMMAND_RESULT,
            "kiosk_id": self.kiosk_id,
            "id": command_id
            if isinstance(command_id, str) and COMMAND_ID.match(command_id)
            else None,
            "name": name,
            "status": status,
            "reason": reason,
            "message": message,
            "result": value or {},
            "time": iso_time(),
        }

    def _report(
        self,
        kind: str,
        severity: Severity,
        result: dict[str, Any],
        envelope: dict[str, Any] | None,
    ) -> None:
        if self.report is None:
            return
        send, suppressed = self._budget.take(self.clock())
        if not send:
            return
        operator = envelope.get("operator") if envelope else None
        detail = {
            "command_id": result["id"],
            "name": result["name"],
            "reason": result["reason"],
            "message": result["message"],
            "operator": operator
            if isinstance(operator, str) and OPERATOR_ID.match(operator)
            else None,
        }
        if suppressed:
            detail["suppressed"] = suppressed
        try:
            self.report(kind, severity, detail)
        except Exception:
            logger.exception("reporting a command outcome failed")

    def _reply_topic(
        self, name: str, envelope: dict[str, Any] | None, response_topic: str | None
    ) -> str:
        """MQTT 5 response topic, else the envelope's reply_to, else cmd/<name>/result.

        Only result topics in this kiosk's own tree are honoured: the ACL allows nothing else,
        and an unsigned property must not make the kiosk publish somewhere surprising.
        """
        allowed = self.topics.command_result("+")
        reply_to = envelope.get("reply_to") if envelope else None
        for candidate in (response_topic, reply_to):
            if (
                isinstance(candidate, str)
                and candidate
                and "+" not in candidate
                and "#" not in candidate
                and topic_matches_sub(allowed, candidate)
            ):
                return candidate
        return self.topics.command_result(name)


def _parse(payload: bytes, limit: int = MAX_COMMAND_BYTES) -> dict[str, Any]:
    if len(payload) > limit:
        raise Refused("malformed", f"larger than {limit} bytes")
    try:
        text = payload.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise Refused("malformed", f"not JSON: {_short(str(err))}") from err
    if not isinstance(value, dict):
        raise Refused("malformed", "not a JSON object")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers may pick different copies of a duplicated key: what is verified must be
    # exactly what runs, so duplicates are refused outright.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_shape(envelope: dict[str, Any]) -> tuple[float, float]:
    """Field set and types; returns (issued_at, expires_at) as POSIX times."""
    missing = REQUIRED_FIELDS - envelope.keys()
    if missing:
        raise Refused("malformed", f"missing {', '.join(sorted(missing))}")
    extra = envelope.keys() - REQUIRED_FIELDS - OPTIONAL_FIELDS
    if extra:
        raise Refused("malformed", f"unexpected {', '.join(sorted(map(str, extra)))[:200]}")
    if envelope["schema"] != COMMAND:
        raise Refused("malformed", f"schema must be {COMMAND!r}")
    checks = (
        ("id", COMMAND_ID),
        ("name", COMMAND_NAME),
        ("operator", OPERATOR_ID),
    )
    for key, pattern in checks:
        value = envelope[key]
        if not isinstance(value, str) or not pattern.match(value):
            raise Refused("malformed", f"{key} must match {pattern.pattern}")
    for key in ("issued_at", "expires_at", "signature", *OPTIONAL_FIELDS):
        if key in envelope and not isinstance(envelope[key], str):
            raise Refused("malformed", f"{key} must be a string")
    if not isinstance(envelope["args"], dict):
        raise Refused("malformed", "args must be an object")
    issued = _timestamp(envelope, "issued_at")
    expires = _timestamp(envelope, "expires_at")
    if expires <= issued:
        raise Refused("malformed", "expires_at is not after issued_at")
    return issued, expires


def _timestamp(envelope: dict[str, Any], key: str) -> float:
    try:
        value = dt.datetime.fromisoformat(envelope[key])
    except ValueError as err:
        raise Refused("malformed", f"{key} is not an ISO 8601 time") from err
    if value.tzinfo is None:
        raise Refused("malformed", f"{key} has no time zone")
    try:
        stamp = value.timestamp()
    except (OverflowError, ValueError, OSError) as err:
        raise Refused("malformed", f"{key} is out of range") from err
    if not math.isfinite(stamp):
        raise Refused("malformed", f"{key} is out of range")
    return stamp


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(err: BaseException) -> str:
    return _short(f"{type(err).__name__}: {err}")


def write_public_key(key: ec.EllipticCurvePrivateKey, trust_dir: Path, operator_id: str) -> Path:
    """Operator tools and tests: install an operator's public key into a kiosk's trust dir."""
    if not OPERATOR_ID.match(operator_id):
        raise BadInput(f"operator id {operator_id!r} must match {OPERATOR_ID.pattern}")
    path = trust_dir / f"{operator_id}.pem"
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_atomic(path, pem, 0o644, dir_mode=0o755)
    return path
