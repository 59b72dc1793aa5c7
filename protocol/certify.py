"""The certification contract between a kiosk and central's certifier (issue 16).

A kiosk sends each original the citizen brought as one *certification request*: a record of kind
``cert-request`` through its outbox (``<prefix>/<kiosk_id>/records/cert-request``, schema
``cert-request/1``, its data the capture package). The package is signed with the kiosk's device
key (the mTLS key the fleet CA certified), so the officer knows the pages came from a genuine
kiosk camera. Central answers on ``<prefix>/<kiosk_id>/cert`` with ``cert-result/1`` messages:
``queued`` (place and expected wait), then one of ``approved`` (the signed copy),
``refused`` (a reason) or ``see_staff``.

The refusal reasons are those of Decree 23/2015/ND-CP Art. 22 (originals that cannot be the
basis of a certified copy) and three of the workstation's own.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Collection
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

CERT_REQUEST = "cert-request/1"
CERT_RESULT = "cert-result/1"
REQUEST_KIND = "cert-request"  # the record kind, the last level of its topic
RESULT_SUFFIX = "cert"  # <prefix>/<kiosk_id>/cert

STATUSES = ("queued", "approved", "refused", "see_staff")

# In a certificate's subject or issuer: made for development or a demo, never valid for a citizen.
DEVELOPMENT_MARK = "DEVELOPMENT"

# code -> (Vietnamese, English). Art. 22 clauses 1-6 of Decree 23/2015/ND-CP, then ours.
REFUSAL_REASONS: dict[str, tuple[str, str]] = {
    "altered": (
        "Bản chính bị tẩy xóa, sửa chữa, thêm, bớt nội dung không hợp lệ",
        "The original has been erased, corrected, added to or cut without validity",
    ),
    "damaged": (
        "Bản chính bị hư hỏng, cũ nát, không xác định được nội dung",
        "The original is damaged or worn so that its content cannot be made out",
    ),
    "secret": (
        "Bản chính đóng dấu mật hoặc ghi rõ không được sao chụp",
        "The original bears a secrecy mark or says it must not be copied",
    ),
    "unlawful_content": (
        "Bản chính có nội dung trái pháp luật, đạo đức xã hội",
        "The original's content is against the law or social morals",
    ),
    "not_legalised": (
        "Giấy tờ do nước ngoài cấp chưa được hợp pháp hóa lãnh sự",
        "A foreign document that has not been consularly legalised",
    ),
    "self_made": (
        "Giấy tờ cá nhân tự lập không có xác nhận, đóng dấu của cơ quan có thẩm quyền",
        "A document a person drew up without a competent agency's confirmation and seal",
    ),
    "illegible": ("Ảnh chụp không đọc được rõ", "The pages captured cannot be read clearly"),
    "not_original": (
        "Giấy tờ đưa vào không phải bản chính (bản photo hoặc ảnh trên màn hình)",
        "What was captured is not the original (a photocopy or a picture on a screen)",
    ),
    "other": ("Lý do khác", "Another reason"),
}


# Decree 23/2015/ND-CP Art. 7: a copy from an original is certified the day the request is
# received, or the next working day when it is received after 15:00.
LATE_AFTER = dt.time(15, 0)
OFFICE_CLOSES = dt.time(17, 0)


def working_day(day: dt.date, holidays: Collection[dt.date] = ()) -> bool:
    return day.weekday() < 5 and day not in holidays


def deadline(
    received: dt.datetime,
    *,
    holidays: Collection[dt.date] = (),
    closes: dt.time = OFFICE_CLOSES,
) -> dt.datetime:
    """When the certified copy is due (Art. 7), in `received`'s time zone: the close of office on
    the day received, or of the next working day if received after 15:00 or on a day off."""
    day = received.date()
    if not working_day(day, holidays) or received.timetz().replace(tzinfo=None) >= LATE_AFTER:
        day += dt.timedelta(days=1)
        while not working_day(day, holidays):
            day += dt.timedelta(days=1)
    return dt.datetime.combine(day, closes, tzinfo=received.tzinfo)


def result_topic(prefix: str, kiosk_id: str) -> str:
    return f"{prefix}/{kiosk_id}/{RESULT_SUFFIX}"


def canonical(package: dict[str, Any]) -> bytes:
    """The bytes the kiosk signs: the package without its "signature", as sorted compact JSON."""
    body = {k: v for k, v in package.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def package_digest(package: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(package)).hexdigest()


def sign_package(
    package: dict[str, Any], key: ec.EllipticCurvePrivateKey, cert_pem: str
) -> dict[str, Any]:
    """The package with its "signature": ES256 (DER) over canonical(package), and the cert."""
    value = key.sign(canonical(package), ec.ECDSA(hashes.SHA256()))
    signed = dict(package)
    signed["signature"] = {
        "alg": "ES256",
        "value": base64.b64encode(value).decode("ascii"),
        "cert": cert_pem,
    }
    return signed


class PackageInvalid(ValueError):
    """A capture package whose signature or signer does not check out."""


def verify_package(
    package: dict[str, Any], issuers: list[x509.Certificate], kiosk_id: str
) -> x509.Certificate:
    """The signer's certificate, once the signature verifies, the certificate was issued by one
    of `issuers` (the fleet CA) and names `kiosk_id` as its common name; else PackageInvalid."""
    sig = package.get("signature")
    if not isinstance(sig, dict) or sig.get("alg") != "ES256":
        raise PackageInvalid("no ES256 signature")
    try:
        cert = x509.load_pem_x509_certificate(str(sig["cert"]).encode())
        value = base64.b64decode(str(sig["value"]), validate=True)
    except (KeyError, ValueError) as exc:
        raise PackageInvalid(f"unreadable signature: {exc}") from None
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not names or names[0].value != kiosk_id:
        raise PackageInvalid("signed by another kiosk's certificate")
    for issuer in issuers:
        try:
            cert.verify_directly_issued_by(issuer)
            break
        except (ValueError, TypeError, InvalidSignature):
            continue
    else:
        raise PackageInvalid("certificate not issued by the fleet CA")
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise PackageInvalid("not an EC key")
    try:
        public.verify(value, canonical(package), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise PackageInvalid("signature does not match the package") from None
    return cert
