"""Vietnamese OCR: character error rate on flat and photographed pages of the generated corpus,
lines and confidences, orientation, the shared API, and a clear error without the model."""

from __future__ import annotations

import threading
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from edge.selftest import check_fonts, check_ocr_models
from edge.vision import ocr as ocr_module
from edge.vision.ocr import Ocr, OcrUnavailable, find_tessdata, shared_ocr
from edge.vision.page import DPI, flat_page
from tests import pages

FLAT_SEEDS = range(10)  # every type, both fonts for the two cards
PHOTO_SEEDS = range(6)  # cards front and back, birth, diploma (lying across), land use, marriage


def test_flat_pages_read_with_under_2_percent_cer() -> None:
    readings = [pages.reading(seed) for seed in FLAT_SEEDS]
    cer = pages.corpus_cer(readings)
    assert cer < 0.02, {r.doc.kind: round(r.cer, 3) for r in readings}
    # Every page on its own stays readable: no type is sacrificed for the average.
    assert max(r.cer for r in readings) < 0.06


@pytest.mark.slow
def test_photographed_pages_read_with_under_5_percent_cer() -> None:
    readings = [pages.reading(seed, photo=True) for seed in PHOTO_SEEDS]
    cer = pages.corpus_cer(readings)
    assert cer < 0.05, {r.doc.kind: round(r.cer, 3) for r in readings}
    assert max(r.cer for r in readings) < 0.12


def test_every_diacritic_of_a_clean_line_is_read() -> None:
    read = pages.reading(pages.KINDS.index("birth_certificate"))
    assert "Độc lập - Tự do - Hạnh phúc" in read.ocr.text
    assert "GIẤY KHAI SINH" in read.ocr.text
    assert "Họ, chữ đệm, tên người mẹ" in read.ocr.text


def test_lines_carry_boxes_confidences_and_nfc_text() -> None:
    read = pages.reading(pages.KINDS.index("residence_confirmation"))
    result = read.ocr
    h, w = read.shape
    assert result.text == "\n".join(line.text for line in result.lines)
    assert unicodedata.is_normalized("NFC", result.text)
    assert 80 <= result.mean_confidence <= 100
    for line in result.lines:
        x, y, bw, bh = line.box
        assert 0 <= x < x + bw <= w and 0 <= y < y + bh <= h
        assert 0 <= line.confidence <= 100
    title = next(line for line in result.lines if "CƯ TRÚ" in line.text)
    body = next(line for line in result.lines if "Nơi tạm trú" in line.text)
    assert title.box[3] > body.box[3]  # the title is printed larger
    assert title.box[1] < body.box[1]
    assert result.as_dict()["lines"][0]["box"] == list(result.lines[0].box)


@pytest.mark.slow
def test_pages_put_down_any_way_round_come_out_upright() -> None:
    doc = pages.cached_document(pages.KINDS.index("land_use_certificate"))
    page = flat_page(pages.flat(doc, DPI), dpi=DPI)
    ocr = shared_ocr()
    for turns in (1, 2, 3):
        turned, result = ocr.read_page(page.rotated(turns))
        assert turned.rotation == 0, turns
        assert pages.cer(doc.text, result.text) < 0.03
    # The landscape diploma is rectified as a portrait sheet and turned to lie across.
    diploma = pages.reading(pages.KINDS.index("diploma"), photo=True)
    h, w = diploma.shape
    assert w > h and diploma.cer < 0.05


def test_one_api_is_kept_open_and_shared_safely_between_threads() -> None:
    card = pages.flat(pages.cached_document(pages.KINDS.index("cccd_front")), DPI)
    gray = flat_page(card, dpi=DPI).gray
    ocr = Ocr()
    first = ocr.read(gray)
    api = ocr._api
    results: list[str] = []

    def work() -> None:
        for _ in range(2):
            results.append(ocr.read(gray).text)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ocr._api is api  # no new Tesseract per page
    assert results == [first.text] * 6
    ocr.close()
    assert ocr._api is None


def test_missing_vietnamese_model_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ocr_module, "TESSDATA_DIRS", (tmp_path / "none",))
    with pytest.raises(OcrUnavailable, match=r"apt install tesseract-ocr-vie"):
        find_tessdata(env={"TESSDATA_PREFIX": str(tmp_path)})
    with pytest.raises(OcrUnavailable, match=r"apt install tesseract-ocr-vie"):
        Ocr().read(np.full((50, 50), 255, np.uint8))
    # TESSDATA_PREFIX, when set, is where the model is looked for (as in Tesseract itself).
    (tmp_path / "vie.traineddata").write_bytes(b"")
    assert find_tessdata(env={"TESSDATA_PREFIX": str(tmp_path)}) == tmp_path
    # A model file Tesseract cannot load is refused with the folder named.
    with pytest.raises(OcrUnavailable, match=str(tmp_path)):
        Ocr(tessdata=tmp_path).load()


def test_the_debian_model_is_found() -> None:
    folder = find_tessdata(env={})
    assert (folder / "vie.traineddata").is_file()


def test_the_orientation_model_is_installed_where_the_kiosk_looks() -> None:
    """tesseract-ocr-osd comes from the project's apt list (runtime): without it a page laid
    down sideways is certified sideways. Same lookup as the reader and the self-test."""
    folder = find_tessdata("osd", env={})
    assert (folder / "osd.traineddata").is_file()
    rows = {c.part: c for c in check_ocr_models(env={})}
    assert rows["ocr-vie"].verdict == rows["ocr-osd"].verdict == "ok"
    doc = pages.cached_document(pages.KINDS.index("land_use_certificate"))
    sideways = flat_page(pages.flat(doc, DPI), dpi=DPI).rotated(1)
    with Ocr() as ocr:
        _, confidence = ocr.orientation(sideways.gray)  # loads osd: raises without it
        assert confidence >= ocr_module.MIN_ORIENTATION_CONFIDENCE
        assert ocr.upright(sideways).rotation == 0


def test_missing_models_are_red_rows_naming_the_fix(tmp_path: Path) -> None:
    rows = {c.part: c for c in check_ocr_models(env={}, dirs=[tmp_path])}
    assert rows["ocr-vie"].verdict == rows["ocr-osd"].verdict == "fail"
    assert rows["ocr-vie"].detail.endswith("fix: sudo apt install tesseract-ocr-vie")
    assert rows["ocr-osd"].detail.endswith("fix: sudo apt install tesseract-ocr-osd")
    (tmp_path / "DejaVuSans.ttf").write_bytes(b"<html>not a font</html>")
    fonts = check_fonts(tmp_path)
    assert fonts.verdict == "fail" and "DejaVuSans.ttf, DejaVuSans-Bold.ttf" in fonts.detail


def test_a_blank_page_reads_as_nothing() -> None:
    result = shared_ocr().read(np.full((400, 300), 250, np.uint8))
    assert result.text == "" and result.lines == ()
    with pytest.raises(ValueError):
        shared_ocr().read(np.zeros((10, 10), np.float32))


def test_without_the_osd_model_pages_are_read_both_ways_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "vie.traineddata").symlink_to(find_tessdata(env={}) / "vie.traineddata")
    monkeypatch.setattr(ocr_module, "TESSDATA_DIRS", ())
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    doc = pages.cached_document(pages.KINDS.index("other"))
    page = flat_page(pages.flat(doc, DPI), dpi=DPI).rotated(2)
    with Ocr() as ocr:
        with pytest.raises(OcrUnavailable, match="tesseract-ocr-osd"):
            ocr.orientation(page.gray)
        upright, result = ocr.read_page(page)
    assert upright.rotation == 0
    assert pages.cer(doc.text, result.text) < 0.03
