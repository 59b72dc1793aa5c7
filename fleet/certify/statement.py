"""The certification statement ("lời chứng") printed on each certified copy.

Wording, number, book and date as docs/certification-law.md §4 sets them out from Decree
23/2015/ND-CP (Art. 2, 13, 20), Circular 01/2020/TT-BTP and Decree 30/2020/ND-CP, with what could
not be confirmed said there.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass, fields

# The statement itself, as public certified copies print it and as Art. 2(2) defines the act:
# the competent person certifies the copy "là đúng với bản chính". The doc says why there is no
# separate wording for an electronic copy (none was found in the texts at hand).
STATEMENT = "Chứng thực bản sao đúng với bản chính"

# The electronic book of copies from originals. Decree 23/2015 Art. 13(4) names the paper book
# "SCT/BS"; no legal text found names an electronic one, but public one-stop software keeps a
# separate electronic book "-SCTĐT/BS" beside the paper "-SCT/BS", and a book of its own keeps
# Art. 13(2) whole (one 01-based sequence per book and year, the paper book's untouched). Why,
# and what is unconfirmed: docs/certification-law.md §4.
BOOK_SYMBOL = "SCTĐT/BS"

_ONE_LINE = ("agency", "place", "officer_name")


@dataclass(frozen=True, slots=True)
class Certification:
    """One certification as the copy prints it. Text fields are stored in NFC; a value that
    cannot be printed (empty, a line break where one line is printed, a number below 1, a book
    year other than the certification's) is refused with ValueError."""

    agency: str  # the competent agency, as printed ("Ủy ban nhân dân phường Tây Hồ")
    place: str  # where it was certified, for "Tại …"
    on: dt.date
    officer_name: str
    officer_title: str  # the lines above the name, "\n" between them ("KT. CHỦ TỊCH\nPHÓ CHỦ TỊCH")
    number: int  # the number in the book, from 1 each year
    year: int  # the book's year
    pages: int  # pages of the copy
    volume: int = 1  # "Quyển số"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                text = unicodedata.normalize("NFC", value).strip()
                if not text:
                    raise ValueError(f"{f.name} is empty")
                if f.name in _ONE_LINE and any(c in text for c in "\r\n\t\v\f"):
                    raise ValueError(f"{f.name} must be one line")
                object.__setattr__(self, f.name, text)
        if isinstance(self.on, dt.datetime) or not isinstance(self.on, dt.date):
            raise ValueError("on must be a date")
        for name in ("number", "year", "pages", "volume"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number from 1")
        # Art. 13(2): the book runs by year, and the number restarts at 01 on 1 January.
        if self.year != self.on.year:
            raise ValueError(f"book year {self.year} is not the year certified ({self.on.year})")

    def number_label(self) -> str:
        """The certification number as printed: "Số chứng thực: 01" (Art. 13(2): from 01)."""
        return f"Số chứng thực: {self.number:02d}"

    def book_ref(self) -> str:
        """The book without its label, as the book table keeps it: "01/2026-SCTĐT/BS"."""
        return book_ref(self.volume, self.year)

    def book_label(self) -> str:
        """The book as printed: "Quyển số: 01/2026-SCTĐT/BS" (volume/year-symbol)."""
        return f"Quyển số: {self.book_ref()}"

    def title_lines(self) -> list[str]:
        return [line.strip() for line in self.officer_title.splitlines() if line.strip()]


def book_ref(volume: int, year: int) -> str:
    """Volume (2 digits at least), year and the book's symbol: "01/2026-SCTĐT/BS"."""
    return f"{volume:02d}/{year}-{BOOK_SYMBOL}"


def date_in_words(day: dt.date) -> str:
    """ "Ngày 05 tháng 12 năm 2026": Arabic numerals, 0 before days 1-9 and months 1 and 2
    (Decree 30/2020/ND-CP, Appendix I)."""
    month = f"{day.month:02d}" if day.month < 3 else str(day.month)
    return f"Ngày {day.day:02d} tháng {month} năm {day.year}"


def statement_lines(c: Certification) -> list[str]:
    """The statement's body in the order printed: the statement, place and date, number, book."""
    when = date_in_words(c.on)
    return [
        STATEMENT,
        f"Tại {c.place}, {when[0].lower()}{when[1:]}",
        c.number_label(),
        c.book_label(),
    ]


def signature_block(c: Certification) -> list[str]:
    """What is printed under the statement: the title lines, then the officer's name. The
    signature itself is the officer's digital signature and the agency's, not text."""
    return [*c.title_lines(), c.officer_name]
