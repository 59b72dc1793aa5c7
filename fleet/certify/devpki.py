"""SoftHSM2 tokens for the demo, the bench and the tests: keys made IN the token, certificates
from a root made here. Never for production: real officers' and agencies' keys are on their own
tokens, certified by the official-use CA.

A test root CA stands in for the government's official-use CA (Decree 68/2024/NĐ-CP, "chữ ký số
chuyên dùng công vụ"). It issues an officer's personal certificate and an agency seal
certificate; each key pair is generated inside its own SoftHSM2 token (python-pkcs11, the private
key never leaves it) and the certificate is imported into the token under the key's label. The
root also publishes a CRL (empty) for B-LT.

SoftHSM2 reads SOFTHSM2_CONF once, when the library is first initialised in a process, so every
token is made (softhsm2-util) before the library is loaded, and the whole set lives for the test
session (`shared_pki()`).

`make_pki(folder, development=True)` (the demo) marks the root and the certificates it issues
DEVELOPMENT (protocol.certify.DEVELOPMENT_MARK): kiosks then verify those copies as not valid
(development), whatever root they were told to trust. The tests' PKI is unmarked: it stands in for
the official-use CA, configured as the certification root.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protocol.certify import DEVELOPMENT_MARK

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SO_PIN = "12345678"
PIN = "246810"
ROOT_NAME = "Test official-use root CA (stands in for Ban Cơ yếu)"


@dataclass(frozen=True)
class SoftPki:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    crl: x509.CertificateRevocationList
    officer_cert: x509.Certificate
    agency_cert: x509.Certificate
    officer_token: str
    agency_token: str
    key_label: str
    root_pem: Path
    module: str = MODULE
    pin: str = PIN

    def cert_der(self, cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.DER)


def _name(*, cn: str, org: str, unit: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
    ]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def make_root(
    cn: str = ROOT_NAME, *, development: bool = False
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    org = "Test PKI (not a real CA)"
    name = _name(cn=cn, org=org, unit=DEVELOPMENT_MARK if development else None)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(
    root_key: ec.EllipticCurvePrivateKey,
    root: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    subject: x509.Name,
) -> x509.Certificate:
    """A document-signing certificate (digitalSignature + nonRepudiation), as the CA issues."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=730))
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
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )


def empty_crl(
    root_key: ec.EllipticCurvePrivateKey, root: x509.Certificate
) -> x509.CertificateRevocationList:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=7))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )


def _init_tokens(folder: Path, labels: list[str]) -> None:
    (folder / "tokens").mkdir(parents=True, exist_ok=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n",
        encoding="utf-8",
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    for label in labels:
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--so-pin",
                SO_PIN,
                "--pin",
                PIN,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )


def _key_in_token(token_label: str, key_label: str) -> ec.EllipticCurvePublicKey:
    """An EC P-256 key pair generated inside the token; returns its public half."""
    import pkcs11
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

    token = pkcs11.lib(MODULE).get_token(token_label=token_label)
    with token.open(rw=True, user_pin=PIN) as session:
        params = session.create_domain_parameters(
            KeyType.EC,
            {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
            local=True,
        )
        public, _private = params.generate_keypair(
            store=True, label=key_label, id=key_label.encode()
        )
        key = serialization.load_der_public_key(encode_ec_public_key(public))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TypeError("the token made a key that is not EC")
    return key


def import_cert(token_label: str, label: str, cert: x509.Certificate) -> None:
    import pkcs11
    from pkcs11 import Attribute, CertificateType, ObjectClass

    token = pkcs11.lib(MODULE).get_token(token_label=token_label)
    with token.open(rw=True, user_pin=PIN) as session:
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                Attribute.TOKEN: True,
                Attribute.LABEL: label,
                Attribute.ID: label.encode(),
                Attribute.SUBJECT: cert.subject.public_bytes(),
                Attribute.ISSUER: cert.issuer.public_bytes(),
                Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER),
            }
        )


def make_pki(folder: Path, *, development: bool = False) -> SoftPki:
    """Two tokens (officer, agency), keys inside, certificates from a fresh root; development:
    every certificate marked DEVELOPMENT (the demo)."""
    officer_token, agency_token, key_label = "officer-nva", "agency-seal", "signing"
    _init_tokens(folder, [officer_token, agency_token])
    root_key, root = make_root(
        f"{DEVELOPMENT_MARK} demo root" if development else ROOT_NAME, development=development
    )
    officer = issue(
        root_key,
        root,
        _key_in_token(officer_token, key_label),
        _name(
            cn="Nguyễn Văn An",
            org="UBND phường Tây Hồ",
            unit=f"Phó Chủ tịch {DEVELOPMENT_MARK}" if development else "Phó Chủ tịch",
        ),
    )
    agency = issue(
        root_key,
        root,
        _key_in_token(agency_token, key_label),
        _name(
            cn="Ủy ban nhân dân phường Tây Hồ",
            org="UBND phường Tây Hồ",
            unit=DEVELOPMENT_MARK if development else None,
        ),
    )
    import_cert(officer_token, key_label, officer)
    import_cert(agency_token, key_label, agency)
    root_pem = folder / "root.pem"
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    return SoftPki(
        root_key=root_key,
        root=root,
        crl=empty_crl(root_key, root),
        officer_cert=officer,
        agency_cert=agency,
        officer_token=officer_token,
        agency_token=agency_token,
        key_label=key_label,
        root_pem=root_pem,
    )


_SHARED: dict[str, SoftPki] = {}


def shared_pki(folder: Path) -> SoftPki:
    """One set of tokens per test process (SoftHSM2 reads its configuration once): the first
    caller's folder holds them."""
    if "pki" not in _SHARED:
        _SHARED["pki"] = make_pki(folder)
    return _SHARED["pki"]
