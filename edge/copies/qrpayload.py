"""The copy's QR payload: compact, signed by the kiosk key, verifiable offline by anyone.

    KC1:<code>:<kiosk_id>:<unix time>:<sha256 of the page images, base32>:<ECDSA r||s, base32>

Every character is in the QR alphanumeric set (0-9 A-Z - :), so the code stays small (version 8
at ECC level M, 49 modules: 57 mm wide at 6 dots a module fits 58 mm paper). The signature is
ECDSA P-256 with SHA-256 over the ASCII bytes before the last ':'. Base32 is RFC 4648's
alphabet without '=' padding. docs/ecopy.md has the full description.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from edge.copies.code import CopyCode, CopyRefused, parse_code
from edge.errors import BadInput
from edge.texts import N_, Text

VERSION = "KC1"
_PAYLOAD = re.compile(
    r"KC1:(?P<code>[A-Z0-9-]{10,60}):(?P<kiosk>[A-Z0-9][A-Z0-9-]{1,31}):(?P<time>[0-9]{9,11})"
    r":(?P<hash>[A-Z2-7]{52}):(?P<sig>[A-Z2-7]{103})"
)


def b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=")


def unb32(text: str) -> bytes:
    return base64.b32decode(text + "=" * (-len(text) % 8))


def content_hash(page_streams: Sequence[bytes]) -> bytes:
    """SHA-256 over the SHA-256 of each page image as embedded in the PDF (JPEG bytes), in order."""
    return hashlib.sha256(b"".join(hashlib.sha256(s).digest() for s in page_streams)).digest()


class QrInvalid(CopyRefused):
    """A QR text that is not a copy's payload, or whose parts disagree."""

    code = "qr_invalid"

    def __init__(self, reason: str) -> None:
        # The reason stays on the screen, as it always has (it says which check failed).
        super().__init__(
            Text(
                N_("The QR code is not that of a valid certified copy (%(reason)s)"),
                {"reason": reason},
            ),
            reason,
        )
        self.reason = reason


@dataclass(frozen=True, slots=True)
class QrPayload:
    code: CopyCode
    kiosk_id: str
    issued_at: dt.datetime  # UTC
    content_hash: bytes
    signature: bytes  # r||s, 64 bytes
    signed_part: bytes
    text: str

    def verify(self, public_key: ec.EllipticCurvePublicKey) -> bool:
        r, s = (
            int.from_bytes(self.signature[:32], "big"),
            int.from_bytes(self.signature[32:], "big"),
        )
        try:
            public_key.verify(
                encode_dss_signature(r, s), self.signed_part, ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            return False
        return True


def build(
    code: CopyCode,
    issued_at: dt.datetime,
    digest: bytes,
    sign: Callable[[bytes], bytes],
) -> str:
    """The payload; sign() returns a DER ECDSA signature of the bytes it is given."""
    if len(digest) != 32:
        raise ValueError("content hash must be a SHA-256 digest")
    when = int(issued_at.timestamp())
    signed = f"{VERSION}:{code.text}:{code.kiosk_id}:{when}:{b32(digest)}"
    r, s = decode_dss_signature(sign(signed.encode("ascii")))
    return f"{signed}:{b32(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def parse(text: str) -> QrPayload:
    """Read a payload out of scanned text (anything before 'KC1:', e.g. a URL, is ignored)."""
    at = text.strip().upper().find(VERSION + ":")
    if at < 0:
        raise QrInvalid("not a KC1 payload")
    payload = text.strip().upper()[at:]
    match = _PAYLOAD.fullmatch(payload)
    if not match:
        raise QrInvalid("malformed payload")
    try:
        code = parse_code(match["code"])
    except BadInput as err:
        raise QrInvalid("bad copy code") from err
    if code.kiosk_id != match["kiosk"]:
        raise QrInvalid("code and kiosk differ")
    issued_at = dt.datetime.fromtimestamp(int(match["time"]), dt.UTC)
    return QrPayload(
        code=code,
        kiosk_id=match["kiosk"],
        issued_at=issued_at,
        content_hash=unb32(match["hash"]),
        signature=unb32(match["sig"]),
        signed_part=payload.rsplit(":", 1)[0].encode("ascii"),
        text=payload,
    )
