"""The certification statement printed on a certified copy (fleet/certify/statement.py): its
wording against the model quoted in docs/certification-law.md, dates, numbers and books, NFC."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import unicodedata
from pathlib import Path

import pytest

from fleet.certify.statement import (
    BOOK_SYMBOL,
    STATEMENT,
    Certification,
    book_ref,
    date_in_words,
    signature_block,
    statement_lines,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "certification-law.md"

AGENCY = "Ủy ban nhân dân phường Tây Hồ"
PLACE = "Trung tâm Phục vụ hành chính công phường Tây Hồ, thành phố Hà Nội"


def _model() -> list[str]:
    """The model block of docs/certification-law.md §4, line by line."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"```text model-statement\n(.*?)\n```", text, re.S)
    assert found, "docs/certification-law.md has no ```text model-statement block"
    return found.group(1).split("\n")


def _fill(line: str, values: dict[str, str]) -> str:
    return re.sub(r"<(\w+)>", lambda m: values[m.group(1)], line)


def _cert(**changes: object) -> Certification:
    base: dict[str, object] = {
        "agency": AGENCY,
        "place": PLACE,
        "on": dt.date(2026, 12, 5),
        "officer_name": "Nguyễn Thị Hằng",
        "officer_title": "KT. CHỦ TỊCH\nPHÓ CHỦ TỊCH",
        "number": 123,
        "year": 2026,
        "pages": 3,
    }
    base.update(changes)
    return Certification(**base)  # type: ignore[arg-type]


# The documented model, quoted here as well so that a change of either shows in review.
QUOTED_MODEL = [
    "Chứng thực bản sao đúng với bản chính",
    "Tại <place>, ngày <dd> tháng <mm> năm <yyyy>",
    "Số chứng thực: <number>",
    "Quyển số: <volume>/<yyyy>-SCTĐT/BS",
]


def test_the_doc_quotes_the_model_the_test_quotes() -> None:
    assert _model() == QUOTED_MODEL


@pytest.mark.parametrize(
    ("on", "number", "volume", "dd", "mm"),
    [
        (dt.date(2026, 12, 5), 123, 1, "05", "12"),
        (dt.date(2027, 1, 1), 1, 1, "01", "01"),
        (dt.date(2026, 7, 14), 9, 2, "14", "7"),
        (dt.date(2028, 2, 29), 10, 12, "29", "02"),
    ],
)
def test_statement_lines_are_the_model_filled_in(
    on: dt.date, number: int, volume: int, dd: str, mm: str
) -> None:
    c = _cert(on=on, number=number, volume=volume, year=on.year)
    values = {
        "place": PLACE,
        "dd": dd,
        "mm": mm,
        "yyyy": str(on.year),
        "number": f"{number:02d}",
        "volume": f"{volume:02d}",
    }
    assert statement_lines(c) == [_fill(line, values) for line in _model()]


def test_one_statement_in_full() -> None:
    assert statement_lines(_cert()) == [
        "Chứng thực bản sao đúng với bản chính",
        "Tại Trung tâm Phục vụ hành chính công phường Tây Hồ, thành phố Hà Nội, "
        "ngày 05 tháng 12 năm 2026",
        "Số chứng thực: 123",
        "Quyển số: 01/2026-SCTĐT/BS",
    ]
    assert signature_block(_cert()) == ["KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH", "Nguyễn Thị Hằng"]


@pytest.mark.parametrize(
    ("day", "words"),
    [
        (dt.date(2026, 12, 5), "Ngày 05 tháng 12 năm 2026"),
        (dt.date(2026, 1, 9), "Ngày 09 tháng 01 năm 2026"),
        (dt.date(2026, 2, 1), "Ngày 01 tháng 02 năm 2026"),
        (dt.date(2026, 3, 10), "Ngày 10 tháng 3 năm 2026"),
        (dt.date(2026, 9, 30), "Ngày 30 tháng 9 năm 2026"),
        (dt.date(2026, 10, 1), "Ngày 01 tháng 10 năm 2026"),
        (dt.date(2026, 12, 31), "Ngày 31 tháng 12 năm 2026"),
        (dt.date(2028, 2, 29), "Ngày 29 tháng 02 năm 2028"),
    ],
)
def test_date_in_words(day: dt.date, words: str) -> None:
    assert date_in_words(day) == words


def test_every_day_of_a_leap_year_reads_back_to_its_date() -> None:
    day, seen = dt.date(2028, 1, 1), set()
    while day.year == 2028:
        text = date_in_words(day)
        m = re.fullmatch(r"Ngày (\d\d) tháng (\d{1,2}) năm (\d{4})", text)
        assert m, text
        d, mo, y = m.groups()
        assert dt.date(int(y), int(mo), int(d)) == day
        # Decree 30/2020: a 0 before months 1 and 2 only.
        assert (len(mo) == 2) == (day.month < 3 or day.month >= 10)
        seen.add(text)
        day += dt.timedelta(days=1)
    assert len(seen) == 366


def test_numbers_run_from_01() -> None:
    assert [_cert(number=n).number_label() for n in (1, 9, 10, 99, 100, 10_000)] == [
        "Số chứng thực: 01",
        "Số chứng thực: 09",
        "Số chứng thực: 10",
        "Số chứng thực: 99",
        "Số chứng thực: 100",
        "Số chứng thực: 10000",
    ]


def test_books_across_years() -> None:
    last = _cert(on=dt.date(2026, 12, 31), number=70_000, year=2026)
    first = _cert(on=dt.date(2027, 1, 1), number=1, year=2027)
    assert last.book_label() == "Quyển số: 01/2026-SCTĐT/BS"
    assert first.book_label() == "Quyển số: 01/2027-SCTĐT/BS"
    assert (last.number_label(), first.number_label()) == (
        "Số chứng thực: 70000",
        "Số chứng thực: 01",
    )
    assert _cert(volume=12).book_label() == "Quyển số: 12/2026-SCTĐT/BS"
    assert _cert().book_ref() == book_ref(1, 2026) == "01/2026-SCTĐT/BS"
    assert BOOK_SYMBOL == "SCTĐT/BS"


def test_a_book_year_other_than_the_year_certified_is_refused() -> None:
    # 31/12 after 15:00 is certified on the next working day: in the next year's book.
    with pytest.raises(ValueError, match="book year 2026"):
        _cert(on=dt.date(2027, 1, 2), year=2026)
    with pytest.raises(ValueError, match="book year 2027"):
        _cert(on=dt.date(2026, 12, 31), year=2027)


@pytest.mark.parametrize(
    "changes",
    [
        {"number": 0},
        {"number": -3},
        {"pages": 0},
        {"volume": 0},
        {"number": True},
        {"number": 1.0},
        {"agency": "   "},
        {"officer_name": ""},
        {"officer_title": "\n"},
        {"place": "Phường Tây Hồ\nHà Nội"},
        {"agency": "Ủy ban nhân dân\tphường Tây Hồ"},
        {"on": dt.datetime(2026, 12, 5, 9, 0)},
        {"on": "2026-12-05"},
    ],
)
def test_values_that_cannot_be_printed_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _cert(**changes)


def test_long_agency_and_place_are_printed_whole() -> None:
    agency = (
        "Ủy ban nhân dân đặc khu Côn Đảo, thành phố Hồ Chí Minh — Trung tâm Phục vụ hành chính "
        "công chi nhánh số 12, điểm tiếp nhận và trả kết quả tại Ngân hàng Nông nghiệp và Phát "
        "triển Nông thôn Việt Nam, chi nhánh Bà Rịa – Vũng Tàu"
    )
    place = agency + ", tầng 3, số 258 đường Võ Chí Công"
    assert len(agency) > 200
    c = _cert(agency=agency, place=place)
    assert c.agency == agency
    lines = statement_lines(c)
    assert lines[1] == f"Tại {place}, ngày 05 tháng 12 năm 2026"
    assert lines[0] == STATEMENT and len(lines) == 4


def test_nfd_input_is_stored_and_printed_as_nfc() -> None:
    def nfd(s: str) -> str:
        return unicodedata.normalize("NFD", s)

    c = _cert(
        agency=nfd(AGENCY),
        place=nfd(PLACE),
        officer_name=nfd("Nguyễn Thị Hằng"),
        officer_title=nfd("KT. CHỦ TỊCH\nPHÓ CHỦ TỊCH"),
    )
    assert nfd(AGENCY) != AGENCY  # the test feeds decomposed text indeed
    assert c == _cert()
    for line in [*statement_lines(c), *signature_block(c), c.agency]:
        assert unicodedata.is_normalized("NFC", line), line


def test_module_text_is_nfc_with_the_expected_letters() -> None:
    for line in [STATEMENT, *statement_lines(_cert()), date_in_words(dt.date(2026, 1, 1))]:
        assert unicodedata.is_normalized("NFC", line)
    # "ứ" (U+1EE9), "ự" (U+1EF1), "đ" (U+0111), "ố" (U+1ED1), "ể" (U+1EC3): precomposed letters.
    assert "\u1ee9" in STATEMENT and "\u1ef1" in STATEMENT and "\u0111" in STATEMENT
    assert "\u1ed1" in _cert().number_label() and "\u1ec3" in _cert().book_label()
    assert "\u0110" in _cert().book_label()  # "Đ" of SCTĐT, one code point
    assert "\u00e1" in date_in_words(dt.date(2026, 1, 1))  # "tháng"


def test_signature_block_follows_the_title_as_given() -> None:
    assert signature_block(_cert(officer_title="CHỦ TỊCH", officer_name="Trần Văn An")) == [
        "CHỦ TỊCH",
        "Trần Văn An",
    ]
    assert signature_block(
        _cert(officer_title="  TUQ. CHỦ TỊCH \n\n CÔNG CHỨC TƯ PHÁP - HỘ TỊCH  ")
    ) == ["TUQ. CHỦ TỊCH", "CÔNG CHỨC TƯ PHÁP - HỘ TỊCH", "Nguyễn Thị Hằng"]


def test_certification_is_frozen() -> None:
    c = _cert()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.number = 2  # type: ignore[misc]
