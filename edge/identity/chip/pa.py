"""Passive authentication (ICAO 9303 part 11, 5.1; the SOD: part 10, 4.6.2).

The SOD (tag 77) is a CMS SignedData whose eContent is the LDSSecurityObject: the hash of every
data group. Checked here: the messageDigest attribute equals the hash of the eContent, the
Document Signer's signature over the signed attributes, the Document Signer certificate issued
(signature and dates) by a CSCA of the configured trust list, then each data group read against
its hash in the SOD. Parsing with asn1crypto, every signature and hash with `cryptography`.

The result is a verdict and one stable reason code; never an exception for a bad card.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from asn1crypto import cms, core
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from edge.identity.chip.tlv import TlvError, one

LDS_SECURITY_OBJECT = "2.23.136.1.1.1"  # id-icao-mrtd-security-ldsSecurityObject
DEVELOPMENT_MARK = "DEVELOPMENT"  # in a CSCA's subject: a test anchor (edge.sim.icao_card)
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class DataGroupHash(core.Sequence):
    _fields: ClassVar = [
        ("data_group_number", core.Integer),
        ("data_group_hash_value", core.OctetString),
    ]


class DataGroupHashValues(core.SequenceOf):
    _child_spec = DataGroupHash


class LdsSecurityObject(core.Sequence):
    _fields: ClassVar = [
        ("version", core.Integer),
        ("hash_algorithm", cms.DigestAlgorithm),
        ("data_group_hash_values", DataGroupHashValues),
        ("lds_version_info", core.Any, {"optional": True}),
    ]


@dataclass(frozen=True)
class TrustList:
    """CSCA certificates (PEM or DER files in a directory); empty: passive auth cannot pass."""

    certificates: tuple[x509.Certificate, ...] = ()
    source: str = ""

    @classmethod
    def from_directory(cls, directory: Path | None) -> TrustList:
        if directory is None or not Path(directory).is_dir():
            return cls((), str(directory or ""))
        certs: list[x509.Certificate] = []
        for path in sorted(Path(directory).iterdir()):
            if path.suffix.lower() not in (".pem", ".crt", ".cer", ".der"):
                continue
            data = path.read_bytes()
            try:
                if b"-----BEGIN CERTIFICATE-----" in data:
                    certs.extend(x509.load_pem_x509_certificates(data))
                else:
                    certs.append(x509.load_der_x509_certificate(data))
            except ValueError:
                continue  # not a certificate: skipped, the others still count
        return cls(tuple(certs), str(directory))

    @classmethod
    def of(cls, *ders: bytes) -> TrustList:
        return cls(tuple(x509.load_der_x509_certificate(d) for d in ders), "in memory")


@dataclass(frozen=True)
class Sod:
    hash_algorithm: str
    hashes: dict[int, bytes]
    econtent: bytes
    signed_attrs: bytes | None  # DER as a SET, what the signature covers
    message_digest: bytes | None
    digest_algorithm: str
    signature_algorithm: str
    signature: bytes
    signer: x509.Certificate | None
    sid_issuer: bytes | None = field(default=None)


def parse_sod(data: bytes) -> Sod:
    """EF.SOD to its parts; ValueError when it is not the structure part 10 describes."""
    content = cms.ContentInfo.load(one(data, 0x77))
    if content["content_type"].native != "signed_data":
        raise ValueError("SOD is not a CMS SignedData")
    signed = content["content"]
    encap = signed["encap_content_info"]
    if encap["content_type"].dotted != LDS_SECURITY_OBJECT:
        raise ValueError("eContent is not an LDSSecurityObject")
    econtent = encap["content"].contents
    lds = LdsSecurityObject.load(econtent)
    algo = lds["hash_algorithm"]["algorithm"].native
    dg_hashes = {
        int(item["data_group_number"].native): bytes(item["data_group_hash_value"].native)
        for item in lds["data_group_hash_values"]
    }
    infos = signed["signer_infos"]
    if len(infos) != 1:
        raise ValueError("SOD without exactly one signer")
    info = infos[0]
    attrs = info["signed_attrs"]
    signed_attrs = None
    message_digest = None
    if attrs.native is not None:
        raw = attrs.dump()
        signed_attrs = b"\x31" + raw[1:]  # [0] IMPLICIT -> SET OF, as signed (RFC 5652, 5.4)
        for attr in attrs:
            if attr["type"].native == "message_digest":
                message_digest = bytes(attr["values"][0].native)
    signer = None
    sid = info["sid"]
    certs = [c.chosen for c in signed["certificates"]] if signed["certificates"].native else []
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            if (
                cert.serial_number == sid.chosen["serial_number"].native
                and cert.issuer == sid.chosen["issuer"]
            ):
                signer = x509.load_der_x509_certificate(cert.dump())
        elif cert.key_identifier == sid.chosen.native:
            signer = x509.load_der_x509_certificate(cert.dump())
    return Sod(
        hash_algorithm=algo,
        hashes=dg_hashes,
        econtent=econtent,
        signed_attrs=signed_attrs,
        message_digest=message_digest,
        digest_algorithm=info["digest_algorithm"]["algorithm"].native,
        signature_algorithm=info["signature_algorithm"]["algorithm"].native,
        signature=bytes(info["signature"].native),
        signer=signer,
    )


def _digest(name: str, data: bytes) -> bytes:
    return hashlib.new(name, data).digest()


def _verify_signature(cert: x509.Certificate, sod: Sod, data: bytes) -> bool:
    key = cert.public_key()
    hash_cls = _HASHES.get(sod.digest_algorithm)
    if hash_cls is None:
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sod.signature, data, ec.ECDSA(hash_cls()))
        elif isinstance(key, rsa.RSAPublicKey):
            if sod.signature_algorithm == "rsassa_pss":
                pss = padding.PSS(padding.MGF1(hash_cls()), padding.PSS.AUTO)
                key.verify(sod.signature, data, pss, hash_cls())
            else:
                key.verify(sod.signature, data, padding.PKCS1v15(), hash_cls())
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _valid_at(cert: x509.Certificate, when: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= when <= cert.not_valid_after_utc


@dataclass(frozen=True)
class Verdict:
    passive_auth: str  # "valid" | "invalid"
    reason: str  # "ok" or a stable code
    development: bool = False  # the anchor is a development CSCA (simulation)


def verify(
    sod_bytes: bytes, groups: dict[int, bytes], trust: TrustList, *, now: dt.datetime
) -> Verdict:
    """Passive authentication of the data groups read (number -> the file's bytes)."""

    def bad(reason: str) -> Verdict:
        return Verdict("invalid", reason)

    if not trust.certificates:
        return bad("no_trust_list")
    try:
        sod = parse_sod(sod_bytes)
    except (ValueError, TlvError, KeyError, TypeError):
        return bad("sod_malformed")
    if sod.signer is None:
        return bad("no_signer_certificate")
    if sod.hash_algorithm not in _HASHES or sod.digest_algorithm not in _HASHES:
        return bad("unsupported_algorithm")
    if sod.signed_attrs is None or sod.message_digest is None:
        return bad("no_signed_attributes")
    if not hmac.compare_digest(_digest(sod.digest_algorithm, sod.econtent), sod.message_digest):
        return bad("message_digest_mismatch")
    if not _verify_signature(sod.signer, sod, sod.signed_attrs):
        return bad("bad_signature")
    issuers = [c for c in trust.certificates if c.subject == sod.signer.issuer]
    anchor = None
    for csca in issuers:
        try:
            sod.signer.verify_directly_issued_by(csca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        anchor = csca
        break
    if anchor is None:
        return bad("unknown_csca")
    if not _valid_at(anchor, now):
        return bad("csca_expired")
    if not _valid_at(sod.signer, now):
        return bad("document_signer_expired")
    for number in sorted(groups):
        expected = sod.hashes.get(number)
        if expected is None:
            return bad(f"dg_not_in_sod:DG{number}")
        if not hmac.compare_digest(_digest(sod.hash_algorithm, groups[number]), expected):
            return bad(f"dg_hash_mismatch:DG{number}")
    development = DEVELOPMENT_MARK in anchor.subject.rfc4514_string()
    return Verdict("valid", "ok", development)
