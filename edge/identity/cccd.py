"""The QR payload of both card generations: parse, cross-check against the ID number's
structure, refuse clearly.

CCCD (chip, 2021; PRODUCT.md section 5): `id|old_id|name|ddmmyyyy|Nam or Nữ|address|ddmmyyyy`,
extra trailing fields accepted and kept aside. The 2024 "thẻ Căn cước" (Circular 16/2024/TT-BCA)
adds the 9-digit CMND and a cancelled personal ID number (if any) and, on some cards, the parents'
names; "nơi thường trú" became "nơi cư trú". No published source gives its byte layout, so
`parse_card` accepts both field orders the sources suggest, told apart by the fields' shapes;
docs/identity-qr.md says what is known and what is assumed. Every rule has a stable `rule` code.
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
# The order the circular lists the QR's content in: id|name|dob|sex|residence|issue[|...].
LISTED_FIELDS = 6
# From this day every new card is a "thẻ Căn cước" (Law on Identification 26/2023/QH15, in force
# 1 July 2024, with Circular 16/2024/TT-BCA on the card's form).
CAN_CUOC_FROM = dt.date(2024, 7, 1)
# A real payload is about 150 characters; this only stops absurd input early.
MAX_PAYLOAD_CHARS = 2048
SEXES = ("Nam", "Nữ")

Sex = Literal["Nam", "Nữ"]
Generation = Literal["cccd", "can_cuoc_2024"]

_ID = re.compile(r"[0-9]{12}")
_OLD_ID = re.compile(r"[0-9]{9}|[0-9]{12}")  # a CMND (9 or 12 digits) or a cancelled ID
_DATE = re.compile(r"[0-9]{8}")
_DIGITS = re.compile(r"[0-9]*")

INVALID_QR = N_("The QR code on the card is not valid: %(reason)s.")
CARD_NAMES = {"cccd": N_("citizen identity card"), "can_cuoc_2024": N_("identity card")}
RESIDENCE_LABELS = {"cccd": N_("permanent residence"), "can_cuoc_2024": N_("place of residence")}

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
        f"fewer than {BASIC_FIELDS} '|'-separated fields ({LISTED_FIELDS} in the listed order)",
    ),
    "id_digits": (
        N_("the personal ID number must have exactly 12 digits"),
        "ID number is not exactly 12 ASCII digits",
    ),
    "province": (
        N_("the province code in the personal ID number does not exist"),
        "the ID number's first 3 digits are neither a province code nor a country code",
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
        N_("the old ID number must have exactly 9 or 12 digits"),
        "old ID is neither empty nor 9 or 12 ASCII digits",
    ),
    "cancelled_id": (
        N_("the cancelled personal ID number must have exactly 12 digits"),
        "cancelled ID is neither empty nor 12 ASCII digits other than the ID number",
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
    card_generation: Generation = "cccd"
    cancelled_id: str | None = None  # a 12-digit personal ID number cancelled (2024 card)
    father_name: str | None = None
    mother_name: str | None = None
    layout: Literal["cccd", "listed"] = "cccd"  # which field order the payload used

    @property
    def province_code(self) -> str:
        return self.id_number[:3]

    @property
    def born_abroad(self) -> bool:
        """The first 3 digits are a country code: the birth was registered abroad."""
        return self.province_code not in PROVINCES

    @property
    def province(self) -> str | None:
        """Where the birth was registered, by the name the province had when coded; None when
        it was registered abroad (a country code)."""
        return PROVINCES.get(self.province_code)

    @property
    def card_name(self) -> Text:
        """ "thẻ Căn cước" for a 2024 card, "thẻ Căn cước công dân" for a CCCD (UI and slips)."""
        return Text(CARD_NAMES[self.card_generation])

    @property
    def residence_label(self) -> Text:
        """ "nơi cư trú" on a 2024 card, "nơi thường trú" on a CCCD."""
        return Text(RESIDENCE_LABELS[self.card_generation])

    def age_on(self, day: dt.date) -> int:
        born = self.date_of_birth
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id_number": self.id_number,
            "name": self.name,
            "date_of_birth": self.date_of_birth.isoformat(),
            "sex": self.sex,
            "address": self.address,
            "issue_date": self.issue_date.isoformat(),
            "old_id": self.old_id,
            "card_generation": self.card_generation,
            "cancelled_id": self.cancelled_id,
            "father_name": self.father_name,
            "mother_name": self.mother_name,
        }

    def to_payload(self) -> str:
        """The payload as the card would encode it (extra fields included)."""
        if self.layout == "listed":
            return SEPARATOR.join(
                [
                    self.id_number,
                    self.name,
                    self.date_of_birth.strftime("%d%m%Y"),
                    self.sex,
                    self.address,
                    self.issue_date.strftime("%d%m%Y"),
                    *self.extra_fields,
                ]
            )
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
    """parse_card under its first name (kept for callers written for the CCCD alone)."""
    return parse_card(payload, today=today)


def parse_card(payload: str | bytes, *, today: dt.date | None = None) -> CccdCard:
    """Parse and validate the QR payload of a CCCD or a 2024 "thẻ Căn cước"; raise CccdInvalid
    naming the first broken rule.

    Two field orders are accepted (docs/identity-qr.md): the CCCD's `id|old_id|name|dob|...`
    and the order Circular 16/2024/TT-BCA lists the content in, `id|name|dob|sex|residence|
    issue|cmnd|cancelled id|father|mother`. They differ in the second field (digits or nothing
    vs. a name) and the third (a name vs. a ddmmyyyy date). `today` (default: today in
    Asia/Ho_Chi_Minh) bounds the issue date.
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
    listed = (
        len(fields) >= LISTED_FIELDS
        and not _DIGITS.fullmatch(fields[1])
        and bool(_DATE.fullmatch(fields[2]))
    )
    if listed:
        id_number, name, dob_text, sex, address, issued_text = fields[:LISTED_FIELDS]
        extra = fields[LISTED_FIELDS:]
        old_id = extra[0] if extra else ""
        cancelled = extra[1] if len(extra) > 1 else ""
        parents = extra[2:4]
    else:
        if len(fields) < BASIC_FIELDS:
            raise CccdInvalid("field_count")
        id_number, old_id, name, dob_text, sex, address, issued_text = fields[:BASIC_FIELDS]
        extra = fields[BASIC_FIELDS:]
        cancelled, parents = "", []

    if not _ID.fullmatch(id_number):
        raise CccdInvalid("id_digits")
    if id_number[:3] not in PROVINCES and id_number[0] == "0":
        # 001-096 are provinces; a birth registered abroad carries a country code instead
        # (Decree 137/2015/ND-CP art. 13), taken here as any code from 100 up (docs).
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
    generation: Generation = "can_cuoc_2024" if listed or issued >= CAN_CUOC_FROM else "cccd"
    if generation == "can_cuoc_2024" and not listed and extra:
        # The CCCD order on a 2024 card: what follows the issue date is taken as
        # [cancelled ID (12 digits or empty)], father, mother (an assumption, so never refused
        # on it: anything else stays in extra_fields; docs).
        if _DIGITS.fullmatch(extra[0]):  # digits or nothing: not a name
            cancelled = extra[0] if _ID.fullmatch(extra[0]) and extra[0] != id_number else ""
            parents = extra[1:3]
        else:
            parents = extra[:2]
    if old_id and not _OLD_ID.fullmatch(old_id):
        raise CccdInvalid("old_id")
    if cancelled and (not _ID.fullmatch(cancelled) or cancelled == id_number):
        raise CccdInvalid("cancelled_id")
    name = " ".join(name.split())
    if not name:
        raise CccdInvalid("empty_name")
    address = " ".join(address.split())
    if not address:
        raise CccdInvalid("empty_address")
    father, mother = (_person_name(parents, i) for i in (0, 1))
    return CccdCard(
        id_number=id_number,
        old_id=old_id or None,
        name=name,
        date_of_birth=dob,
        sex="Nam" if sex == "Nam" else "Nữ",
        address=address,
        issue_date=issued,
        extra_fields=tuple(extra),
        card_generation=generation,
        cancelled_id=cancelled or None,
        father_name=father,
        mother_name=mother,
        layout="listed" if listed else "cccd",
    )


def _person_name(fields: list[str], index: int) -> str | None:
    """A parent's name from the extra fields, or None (absent, empty, or not a name at all)."""
    if index >= len(fields):
        return None
    name = " ".join(fields[index].split())
    return name if name and not any(ch.isdigit() for ch in name) else None


def _date(text: str, rule: str) -> dt.date:
    if not _DATE.fullmatch(text):
        raise CccdInvalid(rule)
    try:
        return dt.date(int(text[4:]), int(text[2:4]), int(text[:2]))
    except ValueError:
        raise CccdInvalid(rule) from None
