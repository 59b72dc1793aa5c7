"""The TD1 MRZ parser against ICAO 9303's own specimen, a Vietnamese-shaped MRZ, and broken ones."""

from __future__ import annotations

import datetime as dt

import pytest

from edge.identity.mrz import MrzInvalid, check_digit, parse_td1

# ICAO Doc 9303 part 5, appendix A (TD1 specimen).
SPECIMEN = """\
I<UTOD231458907<<<<<<<<<<<<<<<
7408122F1204159UTO<<<<<<<<<<<6
ERIKSSON<<ANNA<MARIA<<<<<<<<<<
"""


def vn_mrz(id_number: str = "001090001234", dob: str = "900115", expiry: str = "300115") -> str:
    number = id_number[3:]
    line1 = f"IDVNM{number}{check_digit(number)}{id_number}<<<"[:30].ljust(30, "<")
    head = f"{dob}{check_digit(dob)}M{expiry}{check_digit(expiry)}VNM"
    optional_2 = "<" * 11
    composite = check_digit(line1[5:30] + head[0:7] + head[7 + 1 : 15] + optional_2)
    line2 = head + optional_2 + composite
    return "\n".join([line1, line2, "NGUYEN<<VAN<AN".ljust(30, "<")])


def test_icao_specimen() -> None:
    mrz = parse_td1(SPECIMEN)
    assert (mrz.document_code, mrz.issuing_state, mrz.document_number) == ("I", "UTO", "D23145890")
    assert (mrz.date_of_birth, mrz.sex, mrz.date_of_expiry) == ("740812", "F", "120415")
    assert (mrz.surname, mrz.given_names) == ("ERIKSSON", "ANNA MARIA")
    # MRZ_information: number, birth date, expiry date, each followed by its check digit.

    assert mrz.key.key_string() == b"D23145890774081221204159"
    assert "ERIKSSON" not in repr(mrz) and "D2314" not in repr(mrz.key)


def test_vietnamese_card() -> None:
    mrz = parse_td1(vn_mrz())
    assert mrz.document_number == "090001234"
    assert mrz.id_number == "001090001234"
    assert mrz.birth_date(today=dt.date(2026, 12, 6)) == dt.date(1990, 1, 15)
    assert mrz.expiry_date() == dt.date(2030, 1, 15)


@pytest.mark.parametrize(
    ("edit", "rule"),
    [
        (lambda t: t.replace("IDVNM090001234", "IDVNM090001235", 1), "number_check"),
        (lambda t: t.replace("\n900115", "\n900116", 1), "birth_check"),
        (lambda t: t[:-31] + "X" + t[-30:], "shape"),
        (lambda t: "\n".join(t.splitlines()[:2]), "shape"),
    ],
)
def test_broken_mrz_names_its_rule(edit, rule) -> None:
    with pytest.raises(MrzInvalid) as err:
        parse_td1(edit(vn_mrz()))
    assert err.value.rule == rule


def test_composite_check() -> None:
    lines = vn_mrz().splitlines()
    last = lines[1][-1]
    lines[1] = lines[1][:-1] + str((int(last) + 1) % 10)
    with pytest.raises(MrzInvalid) as err:
        parse_td1("\n".join(lines))
    assert err.value.rule == "composite_check"
