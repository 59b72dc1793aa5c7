"""Verify a copy offline: the PDF's PAdES signature and chain, its QR, and the revocation list.

Verdicts: `valid`, `invalid` (with a reason), `revoked`, `unknown-issuer` (a sound signature by a
key this kiosk's trust store does not know), `development` (sound, but signed with a development
or simulation key: not valid) and `not-certified` (a copy signed by a kiosk only, KC1).

Only a *certified copy* (issue 16: the officer's and the agency's PAdES signatures, the KC2 QR,
protocol.copyqr) can be `valid`: both signatures sound, chaining to a certification root (the
official-use CA, Decree 68/2024) in `trust_dir/certification/*.pem`, never to the kiosk's own or
development CAs, and the QR's content hash matching the pages. The agency seal certificates a
kiosk knows, to check a KC2 QR alone, are in `trust_dir/certification/agencies/*.pem`.

Copies the kiosk signed itself (KC1, edge.copies.sign) are checked as before (signature, chain to
`trust_dir/*.pem`, QR, revocations) but end as `development` when the key is a development one and
`not-certified` otherwise: no competent person certified them (Decree 23/2015 Art. 5, 20).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.copies import qrpayload
from edge.errors import BadInput
from edge.texts import N_, Text, vietnamese
from protocol import copyqr

logger = logging.getLogger(__name__)

Status = Literal["valid", "invalid", "revoked", "unknown-issuer", "development", "not-certified"]

# status -> the verdict's headline (English msgids; Vietnamese in the catalog, edge.texts).
MESSAGES: dict[str, str] = {
    "valid": N_("The copy is valid"),
    "invalid": N_("The copy is NOT valid"),
    "revoked": N_("The copy has been revoked"),
    "unknown-issuer": N_("Where the copy was issued cannot be established"),
    "development": N_(
        "The copy is NOT valid: it was signed with a development or test key and has no legal value"
    ),
    "not-certified": N_(
        "The copy is NOT a certified copy: it was signed by a kiosk only, not by a certifying "
        "officer and agency"
    ),
}
# A verdict's reason (for logs and the JSON answers, in English) -> what the citizen is told,
# when there is more to tell than the headline; other reasons are not shown on the screen.
REASONS: dict[str, str] = {
    "not a KC1 payload": N_("the QR code is not the QR code of a copy"),
    "malformed payload": N_("the QR code is damaged or incomplete"),
    "bad copy code": N_("the copy code in the QR code is not valid"),
    "code and kiosk differ": N_("the copy code and the kiosk in the QR code do not match"),
    "QR signature does not match": N_(
        "the signature in the QR code does not match: the QR code may have been altered"
    ),
    "no trusted certificate for this kiosk": N_("the kiosk that issued it is not known here"),
    "no trusted agency certificate for this QR": N_(
        "the certifying agency is not known to this kiosk"
    ),
}
CERTIFICATION_DIR = "certification"  # under trust_dir: the official-use roots
AGENCIES_DIR = "agencies"  # under trust_dir/certification: agency seal certificates (KC2 QRs)


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    reason: str | None = None
    code: str | None = None
    issued_at: dt.datetime | None = None
    kiosk_id: str | None = None
    pages: int | None = None
    development: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "valid"

    @property
    def text(self) -> Text:
        """The headline for the citizen (the reason, if any, follows it in parentheses)."""
        return Text(MESSAGES[self.status])

    @property
    def reason_text(self) -> Text | None:
        """The reason in words for the citizen (REASONS), or None: never the raw reason."""
        msgid = REASONS.get(self.reason or "")
        return Text(msgid) if msgid else None

    @property
    def message_vi(self) -> str:
        """The headline and the reason in Vietnamese words (the raw reason stays in `reason`;
        one the REASONS table does not know is given as it is, in parentheses)."""
        words = REASONS.get(self.reason or "")
        if words:
            return f"{vietnamese(MESSAGES[self.status])}: {vietnamese(words)}"
        return vietnamese(MESSAGES[self.status]) + (f" ({self.reason})" if self.reason else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "message_vi": self.message_vi,
            "code": self.code,
            "issued_at": self.issued_at.isoformat() if self.issued_at else None,
            "kiosk_id": self.kiosk_id,
            "pages": self.pages,
            "development": self.development,
            **self.details,
        }


def _load_pems(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        logger.warning("trust store file unreadable, skipped", extra={"path": str(path)})
        return []


def common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def _dev(cert: x509.Certificate) -> bool:
    from edge.copies.sign import is_development

    return is_development(cert)


class TrustStore:
    """CA roots and known kiosk certificates, read from disk on each use (central may push)."""

    def __init__(
        self,
        trust_dir: Path,
        revocation_file: Path | None = None,
        *,
        own_cert: x509.Certificate | None = None,
    ) -> None:
        self.trust_dir = trust_dir
        self.revocation_file = revocation_file
        self.own_cert = own_cert

    def roots(self) -> list[x509.Certificate]:
        if not self.trust_dir.is_dir():
            return []
        return [c for p in sorted(self.trust_dir.glob("*.pem")) for c in _load_pems(p)]

    def certification_roots(self) -> list[x509.Certificate]:
        """The official-use CA roots certified copies must chain to (never development ones)."""
        folder = self.trust_dir / CERTIFICATION_DIR
        if not folder.is_dir():
            return []
        found = [c for p in sorted(folder.glob("*.pem")) for c in _load_pems(p)]
        dev = [c for c in found if _dev(c)]
        if dev:
            logger.error("development certificates in the certification roots, ignored")
        return [c for c in found if not _dev(c)]

    def agency_certs(self) -> list[x509.Certificate]:
        """Agency seal certificates (for KC2 QRs) issued by a certification root."""
        folder = self.trust_dir / CERTIFICATION_DIR / AGENCIES_DIR
        if not folder.is_dir():
            return []
        roots = self.certification_roots()
        found = []
        for cert in (c for p in sorted(folder.glob("*.pem")) for c in _load_pems(p)):
            if any(_issued_by(cert, root) for root in roots) and cert not in found:
                found.append(cert)
        return found

    def kiosk_certs(self, kiosk_id: str) -> list[x509.Certificate]:
        """Signing certificates for that kiosk that chain directly to a trusted root."""
        candidates = [self.own_cert] if self.own_cert is not None else []
        kiosks = self.trust_dir / "kiosks"
        if kiosks.is_dir():
            candidates += [c for p in sorted(kiosks.glob("*.pem")) for c in _load_pems(p)]
        roots = self.roots()
        found = []
        for cert in candidates:
            if common_name(cert) != kiosk_id or cert in found:
                continue
            for root in roots:
                try:
                    cert.verify_directly_issued_by(root)
                except (InvalidSignature, ValueError, TypeError):  # not issued by this root
                    continue
                found.append(cert)
                break
        return found

    def revocations(self) -> tuple[dict[str, str], dict[int, dt.datetime | None]]:
        """(revoked codes -> reason, revoked certificate serials -> from when, None = always)."""
        path = self.revocation_file
        if path is None or not path.exists():
            return {}, {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            codes = {}
            for item in data.get("codes", []):
                if isinstance(item, str):
                    codes[item.upper()] = "revoked"
                else:
                    codes[str(item["code"]).upper()] = str(item.get("reason") or "revoked")
            serials: dict[int, dt.datetime | None] = {}
            for item in data.get("certificates", []):
                serial = int(str(item["serial"]), 16)
                when = item.get("revoked_at")
                serials[serial] = _aware(dt.datetime.fromisoformat(when)) if when else None
            return codes, serials
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            logger.error("revocation list unreadable, ignored: %s", err, extra={"path": str(path)})
            return {}, {}


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _aware(when: dt.datetime) -> dt.datetime:
    """A time without a zone is taken as UTC."""
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _revoked(trust: TrustStore, code: str, serial: int, issued_at: dt.datetime) -> str | None:
    codes, serials = trust.revocations()
    if code in codes:
        return f"copy revoked: {codes[code]}"
    if serial in serials:
        since = serials[serial]
        if since is None or issued_at >= since:
            return "signing certificate revoked"
    return None


def _kiosk_signed(cert: x509.Certificate, **base: Any) -> Verdict:
    """What a sound, trusted, unrevoked copy signed by a kiosk key (KC1) is now: never valid."""
    if _dev(cert):
        return Verdict("development", "signed with a development key", **base)
    return Verdict("not-certified", "signed by a kiosk key only", **base)


def verify_qr(text: str, trust: TrustStore) -> Verdict:
    """A scanned QR alone: KC2 (a certified copy: the agency seal's signature), or KC1 (a
    kiosk-signed copy: its signature by a kiosk key this kiosk trusts), and revocations."""
    if copyqr.is_kc2(text):
        return verify_kc2_qr(text, trust)
    try:
        payload = qrpayload.parse(text)
    except BadInput as err:
        return Verdict("invalid", getattr(err, "reason", str(err)))
    base: dict[str, Any] = {
        "code": payload.code.text,
        "issued_at": payload.issued_at,
        "kiosk_id": payload.kiosk_id,
    }
    certs = [
        c
        for c in trust.kiosk_certs(payload.kiosk_id)
        if c.not_valid_before_utc <= payload.issued_at <= c.not_valid_after_utc
    ]
    if not certs:
        return Verdict("unknown-issuer", "no trusted certificate for this kiosk", **base)
    for cert in certs:
        key = cert.public_key()
        if isinstance(key, ec.EllipticCurvePublicKey) and payload.verify(key):
            revoked = _revoked(trust, payload.code.text, cert.serial_number, payload.issued_at)
            if revoked:
                return Verdict("revoked", revoked, development=_dev(cert), **base)
            return _kiosk_signed(cert, development=_dev(cert), **base)
    return Verdict("invalid", "QR signature does not match", **base)


def _cert_facts(
    officer: x509.Certificate | None, agency: x509.Certificate | None
) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    if officer is not None:
        facts["officer"] = common_name(officer)
        titles = officer.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        facts["officer_title"] = str(titles[0].value) if titles else None
    if agency is not None:
        facts["agency"] = common_name(agency)
    return facts


def verify_kc2_qr(text: str, trust: TrustStore) -> Verdict:
    """A certified copy's QR alone: signed by an agency seal key issued by a certification
    root, at a time that certificate was valid; then revocations (by code and serial)."""
    try:
        payload = copyqr.parse(text)
    except copyqr.CopyQrInvalid as err:
        return Verdict("invalid", str(err))
    base: dict[str, Any] = {"code": payload.code, "issued_at": payload.issued_at}
    agencies = trust.agency_certs()
    signer = payload.signer(agencies)
    if signer is None:
        # A sound signature by a certificate we hold but that is not trusted (development)?
        untrusted = _untrusted_agency_certs(trust)
        other = payload.signer(untrusted)
        if other is not None and _dev(other):
            return Verdict("development", "signed with a development key", development=True, **base)
        if not agencies or other is not None:
            return Verdict("unknown-issuer", "no trusted agency certificate for this QR", **base)
        return Verdict("invalid", "QR signature does not match", **base)
    facts = _cert_facts(None, signer) | {"kind": "certified"}
    revoked = _revoked(trust, payload.code, signer.serial_number, payload.issued_at)
    if revoked:
        return Verdict("revoked", revoked, **base, details=facts)
    return Verdict("valid", None, **base, details=facts)


def _untrusted_agency_certs(trust: TrustStore) -> list[x509.Certificate]:
    folder = trust.trust_dir / CERTIFICATION_DIR / AGENCIES_DIR
    if not folder.is_dir():
        return []
    return [c for p in sorted(folder.glob("*.pem")) for c in _load_pems(p)]


def page_image_streams(reader: Any) -> list[bytes]:
    """The JPEG bytes of each page's image, in page order (what the QR's hash covers)."""
    from pyhanko.pdf_utils import generic

    streams: list[bytes] = []

    def walk(node: Any) -> None:
        node = node.get_object() if hasattr(node, "get_object") else node
        if node.get("/Type") == "/Pages":
            for kid in node["/Kids"]:
                walk(kid)
            return
        resources = node.get("/Resources", generic.DictionaryObject()).get_object()
        xobjects = resources.get("/XObject", generic.DictionaryObject()).get_object()
        contents = node["/Contents"].get_object()
        parts = contents if isinstance(contents, generic.ArrayObject) else [contents]
        text = b"".join(part.get_object().data for part in parts)
        # reportlab shares one resource dictionary between pages: take what this page draws.
        images = []
        for name in re.findall(rb"/([^\s/\[\]()<>{}%]+)\s+Do\b", text):
            obj = xobjects.get("/" + name.decode("latin-1"))
            obj = obj.get_object() if obj is not None else None
            if obj is not None and obj.get("/Subtype") == "/Image":
                images.append(obj)
        if len(images) != 1:
            raise ValueError("page does not hold exactly one page image")
        filters = images[0].get("/Filter")
        filters = list(filters) if isinstance(filters, generic.ArrayObject) else [filters]
        if filters != ["/DCTDecode"]:
            raise ValueError("page image is not a plain JPEG stream")
        streams.append(images[0].encoded_data)

    walk(reader.root["/Pages"])
    return streams


def verify_pdf(data: bytes, trust: TrustStore) -> Verdict:
    """The PDF's signature (intact, whole file, chain), then its embedded QR against it."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = reader.embedded_signatures
    except Exception as err:  # pyHanko raises many types on damaged files
        logger.info("copy PDF unreadable: %s", err)
        return Verdict("invalid", "not a readable PDF")
    # pyHanko logs a traceback for every signer it cannot chain; the verdict says it once.
    logging.getLogger("pyhanko.sign.validation.generic_cms").setLevel(logging.ERROR)
    if len(signatures) == 2:
        return verify_certified_pdf(reader, signatures, trust)
    if len(signatures) != 1:
        return Verdict("invalid", "no signature" if not signatures else "too many signatures")
    signature = signatures[0]
    roots = trust.roots()
    context = ValidationContext(
        trust_roots=[_asn1(c) for c in roots], allow_fetching=False, revocation_mode="soft-fail"
    )
    try:
        status = validate_pdf_signature(signature, context)
    except Exception as err:
        logger.info("copy PDF signature unreadable: %s", err)
        return Verdict("invalid", "signature unreadable or document altered")
    if not (status.intact and status.valid):
        return Verdict("invalid", "document altered after signing (signature does not match)")
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        return Verdict("invalid", "document changed after signing")
    signer = x509.load_der_x509_certificate(signature.signer_cert.dump())
    try:
        keywords = str(reader.trailer["/Info"].get_object()["/Keywords"])
        payload = qrpayload.parse(keywords)
    except Exception:  # no Info, no Keywords, or not a KC1 payload
        return Verdict("invalid", "no copy QR payload in the document")
    base: dict[str, Any] = {
        "code": payload.code.text,
        "issued_at": payload.issued_at,
        "kiosk_id": payload.kiosk_id,
        "development": _dev(signer),
        "details": {"level": "PAdES-B-T" if status.timestamp_validity else "PAdES-B-B"},
    }
    if not status.trusted:
        return Verdict("unknown-issuer", "signer not issued by a trusted CA", **base)
    stamp = status.timestamp_validity
    if stamp is not None and not (stamp.intact and stamp.valid):
        return Verdict("invalid", "signature timestamp does not match", **base)
    if stamp is not None and not stamp.trusted:
        return Verdict("unknown-issuer", "timestamp authority not trusted", **base)
    key = signer.public_key()
    if not (isinstance(key, ec.EllipticCurvePublicKey) and payload.verify(key)):
        return Verdict("invalid", "QR not signed by the document's signer", **base)
    if common_name(signer) != payload.kiosk_id:
        return Verdict("invalid", "QR kiosk differs from the signer", **base)
    try:
        streams = page_image_streams(reader)
    except (ValueError, KeyError, AttributeError) as err:
        return Verdict("invalid", f"page content unreadable: {err}", **base)
    if qrpayload.content_hash(streams) != payload.content_hash:
        return Verdict("invalid", "QR does not match the document's pages", **base)
    revoked = _revoked(trust, payload.code.text, signer.serial_number, payload.issued_at)
    if revoked:
        return Verdict("revoked", revoked, pages=len(streams), **base)
    return _kiosk_signed(signer, pages=len(streams), **base)


def _info(reader: Any, key: str) -> str:
    try:
        return str(reader.trailer["/Info"].get_object()[key])
    except Exception:  # no Info dictionary or no such entry
        return ""


def certified_page_streams(reader: Any) -> list[bytes]:
    """The JPEG bytes of the pages as captured (each holds one image); the certification page,
    the last, has none (its QR is drawn as vectors)."""
    from pyhanko.pdf_utils import generic

    kids = reader.root["/Pages"]["/Kids"]
    streams = []
    for number, kid in enumerate(kids):
        page = kid.get_object()
        resources = page.get("/Resources", generic.DictionaryObject()).get_object()
        xobjects = resources.get("/XObject", generic.DictionaryObject()).get_object()
        contents = page["/Contents"].get_object()
        parts = contents if isinstance(contents, generic.ArrayObject) else [contents]
        text = b"".join(part.get_object().data for part in parts)
        images = []
        for name in re.findall(rb"/([^\s/\[\]()<>{}%]+)\s+Do\b", text):
            obj = xobjects.get("/" + name.decode("latin-1"))
            obj = obj.get_object() if obj is not None else None
            if obj is not None and obj.get("/Subtype") == "/Image":
                images.append(obj)
        if number == len(kids) - 1:
            if images:
                raise ValueError("the certification page holds an image")
            break
        if len(images) != 1:
            raise ValueError("a page does not hold exactly one page image")
        filters = images[0].get("/Filter")
        filters = list(filters) if isinstance(filters, generic.ArrayObject) else [filters]
        if filters != ["/DCTDecode"]:
            raise ValueError("page image is not a plain JPEG stream")
        streams.append(images[0].encoded_data)
    return streams


def verify_certified_pdf(reader: Any, signatures: list[Any], trust: TrustStore) -> Verdict:
    """A certified copy: the officer's signature, then the agency seal's (the last); both sound
    and chaining to a certification root; the seal covers the file (B-LT: only validation data
    after it); the KC2 QR signed by the seal's key and matching the pages; revocations."""
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    try:
        payload = copyqr.parse(_info(reader, "/Keywords"))
    except copyqr.CopyQrInvalid:
        return Verdict("invalid", "no certified-copy QR (KC2) in the document")
    base: dict[str, Any] = {"code": payload.code, "issued_at": payload.issued_at}
    subject = _info(reader, "/Subject")
    facts: dict[str, Any] = {"kind": "certified"}
    for fact, label in (("number", "Số chứng thực"), ("book", "Quyển số")):
        match = re.search(rf"{label}: ([^|]+)", subject)
        facts[fact] = match[1].strip() if match else None
    officer_sig, agency_sig = signatures
    certs = [
        x509.load_der_x509_certificate(sig.signer_cert.dump()) for sig in (officer_sig, agency_sig)
    ]
    facts |= _cert_facts(certs[0], certs[1])
    development = any(_dev(c) for c in certs)
    base["development"] = development
    roots = trust.certification_roots()
    context = ValidationContext(
        trust_roots=[_asn1(c) for c in roots], allow_fetching=False, revocation_mode="soft-fail"
    )
    # Timestamp authorities are trusted from the kiosk's general store (and the roots above).
    ts_context = ValidationContext(
        trust_roots=[_asn1(c) for c in [*roots, *trust.roots()]],
        allow_fetching=False,
        revocation_mode="soft-fail",
    )
    levels = []
    for which, sig in (("officer", officer_sig), ("agency", agency_sig)):
        try:
            status = validate_pdf_signature(sig, context, ts_validation_context=ts_context)
        except Exception as err:
            logger.info("certified copy: %s signature unreadable: %s", which, err)
            return Verdict("invalid", f"{which} signature unreadable", **base, details=facts)
        if not (status.intact and status.valid):
            return Verdict("invalid", f"document altered after the {which} signature", **base)
        if (
            status.coverage
            not in (
                SignatureCoverageLevel.ENTIRE_FILE,
                SignatureCoverageLevel.ENTIRE_REVISION,
            )
            or not status.docmdp_ok
        ):
            return Verdict("invalid", f"document changed after the {which} signature", **base)
        if not status.trusted:
            if development:
                return Verdict(
                    "development", "signed with a development key", **base, details=facts
                )
            return Verdict(
                "unknown-issuer",
                f"{which} certificate not issued by a certification root",
                **base,
                details=facts,
            )
        stamp = status.timestamp_validity
        if stamp is not None and not (stamp.intact and stamp.valid and stamp.trusted):
            return Verdict("invalid", f"{which} signature timestamp not valid", **base)
        levels.append("PAdES-B-T" if stamp is not None else "PAdES-B-B")
    if reader.embedded_signatures[-1].field_name != agency_sig.field_name:
        return Verdict("invalid", "the agency seal is not the last signature", **base)
    if development:  # a development cert that chains to a configured root: still not valid
        return Verdict("development", "signed with a development key", **base, details=facts)
    facts["levels"] = levels
    key = certs[1].public_key()
    if not (isinstance(key, ec.EllipticCurvePublicKey) and payload.verify(key)):
        return Verdict("invalid", "QR not signed by the agency seal", **base, details=facts)
    try:
        streams = certified_page_streams(reader)
    except (ValueError, KeyError, AttributeError) as err:
        return Verdict("invalid", f"page content unreadable: {err}", **base, details=facts)
    if copyqr.content_hash(streams) != payload.content_hash:
        return Verdict("invalid", "QR does not match the document's pages", **base, details=facts)
    for cert in certs:
        revoked = _revoked(trust, payload.code, cert.serial_number, payload.issued_at)
        if revoked:
            return Verdict("revoked", revoked, pages=len(streams), **base, details=facts)
    return Verdict("valid", None, pages=len(streams), **base, details=facts)


def _asn1(cert: x509.Certificate) -> Any:
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization

    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def write_revocations(path: Path, data: Any) -> dict[str, Any]:
    """Check and install central's revocation list (atomically); ValueError if malformed."""
    if not isinstance(data, dict):
        raise ValueError("revocations must be an object with 'codes' and 'certificates'")
    codes = data.get("codes", [])
    certificates = data.get("certificates", [])
    if not isinstance(codes, list) or not isinstance(certificates, list):
        raise ValueError("'codes' and 'certificates' must be lists")
    for item in codes:
        code = item.get("code") if isinstance(item, dict) else item
        if not isinstance(code, str):
            raise ValueError("each revoked code is a string or {code, reason}")
    for item in certificates:
        if not isinstance(item, dict) or not isinstance(item.get("serial"), str):
            raise ValueError("each revoked certificate is {serial: hex, revoked_at?: ISO time}")
        int(item["serial"], 16)
        if item.get("revoked_at"):
            dt.datetime.fromisoformat(item["revoked_at"])
    body = {"schema": "copy-revocations/1", "codes": codes, "certificates": certificates}
    from edge.copies.sign import write_file

    write_file(path, json.dumps(body, ensure_ascii=False, indent=1).encode(), 0o644)
    logger.info(
        "revocation list installed",
        extra={"codes": len(codes), "certificates": len(certificates)},
    )
    return {"codes": len(codes), "certificates": len(certificates)}


def _code_key(code: str) -> str:
    return re.sub(r"\s+", "", code).upper()


def _code_entry(item: Any) -> str | None:
    """The normalised code of a `codes` entry (None: not a valid entry)."""
    code = item.get("code") if isinstance(item, dict) else item
    return _code_key(code) if isinstance(code, str) and code.strip() else None


def _serial_entry(item: Any) -> tuple[int, dt.datetime | None] | None:
    """(serial, revoked from when or None = always) of a `certificates` entry (None: not valid)."""
    if not isinstance(item, dict) or not isinstance(item.get("serial"), str):
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{1,40}", item["serial"]):
        return None
    when = item.get("revoked_at")
    try:
        return int(item["serial"], 16), _aware(dt.datetime.fromisoformat(when)) if when else None
    except (TypeError, ValueError):
        return None


def install_revocation_list(path: Path, document: dict[str, Any]) -> dict[str, Any]:
    """Central's retained `copy-revocations/1` (fleet/v1/revocations, checked by
    edge.fleet.inbox.parse_revocation_list) merged into this kiosk's revocation file (the same
    format, without `issued_at`).

    The retained message is not signed, and it only adds: a code or certificate already in the
    file stays (central never withdraws a revocation, and what the signed update-revocations
    command installed must not disappear when the retained list comes again at the next
    connect). Codes are matched in upper case, without spaces; a new code is added as central
    sent it, upper-cased, and a bare code in the file takes central's reason. Certificates are
    matched by serial number (hex of any case or padding); a new one is added, and one already
    in the file only widens: central's earlier `revoked_at`, or none (every copy it signed),
    replaces a later one, never the other way round. Entries in the file that are not valid are
    dropped (the verifier would ignore the whole file for them). Nothing new: no rewrite.
    Returns {"codes": total, "certificates": total, "added": new entries, "written": bool}.
    """
    current: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            current = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError) as err:
            logger.error("revocation list unreadable, replaced: %s", err, extra={"path": str(path)})
    added = changed = dropped = 0

    codes: list[Any] = []
    code_index: dict[str, int] = {}
    old_codes = current.get("codes", [])
    for item in old_codes if isinstance(old_codes, list) else []:
        key = _code_entry(item)
        if key is None or key in code_index:
            dropped += 1
            continue
        code_index[key] = len(codes)
        codes.append(item)
    for entry in document["codes"]:
        key = _code_entry(entry)
        assert key is not None  # the schema requires a code
        reason = (entry.get("reason") or "").strip() if isinstance(entry, dict) else ""
        item = {"code": key, "reason": reason} if reason else key
        if key not in code_index:
            code_index[key] = len(codes)
            codes.append(item)
            added += 1
        elif reason and isinstance(codes[code_index[key]], str):
            codes[code_index[key]] = item  # central's reason for a bare code
            changed += 1

    certificates: list[dict[str, Any]] = []
    cert_index: dict[int, int] = {}
    old_certificates = current.get("certificates", [])
    for source, items in (("file", old_certificates), ("central", document["certificates"])):
        for item in items if isinstance(items, list) else []:
            parsed = _serial_entry(item)
            if parsed is None:
                dropped += 1
                continue
            serial, since = parsed
            if serial not in cert_index:
                cert_index[serial] = len(certificates)
                if source == "central":
                    item = {"serial": item["serial"].lower()} | (
                        {"revoked_at": item["revoked_at"]} if since is not None else {}
                    )
                    added += 1
                certificates.append(item)
                continue
            kept = certificates[cert_index[serial]]
            kept_since = kept.get("revoked_at")
            if kept_since and (
                since is None or since < _aware(dt.datetime.fromisoformat(kept_since))
            ):
                widened = {"serial": kept["serial"]}
                if since is not None:
                    widened["revoked_at"] = item["revoked_at"]
                certificates[cert_index[serial]] = widened  # more of its copies revoked
                changed += 1
            elif source == "file":
                dropped += 1  # a duplicate that revokes no more than the first one
    if dropped:
        logger.warning(
            "revocation file: invalid or duplicate entries dropped", extra={"count": dropped}
        )

    totals = {"codes": len(codes), "certificates": len(certificates)}
    if not (added or changed or dropped) and current.get("schema") == "copy-revocations/1":
        logger.info("central's revocation list unchanged", extra=totals)
        return {**totals, "added": 0, "written": False}
    write_revocations(path, {"codes": codes, "certificates": certificates})
    logger.info("central's revocation list merged", extra={"added": added, **totals})
    return {**totals, "added": added, "written": True}
