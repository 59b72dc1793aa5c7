"""Document type, key fields and the name check: on the generator's texts, on OCR of each type,
and on text damaged the way OCR damages it."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.documents.doctype import (
    BY_CODE,
    OTHER,
    check_name,
    edit_distance,
    extract_fields,
    find_approx,
    fold,
    recognise,
)
from tests import pages

SEEDS = range(len(pages.KINDS) * 3)  # every type three times, in each font


def same(a: str, b: str) -> bool:
    return fold(a).replace(" ", "") == fold(b).replace(" ", "")


def test_fold_is_one_character_for_one() -> None:
    text = unicodedata.normalize("NFD", "Giấy Chứng Nhận Quyền Sử Dụng Đất, ĐĂNG KÝ")
    folded = fold(text)
    assert folded == "giay chung nhan quyen su dung dat, dang ky"
    assert len(folded) == len(unicodedata.normalize("NFC", text))


def _reference_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


@settings(max_examples=200, deadline=None)
@given(st.text("aăâbđeêơưạấ ", max_size=25), st.text("aăâbđeêơưạấ ", max_size=25))
def test_edit_distance_is_levenshtein(a: str, b: str) -> None:
    assert edit_distance(a, b) == _reference_distance(a, b) == edit_distance(b, a)


def test_find_approx_locates_a_damaged_phrase() -> None:
    text = "so: 12\ngiay chung nhan ket h0n\nho ten vo"
    sim, end = find_approx("giay chung nhan ket hon", text)
    assert sim == pytest.approx(1 - 1 / 23)
    assert text[end - 3 : end] == "h0n"
    assert find_approx("bang tot nghiep", text)[0] < 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_every_generated_type_and_its_fields_from_the_reference_text(seed: int) -> None:
    doc = pages.document(seed, render=False)
    size = doc.size_mm
    found = recognise(doc.text, page_size_mm=(min(size), max(size)))
    assert found.doc_type == doc.kind, found.scores
    assert found.label_vi == BY_CODE[doc.kind].label_vi if doc.kind != OTHER else True
    for key, value in doc.fields.items():
        assert key in found.fields, (key, found.fields)
        assert same(found.fields[key], value), (key, found.fields[key], value)
    assert all(same(a, b) for a, b in zip(found.names, doc.names, strict=False)) or doc.kind in (
        "birth_certificate",
        "marriage_certificate",
    )


@pytest.mark.parametrize("kind", pages.KINDS)
def test_every_type_from_ocr_of_a_flat_page(kind: str) -> None:
    seed = pages.KINDS.index(kind)
    read = pages.reading(seed)
    found = recognise(read.ocr.text, lines=read.ocr.lines, page_size_mm=read.size_mm)
    assert found.doc_type == kind, found.scores
    wrong = {
        key: (found.fields.get(key), value)
        for key, value in read.doc.fields.items()
        if not same(found.fields.get(key) or "", value)
    }
    # OCR may miss a character in one field (a digit under a seal); never more.
    assert len(wrong) <= 1, wrong


def _ocr_noise(text: str, rng: np.random.Generator, rate: float) -> str:
    """What Tesseract does to a poor photo: lost accents, swapped look-alikes, dropped spaces."""
    swaps = {"o": "0", "l": "1", "i": "l", "e": "c", "n": "m", "h": "b", "u": "v"}
    out = []
    for ch in text:
        r = rng.random()
        if r < rate / 2 and ch.isalpha():
            out.append(fold(ch))
        elif r < rate and fold(ch) in swaps:
            out.append(swaps[fold(ch)])
        elif r < rate * 1.2 and ch == " ":
            continue
        else:
            out.append(ch)
    return "".join(out)


@pytest.mark.parametrize("seed", range(len(pages.KINDS) * 2))
def test_types_survive_ocr_damage(seed: int) -> None:
    doc = pages.document(seed, render=False)
    noisy = _ocr_noise(doc.text, np.random.default_rng(seed), 0.12)
    assert recognise(noisy).doc_type == doc.kind


def test_unrelated_text_is_other() -> None:
    for text in ("", "Thực đơn hôm nay: phở bò, bún chả, cà phê sữa đá.", "x" * 300):
        found = recognise(text)
        assert found.doc_type == OTHER and found.score == 0 and found.fields == {}
    # A card-sized page of the words of a birth certificate is still one, not a CCCD.
    doc = pages.document(pages.KINDS.index("birth_certificate"), render=False)
    assert recognise(doc.text, page_size_mm=(54, 85.6)).doc_type == "birth_certificate"


def test_fields_from_text_with_spaced_dates_and_a_label_on_the_line_before() -> None:
    text = (
        "ỦY BAN NHÂN DÂN CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM\n"
        "XÃ ĐÔNG HƯNG Độc lập - Tự do - Hạnh phúc\n"
        "Số: 45/2019\n"
        "Họ và tên / Full name:\n"
        "NGUYỄN VĂN AN\n"
        "Sinh ngày: 05 / 03 / 1990\n"
        "Thái Bình, ngày 7 tháng 3 năm 2019"
    )
    fields = extract_fields("birth_certificate", text)
    assert fields == {
        "name": "Nguyễn Văn An",
        "date_of_birth": "1990-03-05",
        "number": "45/2019",
        "issuer": "ỦY BAN NHÂN DÂN XÃ ĐÔNG HƯNG",
        "issue_date": "2019-03-07",
    }


def test_a_misread_leading_zero_of_an_id_number_is_mended() -> None:
    fields = extract_fields("cccd_back", "IDVNM0991234567001099123456<<1\n9901014M")
    assert fields["number"] == "001099123456"
    fields = extract_fields("cccd_front", "Số / No.: 601099123456")
    assert fields["number"] == "001099123456"


def test_name_check_ignores_accents_case_and_spacing() -> None:
    doc = pages.document(pages.KINDS.index("residence_confirmation"), render=False)
    found = recognise(doc.text)
    holder = doc.names[0]
    for typed in (
        holder,
        holder.upper(),
        fold(holder),
        "  ".join(holder.split()),
        holder.replace(" ", ""),
    ):
        verdict = check_name(found, typed)
        assert verdict.result == "match", typed
        assert verdict.message_vi == "Họ tên trên giấy tờ khớp với họ tên trên thẻ căn cước."
    other = check_name(found, "Hoàng Thị Mẫu Khác")
    assert other.result == "mismatch"
    assert other.message_vi.startswith("Họ tên trên giấy tờ không khớp")
    assert other.document_name is not None and same(other.document_name, holder)
    # One letter is a different person: Anh is not An.
    assert check_name(found, holder + "h").result == "mismatch"


def test_name_check_on_documents_naming_several_people() -> None:
    birth = pages.document(pages.KINDS.index("birth_certificate"), render=False)
    found = recognise(birth.text)
    child, mother, father = birth.names
    assert {check_name(found, n).result for n in (child, mother, father)} == {"match"}
    marriage = pages.document(pages.KINDS.index("marriage_certificate"), render=False)
    found = recognise(marriage.text)
    assert {check_name(found, n).result for n in marriage.names} == {"match"}


def test_name_check_not_found_and_text_fallback() -> None:
    nothing = recognise("Thực đơn: phở bò, bún chả")
    verdict = check_name(nothing, "Nguyễn Văn An")
    assert verdict.result == "not_found"
    assert verdict.message_vi == (
        "Không đọc được họ tên trên giấy tờ để đối chiếu với thẻ căn cước."
    )
    # No name field, but the name is written in the text: that is a match.
    letter = "Kính gửi ban quản lý. Người viết: NGUYỄN VĂN AN, phòng 12."
    assert check_name(recognise(letter), "Nguyen Van An", text=letter).result == "match"
    with pytest.raises(ValueError):
        check_name(nothing, "  ")


def test_recognition_keeps_personal_data_out_of_repr() -> None:
    doc = pages.document(pages.KINDS.index("cccd_front"), render=False)
    found = recognise(doc.text)
    assert doc.names[0] not in repr(found)
    assert found.as_dict()["fields"]["name"] == found.fields["name"]


def test_an_english_gloss_after_a_label_is_skipped_even_misread() -> None:
    for gloss in ("Full name", "Pull name", "Fuil narne"):
        text = f"Số / No.: 001099012345\nHọ và tên / {gloss}:\nNGUYỄN VĂN AN\n"
        assert extract_fields("cccd_front", text)["name"] == "Nguyễn Văn An", gloss
