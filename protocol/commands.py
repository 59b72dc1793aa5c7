"""Signed fleet commands: the canonical bytes, the operator's signature and its check."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from protocol.errors import BadInput
from protocol.messages import COMMAND

COMMAND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
COMMAND_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
OPERATOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# Why a command was not run; the result's `reason` is one of these (schemas/command-result.json).
REASONS = (
    "malformed",  # not JSON, not an object, a field missing, extra or of the wrong type
    "unsigned",  # no signature field
    "unknown_operator",  # no trusted key under that operator id
    "bad_signature",  # the signature does not verify with the operator's key
    "wrong_target",  # signed for another kiosk
    "not_yet_valid",  # issued_at is in the future beyond the allowed clock skew
    "expired",  # expires_at has passed
    "ttl_too_long",  # valid for longer than the kiosk accepts
    "replayed",  # this id ran (or was refused after its signature checked) before
    "unknown_command",  # no handler for this name
    "bad_args",  # args do not fit the command
    "handler_failed",  # status "error": the handler raised
    "internal",  # status "error": a bug in this module; reported, never raised
)


def canonical_bytes(envelope: Mapping[str, Any]) -> bytes:
    """The signed bytes: the envelope without `signature`, as canonical UTF-8 JSON.

    json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False), encoded UTF-8.
    docs/fleet.md spells this out for operator tools written in other languages.
    """
    unsigned = {k: v for k, v in envelope.items() if k != "signature"}
    return json.dumps(
        unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sign_command(
    private_key: ec.EllipticCurvePrivateKey,
    operator_id: str,
    name: str,
    args: dict[str, Any] | None = None,
    ttl_s: float = 300,
    *,
    target: str | None = None,
    command_id: str | None = None,
    issued_at: float | None = None,
    reply_to: str | None = None,
) -> dict[str, Any]:
    """Reference operator side: a signed command envelope, ready for json.dumps and publish.

    target: the kiosk id this command is for. Without it the signature is valid on any kiosk
    that trusts the operator, so a command captured from one kiosk could be replayed on another.
    """
    now = time.time() if issued_at is None else issued_at
    envelope: dict[str, Any] = {
        "schema": COMMAND,
        "id": command_id or str(uuid.uuid4()),
        "name": name,
        "args": args or {},
        "issued_at": _rfc3339(now),
        "expires_at": _rfc3339(now + ttl_s),
        "operator": operator_id,
    }
    if target is not None:
        envelope["target"] = target
    if reply_to is not None:
        envelope["reply_to"] = reply_to
    signature = private_key.sign(canonical_bytes(envelope), ec.ECDSA(hashes.SHA256()))
    envelope["signature"] = base64.b64encode(signature).decode("ascii")
    return envelope


def _rfc3339(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds")


def verify_signature(key: ec.EllipticCurvePublicKey, envelope: dict[str, Any]) -> bool:
    """True if the envelope's signature (DER, or raw r || s) verifies with this key."""
    try:
        signature = base64.b64decode(envelope["signature"], validate=True)
        message = canonical_bytes(envelope)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False
    candidates = [signature]
    if len(signature) == 64:  # raw r || s (IEEE P1363, what WebCrypto gives) besides DER
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        candidates.insert(0, encode_dss_signature(r, s))
    for candidate in candidates:
        try:
            key.verify(candidate, message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            continue
        return True
    return False


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Operator tools: read an unencrypted PEM EC private key."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BadInput(f"{path} is not an EC private key")
    return key
