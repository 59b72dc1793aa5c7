"""The CCCD QR payload: parse, cross-check against the ID number's structure, refuse clearly.

Payload (PRODUCT.md section 5): `id|old_id|name|ddmmyyyy|Nam or Nữ|address|ddmmyyyy`, extra
trailing fields (newer cards) accepted and kept aside. The rules, each with its stable `rule`
code, are listed in docs/identity-qr.md.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from edge.errors import BadInput
from edge.identity.provinces import PROVINCES
from edge.text import invisible

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
SEPARATOR = "|"
BASIC_FIELDS = 7
# A real payload is about 150 characters; this only stops absurd input early.
MAX_PAYLOAD_CHARS = 2048
SEXES = ("Nam", "Nữ")

Sex = Literal["Nam", "Nữ"]

_ID = re.compile(r"[0-9]{12}")
_OLD_ID = re.compile(r"[0-9]{9}")
_DATE = re.compile(r"[0-9]{8}")

INVALID_QR_VI = "Mã QR trên thẻ không hợp lệ"

# rule -> (reason for the citizen, reason for the log). Neither may ever quote the payload.
REASONS: dict[str, tuple[str, str]] = {
    "encoding": ("nội dung không đọc được", "payload bytes are not UTF-8"),
    "too_long": ("nội dung quá dài", f"payload longer than {MAX_PAYLOAD_CHARS} characters"),
    "bad_characters": (
        "nội dung chứa ký tự không hợp lệ",
        "payload contains control or surrogate characters",
    ),
    "invisible_characters": (
        "nội dung chứa ký tự ẩn (ký tự đảo chiều chữ hoặc ký tự độ rộng bằng 0)",
        "payload contains invisible format characters (Unicode Cf: bidi controls, zero-width)",
    ),
    "field_count": (
        "nội dung thiếu trường thông tin",
        f"fewer than {BASIC_FIELDS} '|'-separated fields",
    ),
    "id_digits": (
        "số định danh cá nhân phải gồm đúng 12 chữ số",
        "ID number is not exactly 12 ASCII digits",
    ),
    "province": (
        "mã tỉnh trong số định danh cá nhân không tồn tại",
        "the ID number's first 3 digits are not a province code",
    ),
    "dob_date": (
        "ngày sinh không phải là một ngày có thật",
        "date of birth is not a real ddmmyyyy date",
    ),
    "sex_value": ("giới tính phải là Nam hoặc Nữ", "sex field is neither 'Nam' nor 'Nữ'"),
    "century_sex": (
        "số định danh cá nhân không khớp với giới tính hoặc thế kỷ sinh",
        "the ID number's 4th digit does not match the sex and century of birth",
    ),
    "birth_year": (
        "số định danh cá nhân không khớp với năm sinh",
        "the ID number's digits 5-6 differ from the birth year",
    ),
    "issue_date": (
        "ngày cấp không phải là một ngày có thật",
        "issue date is not a real ddmmyyyy date",
    ),
    "issue_before_birth": ("ngày cấp phải sau ngày sinh", "issue date is not after the birth date"),
    "issue_in_future": ("ngày cấp nằm trong tương lai", "issue date is in the future"),
    "old_id": ("số CMND cũ phải gồm đúng 9 chữ số", "old ID is neither empty nor 9 ASCII digits"),
    "empty_name": ("thiếu họ và tên", "name is empty"),
    "empty_address": ("thiếu nơi thường trú", "permanent address is empty"),
}


class CardError(BadInput):
    """The card could not be used. message_vi is for the citizen, message_en (also str()) for
    the log; neither carries personal data."""

    code = "card_error"

    def __init__(self, message_vi: str, message_en: str) -> None:
        super().__init__(message_en)
        self.message_vi = message_vi
        self.message_en = message_en


class CccdInvalid(CardError):
    """The QR payload breaks one rule; `rule` is the stable machine code of the first broken."""

    code = "cccd_invalid"

    def __init__(self, rule: str) -> None:
        reason_vi, reason_en = REASONS[rule]
        super().__init__(
            f"{INVALID_QR_VI}: {reason_vi}.", f"CCCD QR payload invalid ({rule}): {reason_en}"
        )
        self.rule = rule


@dataclass(frozen=True, slots=True, repr=False)
class CccdCard:
    """A validated CCCD payload. Personal data: keep in RAM for the session, never log it."""

    id_number: str
    old_id: str | None
    name: str
    date_of_birth: dt.date
    sex: Sex
    address: str
    issue_date: dt.date
    extra_fields: tuple[str, ...] = ()

    @property
    def province_code(self) -> str:
        return self.id_number[:3]

    @property
    def province(self) -> str:
        """Where the birth was registered, by the name the province had when coded."""
        return PROVINCES[self.province_code]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id_number": self.id_number,
            "name": self.name,
            "date_of_birth": self.date_of_birth.isoformat(),
            "sex": self.sex,
            "address": self.address,
            "issue_date": self.issue_date.isoformat(),
            "old_id": self.old_id,
        }

    def to_payload(self) -> str:
        """The payload as the card would encode it (extra fields included)."""
        fields = [
            self.id_number,
            self.old_id or "",
            self.name,
            self.date_of_birth.strftime("%d%m%Y"),
            self.sex,
            self.address,
            self.issue_date.strftime("%d%m%Y"),
            *self.extra_fields,
        ]
        return SEPARATOR.join(fields)

    def __repr__(self) -> str:
        # A card that ends up in a log line or a traceback must not spill the citizen's data.
        return "CccdCard(<personal data hidden>)"


def today_vn() -> dt.date:
    return dt.datetime.now(VN_TZ).date()


def parse_cccd(payload: str | bytes, *, today: dt.date | None = None) -> CccdCard:
    """Parse and validate a CCCD QR payload; raise CccdInvalid naming the first broken rule.

    `today` (default: today in Asia/Ho_Chi_Minh) bounds the issue date.
    """
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise CccdInvalid("encoding") from None
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise CccdInvalid("too_long")
    text = unicodedata.normalize("NFC", payload).removeprefix("\ufeff").strip()
    fields = [field.strip() for field in text.split(SEPARATOR)]
    # After stripping, so the CR/LF a keyboard-wedge scanner appends is not held against it.
    if any(unicodedata.category(ch) in ("Cc", "Cs") for field in fields for ch in field):
        raise CccdInvalid("bad_characters")
    # A card's chip-issued QR never holds one: a U+202E or U+200B in it was put there to make a
    # name or address look like another (or the payload is corrupt), so refuse, never strip.
    if any(invisible(field) for field in fields):
        raise CccdInvalid("invisible_characters")
    if len(fields) < BASIC_FIELDS:
        raise CccdInvalid("field_count")
    id_number, old_id, name, dob_text, sex, address, issued_text = fields[:BASIC_FIELDS]

    if not _ID.fullmatch(id_number):
        raise CccdInvalid("id_digits")
    if id_number[:3] not in PROVINCES:
        raise CccdInvalid("province")
    dob = _date(dob_text, "dob_date")
    if sex not in SEXES:
        raise CccdInvalid("sex_value")
    # Digit 4: 0/1 born in the 1900s, 2/3 in the 2000s, 4/5 in the 2100s; even male, odd female.
    digit = int(id_number[3])
    if digit > 5 or 1900 + 100 * (digit // 2) != dob.year // 100 * 100:
        raise CccdInvalid("century_sex")
    if (digit % 2 == 1) != (sex == "Nữ"):
        raise CccdInvalid("century_sex")
    if id_number[4:6] != f"{dob.year % 100:02d}":
        raise CccdInvalid("birth_year")
    issued = _date(issued_text, "issue_date")
    if issued <= dob:
        raise CccdInvalid("issue_before_birth")
    if issued > (today or today_vn()):
        raise CccdInvalid("issue_in_future")
    if old_id and not _OLD_ID.fullmatch(old_id):
        raise CccdInvalid("old_id")
    name = " ".join(name.split())
    if not name:
        raise CccdInvalid("empty_name")
    address = " ".join(address.split())
    if not address:
        raise CccdInvalid("empty_address")
    return CccdCard(
        id_number=id_number,
        old_id=old_id or None,
        name=name,
        date_of_birth=dob,
        sex="Nam" if sex == "Nam" else "Nữ",
        address=address,
        issue_date=issued,
        extra_fields=tuple(fields[BASIC_FIELDS:]),
    )


def _date(text: str, rule: str) -> dt.date:
    if not _DATE.fullmatch(text):
        raise CccdInvalid(rule)
    try:
        return dt.date(int(text[4:]), int(text[2:4]), int(text[:2]))
    except ValueError:
        raise CccdInvalid(rule) from None
