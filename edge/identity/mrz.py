"""The machine readable zone on the back of a chip card (ICAO 9303 part 5, TD1: 3 lines of 30).

The MRZ is what opens the chip: its document number, date of birth and date of expiry, each with
its check digit, are the BAC key seed (ICAO 9303 part 11, 4.3) and the PACE password (MRZ-based).
A Vietnamese card's line 1 is `IDVNM`, the last 9 digits of the personal ID number as the document
number, its check digit, then the full 12-digit number in the optional data; docs/identity-qr.md.

Personal data: an Mrz lives in RAM for the session and never reaches a log (its repr hides it).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from edge.errors import BadInput

LINE_LENGTH = 30
LINES = 3
_WEIGHTS = (7, 3, 1)
_LINE = re.compile(r"[A-Z0-9<]{30}")


class MrzInvalid(BadInput):
    """The text is not a TD1 MRZ, or a check digit does not match; `rule` names which."""

    code = "mrz_invalid"

    def __init__(self, rule: str, message_en: str) -> None:
        super().__init__(f"MRZ invalid ({rule}): {message_en}")
        self.rule = rule


def check_digit(field: str) -> str:
    """ICAO 9303 part 3, 4.9: weights 7-3-1; digits, A-Z as 10-35, '<' as 0."""
    total = 0
    for i, ch in enumerate(field):
        if ch.isdigit():
            value = int(ch)
        elif "A" <= ch <= "Z":
            value = ord(ch) - ord("A") + 10
        elif ch == "<":
            value = 0
        else:
            raise MrzInvalid("characters", "a field holds a character outside A-Z 0-9 <")
        total += value * _WEIGHTS[i % 3]
    return str(total % 10)


@dataclass(frozen=True, slots=True, repr=False)
class MrzKey:
    """What opens the chip: the three MRZ fields BAC and PACE derive their keys from."""

    document_number: str  # as printed, fillers '<' kept off; at most 9 characters here
    date_of_birth: str  # YYMMDD as in the MRZ
    date_of_expiry: str  # YYMMDD

    def key_string(self) -> bytes:
        """MRZ_information (ICAO 9303 part 11, 9.7.1): number, dates, each with its check digit."""
        number = self.document_number.ljust(9, "<")
        return "".join(
            field + check_digit(field)
            for field in (number, self.date_of_birth, self.date_of_expiry)
        ).encode("ascii")

    def expiry_date(self) -> dt.date:
        """The card's expiry (YYMMDD, this century: the cards in circulation expire after 2000)."""
        yy, mm, dd = (int(self.date_of_expiry[i : i + 2]) for i in (0, 2, 4))
        return dt.date(2000 + yy, mm, dd)

    def __repr__(self) -> str:
        return "MrzKey(<personal data hidden>)"


@dataclass(frozen=True, slots=True, repr=False)
class Mrz:
    """A TD1 MRZ whose every check digit matched."""

    document_code: str  # "ID" (I<, IC ... are other TD1 documents)
    issuing_state: str  # "VNM"
    document_number: str
    optional_1: str  # Vietnam: the 12-digit personal ID number
    date_of_birth: str  # YYMMDD
    sex: str  # "M", "F" or "<"
    date_of_expiry: str  # YYMMDD ("<<<<<<" never seen on VN cards, refused by the check digit)
    nationality: str
    optional_2: str
    surname: str
    given_names: str

    @property
    def key(self) -> MrzKey:
        return MrzKey(self.document_number, self.date_of_birth, self.date_of_expiry)

    @property
    def id_number(self) -> str | None:
        """The 12-digit personal ID number a Vietnamese card carries in optional data 1."""
        digits = self.optional_1.replace("<", "")
        return digits[:12] if re.fullmatch(r"[0-9]{12}[0-9]?", digits) else None

    def birth_date(self, *, today: dt.date) -> dt.date:
        """YYMMDD to a date: the century that puts it in the past."""
        return _date(self.date_of_birth, past_of=today)

    def expiry_date(self) -> dt.date:
        return self.key.expiry_date()

    def __repr__(self) -> str:
        return "Mrz(<personal data hidden>)"


def parse_td1(text: str) -> Mrz:
    """Three 30-character lines (blank lines and spaces around them ignored); every check digit
    is verified. Raises MrzInvalid naming the first broken rule."""
    lines = [line.strip().replace(" ", "") for line in text.strip().splitlines() if line.strip()]
    if len(lines) != LINES or not all(_LINE.fullmatch(line) for line in lines):
        raise MrzInvalid("shape", "not three lines of 30 characters from A-Z 0-9 <")
    l1, l2, l3 = lines
    number, number_cd, optional_1 = l1[5:14], l1[14], l1[15:30]
    dob, dob_cd, sex, expiry, expiry_cd = l2[0:6], l2[6], l2[7], l2[8:14], l2[14]
    nationality, optional_2, composite_cd = l2[15:18], l2[18:29], l2[29]
    if number_cd == "<":
        raise MrzInvalid("long_number", "document numbers longer than 9 are not used in Vietnam")
    for field, digit, rule in (
        (number, number_cd, "number_check"),
        (dob, dob_cd, "birth_check"),
        (expiry, expiry_cd, "expiry_check"),
    ):
        if check_digit(field) != digit:
            raise MrzInvalid(rule, f"the {rule.split('_')[0]} check digit does not match")
    composite = l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29]
    if check_digit(composite) != composite_cd:
        raise MrzInvalid("composite_check", "the composite check digit does not match")
    for value, rule in ((dob, "birth_date"), (expiry, "expiry_date")):
        if not value.isdigit():
            raise MrzInvalid(rule, "a date is not six digits")
        try:
            dt.date(2000 + int(value[:2]), int(value[2:4]), int(value[4:6]))
        except ValueError:
            raise MrzInvalid(rule, "a date is not a real date") from None
    if sex not in ("M", "F", "<"):
        raise MrzInvalid("sex", "sex is not M, F or <")
    surname, _, given = l3.partition("<<")
    return Mrz(
        document_code=l1[0:2].replace("<", ""),
        issuing_state=l1[2:5],
        document_number=number.rstrip("<"),
        optional_1=optional_1,
        date_of_birth=dob,
        sex=sex,
        date_of_expiry=expiry,
        nationality=nationality,
        optional_2=optional_2,
        surname=surname.replace("<", " ").strip(),
        given_names=given.replace("<", " ").strip(),
    )


def _date(yymmdd: str, *, past_of: dt.date) -> dt.date:
    yy, mm, dd = (int(yymmdd[i : i + 2]) for i in (0, 2, 4))
    year = 2000 + yy if 2000 + yy <= past_of.year else 1900 + yy
    return dt.date(year, mm, dd)
