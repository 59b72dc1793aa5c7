"""PAdES signatures (B-B; B-T with a timestamp authority) by the kiosk's ECDSA P-256 key.

In simulation (`copies.development_ca`) a development CA and a kiosk signing certificate are
made on first run; both say DEVELOPMENT in their names and copies signed with them carry a
"not legally valid" line.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge import config as cfg
from edge.errors import KioskError
from edge.pki import self_signed_ca
from edge.texts import Text
from protocol.certify import DEVELOPMENT_MARK
from protocol.files import write_atomic

if TYPE_CHECKING:
    from pyhanko.sign.signers import SimpleSigner

logger = logging.getLogger(__name__)

DEV_MARK = DEVELOPMENT_MARK
DEV_CA_NAME = "kiosk-edge DEVELOPMENT e-copy CA (not for production)"
SIGNATURE_FIELD = "KioskSignature"


class SigningUnavailable(KioskError):
    """No usable signing key or certificate: copies cannot be issued."""

    code = "signing_unavailable"

    def __init__(self, message: str, *, text: Text | None = None) -> None:
        # `text`, when given, is what the citizen is told (message_vi: it in Vietnamese).
        super().__init__(message)
        self.text = text
        self.message_vi = text.vi if text else None


@dataclass(frozen=True, slots=True)
class CopyPaths:
    """Where the copies' files are, defaults filled in from the state dir."""

    signing_key: Path
    signing_cert: Path
    chain: Path | None
    trust_dir: Path
    revocation_file: Path
    sequence_floor: Path
    dev_dir: Path

    @classmethod
    def from_config(cls, config: cfg.Config) -> CopyPaths:
        c, base = config.copies, config.storage.state_dir / "copies"
        return cls(
            signing_key=c.signing_key or base / "signing" / "kiosk.key",
            signing_cert=c.signing_cert or base / "signing" / "kiosk.crt",
            chain=c.chain,
            trust_dir=c.trust_dir or base / "trust",
            revocation_file=c.revocation_file or base / "revoked.json",
            sequence_floor=c.sequence_floor or base / "sequence.floor",
            dev_dir=base / "dev-ca",
        )


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Atomically (temporary file, fsync, rename, directory fsync), with this mode."""
    write_atomic(path, data, mode)


def _name(common: str, unit: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"kiosk-edge {DEV_MARK}"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def make_ca(
    common_name: str, *, years: int = 10
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name(common_name, "e-copy CA")
    cert = self_signed_ca(
        key,
        name,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=365 * years),
    )
    return key, cert


def issue_signing_cert(
    kiosk_id: str,
    public_key: ec.EllipticCurvePublicKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    *,
    years: int = 3,
) -> x509.Certificate:
    """A kiosk's document-signing certificate: CN = kiosk id, digitalSignature + nonRepudiation."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(kiosk_id, "e-copy signing"))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365 * years))
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
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def ensure_development_identity(paths: CopyPaths, kiosk_id: str) -> bool:
    """First run in simulation: a development CA (trusted locally) and a kiosk certificate.
    True when they were made now."""
    if paths.signing_key.exists() and paths.signing_cert.exists():
        return False
    ca_key, ca_cert = make_ca(DEV_CA_NAME)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue_signing_cert(kiosk_id, key.public_key(), ca_key, ca_cert)
    write_file(paths.dev_dir / "ca.key", pem_key(ca_key), 0o600)
    write_file(paths.dev_dir / "ca.pem", pem_cert(ca_cert), 0o644)
    write_file(paths.trust_dir / "development-ca.pem", pem_cert(ca_cert), 0o644)
    write_file(paths.signing_key, pem_key(key), 0o600)
    write_file(paths.signing_cert, pem_cert(cert), 0o644)
    logger.warning(
        "created a DEVELOPMENT CA and kiosk signing certificate: copies are not legally valid",
        extra={"dir": str(paths.dev_dir)},
    )
    return True


def is_development(cert: x509.Certificate) -> bool:
    return any(DEV_MARK in a.value for a in cert.subject) or any(
        DEV_MARK in a.value for a in cert.issuer
    )


class KioskSigner:
    """The kiosk's signing key and certificate; signs PDFs (pyHanko) and QR payloads."""

    def __init__(
        self,
        key_path: Path,
        cert_path: Path,
        *,
        chain_path: Path | None = None,
        tsa_url: str | None = None,
    ) -> None:
        self.key_path = key_path
        self.cert_path = cert_path
        self.chain_path = chain_path
        self.tsa_url = tsa_url
        self._signer: SimpleSigner | None = None
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._cert: x509.Certificate | None = None

    def load(self) -> None:
        from pyhanko.sign import signers

        try:
            key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        except (OSError, ValueError) as err:
            raise SigningUnavailable(
                f"signing key or certificate unusable ({self.key_path}, {self.cert_path}): {err}"
            ) from err
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise SigningUnavailable("the signing key must be ECDSA P-256")
        cert_key = cert.public_key()
        if (
            not isinstance(cert_key, ec.EllipticCurvePublicKey)
            or key.public_key().public_numbers() != cert_key.public_numbers()
        ):
            raise SigningUnavailable("the signing certificate is not for the signing key")
        chain = (str(self.chain_path),) if self.chain_path else ()
        signer = signers.SimpleSigner.load(
            str(self.key_path), str(self.cert_path), ca_chain_files=chain
        )
        if signer is None:  # pyHanko logs why and returns None (e.g. an unreadable chain file)
            raise SigningUnavailable(f"signing material unusable (chain: {self.chain_path})")
        self._signer, self._key, self._cert = signer, key, cert

    def _loaded(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, SimpleSigner]:
        if self._key is None or self._cert is None or self._signer is None:
            self.load()
        # load() sets all three or raises
        assert self._key is not None and self._cert is not None and self._signer is not None
        return self._key, self._cert, self._signer

    @property
    def certificate(self) -> x509.Certificate:
        return self._loaded()[1]

    @property
    def development(self) -> bool:
        return is_development(self.certificate)

    @property
    def level(self) -> str:
        return "PAdES-B-T" if self.tsa_url else "PAdES-B-B"

    def sign_bytes(self, data: bytes) -> bytes:
        """ECDSA P-256 / SHA-256, DER signature (the QR turns it into r||s)."""
        return self._loaded()[0].sign(data, ec.ECDSA(hashes.SHA256()))

    def sign_pdf(self, pdf: bytes, *, code: str, location: str) -> bytes:
        from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
        from pyhanko.sign import fields, signers
        from pyhanko.sign.fields import SigSeedSubFilter

        signer = self._loaded()[2]
        timestamper = None
        if self.tsa_url:
            from pyhanko.sign.timestamps import HTTPTimeStamper

            timestamper = HTTPTimeStamper(self.tsa_url)
        meta = signers.PdfSignatureMetadata(
            field_name=SIGNATURE_FIELD,
            subfilter=SigSeedSubFilter.PADES,
            md_algorithm="sha256",
            reason=f"Chứng thực bản sao điện tử {code}",
            location=location,
            use_pades_lta=False,
        )
        out = io.BytesIO()
        signers.PdfSigner(
            meta,
            signer=signer,
            timestamper=timestamper,
            new_field_spec=fields.SigFieldSpec(SIGNATURE_FIELD),
        ).sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), output=out)
        return out.getvalue()
