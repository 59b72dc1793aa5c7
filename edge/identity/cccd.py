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
from edge.texts import N_, Text, vietnamese

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

INVALID_QR = N_("The QR code on the card is not valid: %(reason)s.")

# rule -> (reason for the citizen: an English msgid, Vietnamese in the catalog; reason for the
# log). Neither may ever quote the payload.
REASONS: dict[str, tuple[str, str]] = {
    "encoding": (N_("the content cannot be read"), "payload bytes are not UTF-8"),
    "too_long": (
        N_("the content is too long"),
        f"payload longer than {MAX_PAYLOAD_CHARS} characters",
    ),
    "bad_characters": (
        N_("the content holds characters that are not allowed"),
        "payload contains control or surrogate characters",
    ),
    "invisible_characters": (
        N_("the content holds hidden characters (text direction or zero-width characters)"),
        "payload contains invisible format characters (Unicode Cf: bidi controls, zero-width)",
    ),
    "field_count": (
        N_("some fields are missing"),
        f"fewer than {BASIC_FIELDS} '|'-separated fields",
    ),
    "id_digits": (
        N_("the personal ID number must have exactly 12 digits"),
        "ID number is not exactly 12 ASCII digits",
    ),
    "province": (
        N_("the province code in the personal ID number does not exist"),
        "the ID number's first 3 digits are not a province code",
    ),
    "dob_date": (
        N_("the date of birth is not a real date"),
        "date of birth is not a real ddmmyyyy date",
    ),
    "sex_value": (N_("sex must be Nam or Nữ"), "sex field is neither 'Nam' nor 'Nữ'"),
    "century_sex": (
        N_("the personal ID number does not match the sex or the century of birth"),
        "the ID number's 4th digit does not match the sex and century of birth",
    ),
    "birth_year": (
        N_("the personal ID number does not match the year of birth"),
        "the ID number's digits 5-6 differ from the birth year",
    ),
    "issue_date": (
        N_("the issue date is not a real date"),
        "issue date is not a real ddmmyyyy date",
    ),
    "issue_before_birth": (
        N_("the issue date must be after the date of birth"),
        "issue date is not after the birth date",
    ),
    "issue_in_future": (N_("the issue date is in the future"), "issue date is in the future"),
    "old_id": (
        N_("the old ID number must have exactly 9 digits"),
        "old ID is neither empty nor 9 ASCII digits",
    ),
    "empty_name": (N_("the full name is missing"), "name is empty"),
    "empty_address": (N_("the permanent address is missing"), "permanent address is empty"),
}


class CardError(BadInput):
    """The card could not be used. `text` is for the citizen (message_vi: it in Vietnamese),
    message_en (also str()) for the log; neither carries personal data."""

    code = "card_error"

    def __init__(self, text: Text, message_en: str) -> None:
        super().__init__(message_en)
        self.text = text
        self.message_vi = text.vi
        self.message_en = message_en


class CccdInvalid(CardError):
    """The QR payload breaks one rule; `rule` is the stable machine code of the first broken."""

    code = "cccd_invalid"

    def __init__(self, rule: str) -> None:
        reason, reason_en = REASONS[rule]
        # The reason is part of the sentence: translated first, then filled in.
        text = Text(INVALID_QR, {"reason": vietnamese(reason)})
        super().__init__(text, f"CCCD QR payload invalid ({rule}): {reason_en}")
        self.reason = Text(reason)
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
