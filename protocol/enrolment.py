"""Online enrolment: claim ids, secrets and the HMAC-SHA256 proof both directions carry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

REQUEST_SCHEMA = "provision-request/1"
RESPONSE_SCHEMA = "provision-response/1"
CLAIM_ID = re.compile(r"^c[a-z2-7]{12}$")
SECRET = re.compile(r"^[a-z2-7]{32}$")


def canonical(message: dict[str, Any]) -> bytes:
    """The signed bytes: every member but `proof`, sorted keys, no spaces, UTF-8."""
    body = {k: v for k, v in message.items() if k != "proof"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def proof(message: dict[str, Any], secret: str) -> str:
    digest = hmac.new(secret.encode("ascii"), canonical(message), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def proof_ok(message: dict[str, Any], secret: str) -> bool:
    given = message.get("proof")
    return isinstance(given, str) and hmac.compare_digest(given, proof(message, secret))
