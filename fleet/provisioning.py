"""Online enrolment: one-time claim tokens exchanged for client certificates signed by the
center CA. The token is shown once and only its SHA-256 is stored."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge.errors import BadInput
from fleet.store import KIOSK_ID_PATTERN, FleetStore

logger = logging.getLogger(__name__)


class EnrolmentRefused(BadInput):
    """The request cannot be honoured; `reason` is a stable code for the kiosk."""

    code = "enrolment_refused"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def new_token() -> str:
    """20 random base32 characters (100 bits) in groups of 4: typable from a printed sheet."""
    raw = base64.b32encode(secrets.token_bytes(15)).decode().rstrip("=")
    return "-".join(raw[i : i + 4] for i in range(0, 20, 4))


def token_hash(token: str) -> str:
    """What the store keeps: case, spaces and dashes do not matter when the token is typed."""
    normal = "".join(ch for ch in token.upper() if ch.isalnum())
    return hashlib.sha256(normal.encode("ascii", "ignore")).hexdigest()


def create_claim_token(
    store: FleetStore, kiosk_id: str, *, site: str = "", created_by: str, ttl_s: float
) -> str:
    if not KIOSK_ID_PATTERN.match(kiosk_id):
        raise BadInput(f"kiosk id must match {KIOSK_ID_PATTERN.pattern}")
    token = new_token()
    now = time.time()
    store.add_claim_token(
        {
            "token_hash": token_hash(token),
            "kiosk_id": kiosk_id,
            "site": site,
            "created_by": created_by,
            "created_at": now,
            "expires_at": now + ttl_s,
        }
    )
    logger.info("claim token created", extra={"kiosk": kiosk_id, "by": created_by})
    return token


@dataclass(frozen=True, slots=True)
class Issued:
    kiosk_id: str
    site: str
    certificate_pem: str
    ca_pem: str
    serial: str
    not_after: float


class CenterCa:
    """The center CA's certificate and key (files from config)."""

    def __init__(self, cert_path: Path, key_path: Path) -> None:
        self.cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise BadInput("the CA key must be an EC or RSA private key")
        self.key = key
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def sign_client(
        self, csr: x509.CertificateSigningRequest, kiosk_id: str, days: int
    ) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, kiosk_id)]))
            .issuer_name(self.cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )


class Enrolment:
    """Checks a CSR against a claim token and signs it; the token cannot be used twice."""

    def __init__(self, store: FleetStore, ca: CenterCa, *, cert_days: int = 365) -> None:
        self.store = store
        self.ca = ca
        self.cert_days = cert_days

    def enrol(self, token: str, csr_pem: str, *, kiosk_id: str | None = None) -> Issued:
        if not isinstance(token, str) or not token.strip():
            raise EnrolmentRefused("bad_token", "no claim token")
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except (ValueError, TypeError, AttributeError) as err:
            raise EnrolmentRefused("bad_csr", "the CSR is not a PEM certificate request") from err
        if not csr.is_signature_valid:
            raise EnrolmentRefused("bad_csr", "the CSR's signature does not verify")
        key = csr.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise EnrolmentRefused("bad_csr", "the CSR's key must be EC P-256")
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(names[0].value) if len(names) == 1 else ""
        hashed = token_hash(token)
        row = self.store.claim_token(hashed)
        # Check before taking: a CSR for the wrong kiosk must not burn the token.
        if row is None:
            raise EnrolmentRefused("bad_token", "unknown claim token")
        if row["used_at"] is not None:
            raise EnrolmentRefused("token_used", "this claim token was used already")
        if row["expires_at"] <= time.time():
            raise EnrolmentRefused("token_expired", "this claim token has expired")
        if cn != row["kiosk_id"] or (kiosk_id is not None and kiosk_id != row["kiosk_id"]):
            raise EnrolmentRefused(
                "wrong_kiosk", f"the token is for kiosk {row['kiosk_id']}, the CSR names {cn!r}"
            )
        taken = self.store.take_claim_token(hashed, now=time.time())
        if taken is None:  # raced by a second request with the same token
            raise EnrolmentRefused("token_used", "this claim token was used already")
        cert = self.ca.sign_client(csr, taken["kiosk_id"], self.cert_days)
        serial = format(cert.serial_number, "x")
        not_after = cert.not_valid_after_utc.timestamp()
        self.store.certificate_issued(
            token_hash=hashed,
            serial=serial,
            kiosk_id=taken["kiosk_id"],
            site=taken["site"],
            not_after=not_after,
            now=time.time(),
        )
        logger.info("kiosk enrolled", extra={"kiosk": taken["kiosk_id"], "serial": serial})
        return Issued(
            kiosk_id=taken["kiosk_id"],
            site=taken["site"],
            certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            ca_pem=self.ca.pem,
            serial=serial,
            not_after=not_after,
        )
