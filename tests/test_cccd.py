"""CCCD QR payload: every rule refuses with its own code, messages keep personal data out, fuzzing."""

from __future__ import annotations

import datetime as dt
import json
import unicodedata

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edge.errors import BadInput
from edge.identity.cccd import REASONS, CccdCard, CccdInvalid, parse_cccd
from edge.identity.provinces import PROVINCES
from edge.sim.make_scenes import SAMPLE_CCCD
from edge.texts import vietnamese

TODAY = dt.date(2026, 1, 15)
# An invented citizen; the fields a rule test changes one at a time.
BASE = {
    "id": "079301004217",
    "old_id": "025467891",
    "name": "Trần Thị Ngọc Hạnh",
    "dob": "28022001",
    "sex": "Nữ",
    "address": "Số 12 Đường Lê Lợi, Phường Bến Nghé, Quận 1, Thành phố Hồ Chí Minh",
    "issued": "10082021",
}
ORDER = ["id", "old_id", "name", "dob", "sex", "address", "issued"]


def payload(**changes: str) -> str:
    fields = {**BASE, **changes}
    return "|".join(fields[key] for key in ORDER)


def refusal(text: str | bytes, today: dt.date = TODAY) -> CccdInvalid:
    with pytest.raises(CccdInvalid) as caught:
        parse_cccd(text, today=today)
    return caught.value


# --- valid payloads ------------------------------------------------------------------------


def test_sample_payload_parses_into_typed_fields() -> None:
    card = parse_cccd(SAMPLE_CCCD, today=TODAY)
    assert card.id_number == "001099012345"
    assert card.old_id is None
    assert card.name == "Nguyễn Văn Mẫu"
    assert card.date_of_birth == dt.date(1999, 1, 1)
    assert card.sex == "Nam"
    assert card.address == "Số 1 Phố Mẫu, Hoàn Kiếm, Hà Nội"
    assert card.issue_date == dt.date(2021, 6, 15)
    assert card.extra_fields == ()
    assert card.province == "Hà Nội"


def test_as_dict_has_exactly_the_agreed_keys_and_iso_dates() -> None:
    data = parse_cccd(payload(), today=TODAY).as_dict()
    assert list(data) == [
        "id_number",
        "name",
        "date_of_birth",
        "sex",
        "address",
        "issue_date",
        "old_id",
        "card_generation",
        "cancelled_id",
        "father_name",
        "mother_name",
    ]
    assert data["card_generation"] == "cccd"
    assert data["date_of_birth"] == "2001-02-28"
    assert data["issue_date"] == "2021-08-10"
    assert data["old_id"] == "025467891"
    json.dumps(data)  # plain JSON types only


def test_card_is_frozen_and_its_repr_hides_the_personal_data() -> None:
    card = parse_cccd(payload(), today=TODAY)
    with pytest.raises(AttributeError):
        card.name = "x"  # type: ignore[misc]
    for text in (repr(card), str(card), f"{card}"):
        assert "Hạnh" not in text and BASE["id"] not in text


def test_newer_cards_extra_trailing_fields_are_accepted_and_kept_aside() -> None:
    card = parse_cccd(payload() + "|Kinh|Phật giáo||", today=TODAY)
    assert card.extra_fields == ("Kinh", "Phật giáo", "", "")
    assert card.address == BASE["address"]
    assert parse_cccd(card.to_payload(), today=TODAY) == card


def test_text_is_nfc_normalised_and_stripped() -> None:
    decomposed = unicodedata.normalize("NFD", payload(name="  Trần   Thị Ngọc Hạnh ", sex=" Nữ"))
    assert decomposed != unicodedata.normalize("NFC", decomposed)
    card = parse_cccd("\ufeff " + decomposed + "\r\n", today=TODAY)
    assert card.name == "Trần Thị Ngọc Hạnh"
    assert unicodedata.is_normalized("NFC", card.name)
    assert unicodedata.is_normalized("NFC", card.address)
    assert card.sex == "Nữ"


@pytest.mark.parametrize("name", ["Nguyễn Thị Hoà", "Đặng Văn Thuỷ", "Lê Thị Ngọc Hạnh"])
def test_decomposed_vietnamese_names_keep_their_marks_and_invisible_ones_are_refused(
    name: str,
) -> None:
    decomposed = unicodedata.normalize("NFD", name)
    assert decomposed != name
    card = parse_cccd(payload(name=decomposed), today=TODAY)
    assert card.name == name and unicodedata.is_normalized("NFC", card.name)
    for mark in ("\u202e", "\u200b"):  # the two of issue 21
        assert refusal(payload(name=decomposed[:3] + mark + decomposed[3:])).rule == (
            "invisible_characters"
        )
        assert refusal(payload(address=mark + BASE["address"])).rule == "invisible_characters"


def test_utf8_bytes_are_accepted() -> None:
    assert parse_cccd(payload().encode(), today=TODAY) == parse_cccd(payload(), today=TODAY)


@pytest.mark.parametrize(
    ("digit", "born", "sex"),
    [
        ("0", "01011950", "Nam"),
        ("1", "31121999", "Nữ"),
        ("2", "01012000", "Nam"),
        ("3", "15082010", "Nữ"),
    ],
)
def test_fourth_digit_encodes_century_and_sex(digit: str, born: str, sex: str) -> None:
    id_number = f"001{digit}{born[-2:]}123456"
    card = parse_cccd(payload(id=id_number, dob=born, sex=sex, old_id=""), today=TODAY)
    assert card.sex == sex
    assert card.date_of_birth.year == int(born[-4:])


@pytest.mark.parametrize(("digit", "sex"), [("4", "Nam"), ("5", "Nữ")])
def test_2100s_births_are_valid_when_their_time_comes(digit: str, sex: str) -> None:
    later = dt.date(2160, 1, 1)
    text = payload(id=f"001{digit}05123456", dob="01012105", sex=sex, issued="01012125")
    assert parse_cccd(text, today=later).date_of_birth == dt.date(2105, 1, 1)
    assert refusal(text, today=TODAY).rule == "issue_in_future"


def test_province_table_has_the_63_historical_codes_in_nfc() -> None:
    assert len(PROVINCES) == 63
    assert all(len(code) == 3 and code.isdigit() for code in PROVINCES)
    assert min(PROVINCES) == "001" and max(PROVINCES) == "096"
    assert PROVINCES["001"] == "Hà Nội" and PROVINCES["079"] == "Thành phố Hồ Chí Minh"
    assert PROVINCES["046"] == "Thừa Thiên Huế" and PROVINCES["067"] == "Đắk Nông"
    assert all(unicodedata.is_normalized("NFC", name) for name in PROVINCES.values())
    assert len(set(PROVINCES.values())) == 63


@pytest.mark.parametrize("code", sorted(PROVINCES))
def test_every_province_code_is_accepted(code: str) -> None:
    assert parse_cccd(payload(id=code + BASE["id"][3:]), today=TODAY).province_code == code


def test_issue_date_may_be_today() -> None:
    assert parse_cccd(payload(issued="15012026"), today=TODAY).issue_date == TODAY


def test_default_today_is_vietnam_today() -> None:
    # Issued "tomorrow" relative to the real clock must be refused without passing today.
    tomorrow = dt.date.today() + dt.timedelta(days=2)
    with pytest.raises(CccdInvalid) as caught:
        parse_cccd(payload(issued=tomorrow.strftime("%d%m%Y")))
    assert caught.value.rule == "issue_in_future"


# --- one test per rule -----------------------------------------------------------------------

RULE_CASES = {
    "encoding": [b"079301004217|\xff\xfe|x"],
    "too_long": [payload(address="x" * 3000)],
    "bad_characters": [payload(name="Trần\x00Hạnh"), payload(address="Số 1\nPhố"), "a\ud800|b"],
    "invisible_characters": [
        payload(name="Trần Thị \u202eHạnh"),  # RIGHT-TO-LEFT OVERRIDE: shows "hnạH"
        payload(address="Số 12\u200b Đường Lê Lợi, Phường Bến Nghé"),  # ZERO WIDTH SPACE
        payload(name="Trần Thị Ngọc\u2066 Hạnh\u2069"),  # isolates
        payload(name="Trần\u200e Thị Ngọc Hạnh"),  # LEFT-TO-RIGHT MARK
        payload(address="Số 12\u2060 Đường Lê Lợi"),  # WORD JOINER
        payload(address="Số 12 Đường Lê\ufeff Lợi"),  # a BOM anywhere but first
        payload(name="Trần Thị Ng\u00adọc Hạnh"),  # SOFT HYPHEN
        payload() + "|Kinh\u200d",  # in a newer card's extra field too
    ],
    "field_count": ["", "079301004217", "|".join(payload().split("|")[:6]), "||||||"[:5]],
    "id_digits": [
        payload(id="07930100421"),
        payload(id="0793010042170"),
        payload(id="07930100421A"),
        payload(id="079 301004217"),
        payload(id="٠٧٩٣٠١٠٠٤٢١٧"),  # Arabic-Indic digits are digits to str.isdigit(), not to us
        payload(id=""),
    ],
    "province": [
        payload(id="000301004217"),
        payload(id="003301004217"),
        payload(id="097301004217"),
    ],
    "dob_date": [
        payload(dob="30022001"),
        payload(dob="29022001"),  # 2001 is not a leap year
        payload(dob="01132001"),
        payload(dob="00012001"),
        payload(dob="01/01/2001"),
        payload(dob="0101201"),
        payload(dob=""),
    ],
    "sex_value": [payload(sex="nữ"), payload(sex="Nu"), payload(sex="Female"), payload(sex="")],
    "century_sex": [
        payload(id="079201004217"),  # 2 = male born in the 2000s, the card says Nữ born 2001
        payload(id="079101004217"),  # 1 = female born in the 1900s, born 2001
        payload(id="079301004217", sex="Nam"),
        payload(id="079601004217"),
        payload(id="079901004217"),
    ],
    "birth_year": [payload(id="079300004217"), payload(id="079399004217")],
    "issue_date": [payload(issued="31042021"), payload(issued="2021-08-10"), payload(issued="")],
    "issue_before_birth": [payload(issued="28022001"), payload(issued="01011990")],
    "issue_in_future": [payload(issued="16012026"), payload(issued="01012030")],
    "old_id": [
        payload(old_id="02546789"),
        payload(old_id="0793010042"),
        payload(old_id="A25467891"),
    ],
    "cancelled_id": [
        # the order Circular 16/2024/TT-BCA lists: id|name|dob|sex|residence|issue|cmnd|cancelled
        "079301004217|Trần Thị Ngọc Hạnh|28022001|Nữ|Số 12 Đường Lê Lợi|10082024||07930100421",
        "079301004217|Trần Thị Ngọc Hạnh|28022001|Nữ|Số 12 Đường Lê Lợi|10082024||079301004217",
    ],
    "empty_name": [payload(name=""), payload(name="   ")],
    "empty_address": [payload(address=""), payload(address=" \t ")],
}


def test_rule_cases_cover_every_rule() -> None:
    assert set(RULE_CASES) == set(REASONS)


@pytest.mark.parametrize(
    ("rule", "text"),
    [(rule, text) for rule, cases in RULE_CASES.items() for text in cases],
    ids=[f"{rule}-{i}" for rule, cases in RULE_CASES.items() for i in range(len(cases))],
)
def test_each_broken_rule_is_refused_with_its_code(rule: str, text: str | bytes) -> None:
    err = refusal(text)
    assert err.rule == rule
    assert isinstance(err, BadInput) and isinstance(err, ValueError)
    assert err.code == "cccd_invalid"
    assert err.message_vi.startswith("Mã QR trên thẻ không hợp lệ: ")
    assert err.message_vi == f"Mã QR trên thẻ không hợp lệ: {vietnamese(REASONS[rule][0])}."
    assert rule in err.message_en and str(err) == err.message_en


def test_leap_day_birth_is_a_real_date() -> None:
    card = parse_cccd(payload(id="079300004217", dob="29022000"), today=TODAY)
    assert card.date_of_birth == dt.date(2000, 2, 29)


def test_vietnamese_messages_have_their_diacritics() -> None:
    assert all(unicodedata.is_normalized("NFC", vietnamese(m)) for m, _ in REASONS.values())
    assert vietnamese(REASONS["sex_value"][0]) == "giới tính phải là Nam hoặc Nữ"
    assert vietnamese(REASONS["issue_in_future"][0]) == "ngày cấp nằm trong tương lai"


def _personal_values(text: str) -> list[str]:
    """Every field of a payload and every run of 4+ digits in it (IDs, dates, years)."""
    import re

    fields = [f.strip() for f in text.split("|") if len(f.strip()) >= 4]
    return fields + re.findall(r"[0-9]{4,}", text)


@pytest.mark.parametrize("rule", sorted(RULE_CASES))
def test_no_message_contains_the_personal_data(rule: str) -> None:
    for text in RULE_CASES[rule]:
        source = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        err = refusal(text)
        shown = " ".join([err.message_vi, err.message_en, str(err), repr(err), *map(str, err.args)])
        for value in _personal_values(source):
            if value in ("2048",):  # the length limit itself, not data from this payload
                continue
            assert value not in shown, (rule, value)
        # No chained exception (for example a ValueError from date()) shows up in a traceback.
        assert err.__cause__ is None
        assert err.__context__ is None or err.__suppress_context__


# --- fuzzing ---------------------------------------------------------------------------------

DIGITS = st.text(alphabet="0123456789", min_size=0, max_size=14)
FIELD = st.one_of(
    DIGITS,
    st.text(max_size=30),
    st.sampled_from(["Nam", "Nữ", "", " ", "nam", "29022000", "31121999", "001099012345"]),
)
STRUCTURED = st.lists(FIELD, min_size=0, max_size=10).map("|".join)
# Near misses: a valid payload with one field swapped for anything.
MUTATED = st.tuples(st.integers(0, 6), FIELD).map(
    lambda change: payload(**{ORDER[change[0]]: change[1]})
)


INVISIBLE = st.one_of(
    st.sampled_from(["\u202e", "\u202a", "\u2066", "\u2069", "\u200e", "\u200f"]),
    st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]),
    st.characters(whitelist_categories=("Cf", "Cc")),
)
# A valid payload with an invisible or control character slipped into its name or address.
SLIPPED = st.tuples(st.sampled_from(["name", "address"]), st.integers(0, 80), INVISIBLE).map(
    lambda slip: payload(**{slip[0]: BASE[slip[0]][: slip[1]] + slip[2] + BASE[slip[0]][slip[1] :]})
)


@settings(
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(st.one_of(st.text(), STRUCTURED, MUTATED, SLIPPED, st.binary()))
def test_fuzzed_payloads_give_a_card_or_a_refusal(text: str | bytes) -> None:
    try:
        card = parse_cccd(text, today=TODAY)
    except CccdInvalid as err:
        assert err.rule in REASONS
        event(err.rule)
        return
    event("valid")
    assert isinstance(card, CccdCard)
    assert len(card.id_number) == 12 and card.id_number.isascii()
    assert card.province_code in PROVINCES
    assert card.sex in ("Nam", "Nữ")
    assert card.date_of_birth < card.issue_date <= TODAY
    assert card.name and card.address
    for text in (card.name, card.address, *card.extra_fields):
        assert not any(unicodedata.category(ch) in ("Cf", "Cc") for ch in text)
        assert unicodedata.is_normalized("NFC", text)
    json.dumps(card.as_dict())


NAME_CHARS = (
    "aăâbcdđeêghiklmnoôơpqrstuưvxyàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ"
)
NAME_CHARS += NAME_CHARS.upper() + " "
ADDRESS_CHARS = NAME_CHARS + "0123456789,./-"
EXTRA_CHARS = st.characters(blacklist_categories=("Cc", "Cf", "Cs"), blacklist_characters="|")


@st.composite
def valid_cards(draw: st.DrawFn) -> dict[str, object]:
    born = draw(st.dates(dt.date(1900, 1, 1), TODAY - dt.timedelta(days=1)))
    issued = draw(st.dates(born + dt.timedelta(days=1), TODAY))
    female = draw(st.booleans())
    digit = (born.year // 100 - 19) * 2 + int(female)
    province = draw(st.sampled_from(sorted(PROVINCES)))
    serial = draw(st.text(alphabet="0123456789", min_size=6, max_size=6))
    name = draw(st.text(alphabet=NAME_CHARS, min_size=1, max_size=40).filter(str.strip))
    address = draw(st.text(alphabet=ADDRESS_CHARS, min_size=1, max_size=120).filter(str.strip))
    old_id = draw(st.one_of(st.just(""), st.text(alphabet="0123456789", min_size=9, max_size=9)))
    extra = draw(st.lists(st.text(EXTRA_CHARS, max_size=12), max_size=3))
    return {
        "id_number": f"{province}{digit}{born.year % 100:02d}{serial}",
        "old_id": old_id,
        "name": name,
        "born": born,
        "sex": "Nữ" if female else "Nam",
        "address": address,
        "issued": issued,
        "extra": extra,
    }


@settings(max_examples=2_000, deadline=None, database=None)
@given(valid_cards())
def test_valid_payloads_round_trip(fields: dict) -> None:
    text = "|".join(
        [
            fields["id_number"],
            fields["old_id"],
            fields["name"],
            fields["born"].strftime("%d%m%Y"),
            fields["sex"],
            fields["address"],
            fields["issued"].strftime("%d%m%Y"),
            *fields["extra"],
        ]
    )
    card = parse_cccd(text, today=TODAY)
    assert card.id_number == fields["id_number"]
    assert card.old_id == (fields["old_id"] or None)
    assert card.name == " ".join(fields["name"].split())
    assert card.date_of_birth == fields["born"]
    assert card.sex == fields["sex"]
    assert card.address == " ".join(fields["address"].split())
    assert card.issue_date == fields["issued"]
    assert card.extra_fields == tuple(
        unicodedata.normalize("NFC", e).strip() for e in fields["extra"]
    )
    assert parse_cccd(card.to_payload(), today=TODAY) == card
