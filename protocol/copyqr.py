"""The certified copy's QR ("KC2"): central's verification URL that also carries an offline signature.

    HTTPS://<HOST>/V/<CODE>/<UNIX TIME>/<CONTENT HASH, base32>/<SIGNATURE r||s, base32>

Everything is in the QR alphanumeric set (0-9 A-Z space $ % * + - . / :), so the code stays small
(tests/test_certify_copy.py measures the version and the printed size). Opened in a phone it is
central's public verification page (`/v/<code>/...`: central must accept the path in upper
case); a kiosk reads it offline: the signature is the agency seal key's (ECDSA P-256, SHA-256)
over the ASCII bytes of the URL up to, not including, the last '/', so host, code, time and hash
are all covered. The content hash is SHA-256 over the SHA-256 of each page image as embedded in
the PDF (the JPEG bytes), in page order, the same rule as KC1. Base32 is RFC 4648's alphabet
without '=' padding. The agency's certificate is not in the QR: a verifier tries the agency
certificates it trusts.

Shared by central (fleet.certify.copy, which makes it) and kiosks (edge.copies.verify).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

VERSION = "KC2"
_HOST = r"[A-Z0-9](?:[A-Z0-9.-]{0,62}[A-Z0-9])?(?::[0-9]{1,5})?"
_CODE = r"[A-Z0-9](?:[A-Z0-9-]{2,58}[A-Z0-9])"
_URL = re.compile(
    rf"HTTPS://(?P<host>{_HOST})/V/(?P<code>{_CODE})/(?P<time>[0-9]{{9,11}})"
    r"/(?P<hash>[A-Z2-7]{52})/(?P<sig>[A-Z2-7]{103})"
)


class CopyQrInvalid(ValueError):
    """Not a KC2 QR, or a malformed one (the message says which)."""


def b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=")


def unb32(text: str) -> bytes:
    return base64.b32decode(text + "=" * (-len(text) % 8))


def content_hash(page_streams: Sequence[bytes]) -> bytes:
    """SHA-256 over the SHA-256 of each page image (JPEG bytes as embedded), in order."""
    return hashlib.sha256(b"".join(hashlib.sha256(s).digest() for s in page_streams)).digest()


@dataclass(frozen=True, slots=True)
class CopyQr:
    host: str
    code: str
    issued_at: dt.datetime  # UTC, whole seconds
    content_hash: bytes
    signature: bytes  # r||s, 64 bytes
    signed_part: bytes
    text: str

    def verify(self, public_key: ec.EllipticCurvePublicKey) -> bool:
        r = int.from_bytes(self.signature[:32], "big")
        s = int.from_bytes(self.signature[32:], "big")
        try:
            public_key.verify(
                encode_dss_signature(r, s), self.signed_part, ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            return False
        return True

    def signer(self, certificates: Iterable[x509.Certificate]) -> x509.Certificate | None:
        """The first certificate (EC P-256, valid at the QR's time) whose key signed it."""
        for cert in certificates:
            key = cert.public_key()
            if not isinstance(key, ec.EllipticCurvePublicKey):
                continue
            if not cert.not_valid_before_utc <= self.issued_at <= cert.not_valid_after_utc:
                continue
            if self.verify(key):
                return cert
        return None


def normalise_host(host: str) -> str:
    host = host.strip().upper().removeprefix("HTTPS://").rstrip("/")
    if not re.fullmatch(_HOST, host):
        raise ValueError(f"not a host name the QR alphanumeric set can carry: {host!r}")
    return host


def build(
    *,
    host: str,
    code: str,
    issued_at: dt.datetime,
    digest: bytes,
    sign_raw: Callable[[bytes], bytes],
) -> str:
    """The QR text. sign_raw(data) returns the ECDSA P-256/SHA-256 signature as r||s (64 bytes,
    what a PKCS#11 token's CKM_ECDSA gives over the SHA-256 digest)."""
    if len(digest) != 32:
        raise ValueError("content hash must be a SHA-256 digest")
    code = code.strip().upper()
    if not re.fullmatch(_CODE, code):
        raise ValueError(f"copy code not in the QR's set: {code!r}")
    signed = f"HTTPS://{normalise_host(host)}/V/{code}/{int(issued_at.timestamp())}/{b32(digest)}"
    signature = sign_raw(signed.encode("ascii"))
    if len(signature) != 64:
        raise ValueError("the signature must be r||s, 64 bytes")
    return f"{signed}/{b32(signature)}"


def parse(text: str) -> CopyQr:
    """A scanned KC2 QR (any case, surrounding blanks ignored)."""
    upper = text.strip().upper()
    match = _URL.fullmatch(upper)
    if not match:
        raise CopyQrInvalid("not a KC2 copy QR" if "/V/" not in upper else "malformed KC2 QR")
    signature = unb32(match["sig"])
    digest = unb32(match["hash"])
    if len(signature) != 64 or len(digest) != 32:
        raise CopyQrInvalid("malformed KC2 QR")
    return CopyQr(
        host=match["host"],
        code=match["code"],
        issued_at=dt.datetime.fromtimestamp(int(match["time"]), dt.UTC),
        content_hash=digest,
        signature=signature,
        signed_part=upper[: upper.rindex("/")].encode("ascii"),
        text=upper,
    )


def is_kc2(text: str) -> bool:
    return _URL.fullmatch(text.strip().upper()) is not None
