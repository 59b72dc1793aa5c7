"""The kiosk's checks on an original (issue 16), measured on tests/data/page-checks: each
detector's detection and false-positive rates against floors, OCR by the real Tesseract for the
forbidden marks, the real zxing reader and a real ECDSA check for the printed QR."""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from edge.copies import qrpayload
from edge.copies.verify import Verdict
from edge.errors import BadInput
from edge.vision.checks import (
    capture_quality,
    check_original,
    damage,
    forbidden_marks,
    original_cues,
    printed_qr,
    stamp_text,
)
from tests import page_checks_set as S

LABELS = S.load()
IMAGES: dict[str, dict[str, Any]] = LABELS["images"]
DPI = LABELS["dpi"]


@functools.cache
def image(name: str) -> np.ndarray:
    return S.image(name)


@functools.cache
def ocr_text(name: str) -> str:
    from edge.vision.ocr import shared_ocr
    from edge.vision.page import flat_page

    return shared_ocr().read_page(flat_page(image(name), dpi=DPI))[1].text


def verify_qr(text: str) -> Verdict:
    """As CopyService.verify_qr, with the set's test key as the one trusted kiosk key."""
    key = load_pem_public_key(LABELS["test_key_pem"].encode("ascii"))
    try:
        payload = qrpayload.parse(text)
    except BadInput:
        return Verdict("invalid", "not a copy QR")
    if payload.kiosk_id != LABELS["kiosk_id"]:
        return Verdict("unknown-issuer")
    return Verdict("valid") if payload.verify(key) else Verdict("invalid", "signature")  # type: ignore[arg-type]


def rates(check: str, fired: dict[str, bool]) -> tuple[float, float]:
    """Detection rate on the images labelled with check, false-positive rate on the others."""
    pos = [fired[n] for n in fired if check in IMAGES[n]["fires"]]
    neg = [fired[n] for n in fired if check not in IMAGES[n]["fires"]]
    assert pos and neg
    return sum(pos) / len(pos), sum(neg) / len(neg)


def test_the_set_is_small_complete_and_labelled() -> None:
    files = {p.name for p in S.SET.iterdir()}
    assert set(IMAGES) | {"labels.json"} == files
    assert sum(p.stat().st_size for p in S.SET.iterdir()) < 5_500_000
    variants = {label["variant"] for label in IMAGES.values()}
    assert variants >= {
        "original",
        "blur",
        "dark",
        "photocopy",
        "screen",
        "mark",
        "decoy",
        "correction",
        "hole",
        "tear",
        "qr",
    }
    # the quality ground truth spans both sides
    readable = [v["readable"] for v in IMAGES.values() if "readable" in v]
    assert any(readable) and not all(readable)


def test_capture_quality_agrees_with_what_ocr_reads() -> None:
    judged = {n: v for n, v in IMAGES.items() if "readable" in v}
    verdicts = {n: capture_quality(image(n), dpi=DPI) for n in judged}
    read = [n for n in judged if judged[n]["readable"]]
    lost = [n for n in judged if not judged[n]["readable"]]
    # Every page Tesseract still read passes: blur and darkness OCR reads are not refused.
    assert all(verdicts[n].readable for n in read), [n for n in read if not verdicts[n].readable]
    refused = sum(not verdicts[n].readable for n in lost) / len(lost)
    # measured 6/8: two borderline pages (CER 0.10 and 0.12) pass, on the side of the citizen
    assert refused >= 0.7, refused
    for n in lost:
        if not verdicts[n].readable:
            kind = IMAGES[n]["variant"]
            assert verdicts[n].problem is not None
            assert verdicts[n].problem.msgid.startswith(
                "The picture is blurred" if kind == "blur" else "The picture is too dark"
            )


def test_clear_quality_cases() -> None:
    sharp = capture_quality(image("orig-0.jpg"), dpi=DPI)
    assert sharp.readable and sharp.problem is None
    blurred = capture_quality(image("blur-0-s4.5.jpg"), dpi=DPI)
    assert not blurred.readable
    assert blurred.problem is not None
    assert blurred.problem.vi == "Ảnh bị mờ. Giữ yên tờ giấy rồi chụp lại."
    assert not capture_quality(image("dark-2-g0.035.jpg"), dpi=DPI).readable
    assert capture_quality(image("dark-3-g0.06.jpg"), dpi=DPI).readable  # dark, still read
    # The kiosk's own 200 dpi pages: the measure is scale-free through dpi.
    import cv2

    at200 = cv2.resize(image("orig-1.jpg"), None, fx=200 / DPI, fy=200 / DPI)
    assert capture_quality(at200).readable


@pytest.mark.parametrize("check", ["photocopy", "screen"])
def test_original_cues_rates(check: str) -> None:
    fired = {
        n: any(f.check == check for f in original_cues(image(n), page_no=1, dpi=DPI))
        for n in IMAGES
    }
    detected, false_pos = rates(check, fired)
    assert detected == 1.0 and false_pos == 0.0, (detected, false_pos)


def test_damage_rates_and_kinds() -> None:
    found = {n: damage(image(n), page_no=2, dpi=DPI) for n in IMAGES}
    detected, false_pos = rates("damage", {n: bool(f) for n, f in found.items()})
    assert detected == 1.0 and false_pos == 0.0, (detected, false_pos)
    for n, label in IMAGES.items():
        if "damage" in label:
            assert label["damage"] in {f.detail["kind"] for f in found[n]}
            assert all(f.page == 2 for f in found[n])
    flag = found["hole-1.jpg"][0]
    assert json.loads(json.dumps(flag.as_dict()))["detail"]["kind"] == "hole"


def test_forbidden_marks_on_real_ocr() -> None:
    names = [
        n for n, v in IMAGES.items() if v["variant"] in ("mark", "decoy", "original", "photocopy")
    ]
    # The page's own OCR text leaves red stamps out (ocr_gray lifts seals): stamp_text reads them.
    page_only = {n: bool(forbidden_marks(ocr_text(n))) for n in names}
    assert rates("forbidden_mark", page_only) == (0.0, 0.0)
    fired = {
        n: bool(forbidden_marks(ocr_text(n) + "\n" + stamp_text(image(n), dpi=DPI))) for n in names
    }
    detected, false_pos = rates("forbidden_mark", fired)
    assert detected >= 0.75 and false_pos == 0.0, (detected, false_pos)  # measured 4/4, 0/10
    for n in names:
        if IMAGES[n]["variant"] == "mark":
            marks = forbidden_marks(stamp_text(image(n), dpi=DPI))
            assert marks and marks[0].score >= 0.7  # most diacritics read (TỔI for TỐI seen)
    decoy = ocr_text("decoy-2.jpg")
    assert "mật" in decoy.lower() and not forbidden_marks(decoy)  # the ordinary words were read


@pytest.mark.parametrize(
    ("text", "mark"),
    [
        ("MẬT", "mat"),
        ("TỐI MẬT", "toi_mat"),
        ("TUYỆT MẬT", "tuyet_mat"),
        ("TUYET MAT", "tuyet_mat"),  # OCR lost every diacritic
        ("TỔI MẬT", "toi_mat"),  # a wrong tone, as Tesseract read the set's stamp
        ("Tài liệu này không được sao chụp.", "khong_duoc_sao"),
        ("KH0NG ĐUỢC SAO", "khong_duoc_sao"),  # a zero for an O, a lost hook
        ("KHÔNG SAO CHỤP", "khong_sao_chup"),
        ("| MẬT |", "mat"),  # the stamp's frame read as strokes
    ],
)
def test_marks_that_fire(text: str, mark: str) -> None:
    assert mark in {f.detail["mark"] for f in forbidden_marks(text)}


@pytest.mark.parametrize(
    "text",
    [
        "Không tiết lộ mật khẩu cho người khác",
        "giữ bí mật thông tin",
        "mật độ dân số cao",
        "MẶT TRƯỚC",  # face, not secret
        "Tôi mất giấy khai sinh",
        "TÔI MẤT",  # both words with other tones: lost, not secret
        "MẤT",
        "tài liệu tối mật",  # running text, not the stamp
        "NGUYỄN VĂN MẬT",  # a name
        "MẬT KHẨU",
        "Không sao, tôi ổn",
    ],
)
def test_ordinary_words_do_not_fire(text: str) -> None:
    assert forbidden_marks(text) == []


def test_printed_qr_and_its_verdicts() -> None:
    names = [n for n in IMAGES if IMAGES[n]["variant"] in ("qr", "original")]
    found = {n: printed_qr([image(n)]) for n in names}
    assert all(bool(found[n]) == ("qr" in IMAGES[n]["fires"]) for n in names), found
    assert found["qr-foreign-5.jpg"] == [S.FOREIGN_QR]
    for n in ("qr-ours-2.jpg", "qr-foreign-5.jpg"):
        flags = [f for f in check_original([image(n)], "", verify_qr=verify_qr, dpi=DPI)]
        qr = [f for f in flags if f.check == "qr"]
        assert len(qr) == 1 and qr[0].page == 1
        assert qr[0].detail == {"kind": IMAGES[n]["qr_kind"], "verdict": IMAGES[n]["qr_verdict"]}
        assert S.FOREIGN_QR not in json.dumps(qr[0].as_dict())  # the verdict, not the text
    # Without a verifier our QR is reported, not trusted; a forged signature does not verify.
    ours = check_original([image("qr-ours-2.jpg")], "", dpi=DPI)
    assert [f.detail for f in ours if f.check == "qr"] == [
        {"kind": "kc1", "verdict": "not_verified"}
    ]
    forged = S.kc1_payload()[:-4] + "AAAA"
    assert verify_qr(forged).status == "invalid"


def test_check_original_gathers_every_page() -> None:
    pages = [image("orig-0.jpg"), image("copy-1.jpg"), image("tear-5.jpg")]
    flags = check_original(pages, "TỐI MẬT\nỦY BAN NHÂN DÂN", verify_qr=verify_qr, dpi=DPI)
    got = {(f.check, f.page) for f in flags}
    assert got == {("forbidden_mark", 0), ("photocopy", 2), ("damage", 3)}, got
    # A red stamp on a page, with OCR text that does not carry it:
    stamped = check_original([image("mark-1.jpg")], ocr_text("mark-1.jpg"), dpi=DPI)
    assert [f.detail for f in stamped] == [{"mark": "toi_mat"}]
    assert (
        stamped[0].text.vi
        == "Bản chính có dấu hoặc ghi chú cấm sao chụp (TỐI MẬT): không thể chứng thực."
    )
    for f in flags:
        data = json.loads(json.dumps(f.as_dict()))
        assert data["text"] == f.text.msgid and f.text.vi != f.text.en
    assert check_original([image("orig-4.jpg")], ocr_text("orig-4.jpg"), dpi=DPI) == []


def test_clear_camera_shots_raise_no_flag() -> None:
    """False positives on the page pipeline's own camera corpus (tests/pages.py: uneven light,
    shadow, colour cast, lens blur, JPEG), scanned as the kiosk scans: pages as scan() gives
    them (ScannedPage.flat), their OCR text, each original's seal and signature."""
    from edge.vision.ocr import shared_ocr
    from edge.vision.page import scan
    from tests import pages as docs

    for seed, kind in ((1, "marriage_certificate"), (4, "other"), (7, "birth_certificate")):
        page = scan(docs.photographed(seed, kind).image)
        assert capture_quality(page.flat, dpi=page.dpi).readable
        _, reading = shared_ocr().read_page(page)
        assert check_original([page.flat], reading.text, dpi=page.dpi) == [], (seed, kind)
