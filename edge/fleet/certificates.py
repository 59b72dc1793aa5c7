"""Certificate rotation, kiosk side: a new key made on the device, a CSR out, the signed
certificate checked and installed. The private key never leaves the kiosk."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from protocol.files import fsync_dir, write_atomic

logger = logging.getLogger(__name__)

PENDING_KEY = "pending-client.key"
EXPIRY_WARNING_DAYS = 30


class CertificateRefused(ValueError):
    """The certificate offered for installation does not fit this kiosk."""


def certificate_info(cert_file: Path, *, now: dt.datetime | None = None) -> dict[str, Any] | None:
    """Subject, serial, validity and days left of the installed client certificate."""
    if not cert_file.exists():
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except ValueError as err:
        return {"error": f"unreadable: {err}"}
    now = now or dt.datetime.now(dt.UTC)
    left = cert.not_valid_after_utc - now
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    days = left.total_seconds() / 86400
    if days <= 0:
        warning = "Chứng thư đã hết hạn / the certificate has expired: re-provision or rotate it"
    elif days < EXPIRY_WARNING_DAYS:
        warning = (
            f"Chứng thư sắp hết hạn ({int(days)} ngày) / the certificate expires in "
            f"{int(days)} days: rotate it (fleet command rotate-certificate) or re-provision"
        )
    else:
        warning = None
    return {
        "subject": str(names[0].value) if names else "",
        "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_left": round(days, 1),
        "warning": warning,
    }


def start_rotation(state_dir: Path, kiosk_id: str) -> str:
    """Make (or reuse) the pending key and return a CSR (PEM) naming this kiosk."""
    path = state_dir / "pki" / PENDING_KEY
    if path.exists():
        key = _load_pending_key(path)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        _write_secret(path, _pem_key(key))
        logger.info("new client key generated for certificate rotation")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, kiosk_id)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _load_pending_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The pending key start_rotation made: always an EC key, anything else is not ours."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateRefused(f"{path} is not an EC key (not one this kiosk made)")
    return key


def _spki(key: PublicKeyTypes) -> bytes:
    """A public key as DER SubjectPublicKeyInfo: comparable whatever its algorithm."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def install_certificate(
    certificate_pem: str,
    *,
    state_dir: Path,
    kiosk_id: str,
    ca_file: Path,
    cert_file: Path,
    key_file: Path,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Check the signed certificate against the pending key, this kiosk and the fleet CA,
    then replace the client key and certificate (each with a .bak)."""
    pending = state_dir / "pki" / PENDING_KEY
    if not pending.exists():
        raise CertificateRefused("no rotation in progress (send rotate-certificate first)")
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError as err:
        raise CertificateRefused(f"not a PEM certificate: {err}") from err
    key = _load_pending_key(pending)
    if _spki(cert.public_key()) != _spki(key.public_key()):
        raise CertificateRefused("the certificate is not for this kiosk's pending key")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or names[0].value != kiosk_id:
        raise CertificateRefused(f"the certificate does not name kiosk {kiosk_id}")
    ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError) as err:
        raise CertificateRefused("the certificate is not signed by the fleet CA") from err
    now = now or dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        raise CertificateRefused("the certificate is not valid now")
    for path in (cert_file, key_file):
        if path.exists():
            shutil.copy2(path, path.with_name(path.name + ".bak"))
    _write_secret(key_file, pending.read_bytes())
    _write_public(cert_file, certificate_pem.encode())
    pending.unlink()
    fsync_dir(pending.parent)
    logger.warning("client certificate rotated", extra={"serial": format(cert.serial_number, "x")})
    return {
        "installed": True,
        "serial": format(cert.serial_number, "x"),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_secret(path: Path, data: bytes) -> None:
    _atomic_write(path, data, 0o600)


def _write_public(path: Path, data: bytes) -> None:
    _atomic_write(path, data, 0o644)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    write_atomic(path, data, mode)
