"""Pages on the platen: finding the sheet, the citizen's messages for each fault, rectification,
colour kept through enhancement, the OCR copy, deskew, QR on the original, auto-capture."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.errors import BadInput
from edge.texts import vietnamese
from edge.vision.ocr import shared_ocr
from edge.vision.page import (
    DPI,
    MESSAGES,
    PageCapture,
    PageRejected,
    check_page,
    deskew,
    enhance,
    estimate_skew,
    flat_page,
    ocr_gray,
    scan,
)
from tests import pages

GOOD = range(16)  # two of every type
FAULT_SEEDS = range(4)


def corner_error(found: tuple[tuple[float, float], ...], truth: np.ndarray) -> float:
    """Largest corner distance, whichever corner each list starts from."""
    found_arr = np.float32(found)
    return min(
        float(np.abs(found_arr - np.roll(order, k, axis=0)).max())
        for order in (truth, truth[::-1])
        for k in range(4)
    )


def test_good_shots_find_the_sheet_to_a_pixel_and_ask_nothing() -> None:
    errors = []
    for seed in GOOD:
        shot = pages.cached_shot(seed, size=pages.PREVIEW)
        check = check_page(shot.image)
        assert check.found and check.usable, (seed, check.problems, check.quality)
        assert check.messages() == []
        errors.append(corner_error(check.quad, shot.quad))
    assert max(errors) < 2.5, errors  # px in a 1280 x 960 frame, about 0.6 mm on A4
    # How fast: the bench figure "document: page live check" (python -m bench --only "live check").


@pytest.mark.parametrize(
    ("problem", "code", "vi"),
    [
        ("blurred", "blurred", "Ảnh bị mờ. Vui lòng giữ yên trang giấy và không di chuyển."),
        ("glare", "glare", "Trang giấy bị lóa sáng."),
        ("cut_off", "cut_off", "Trang giấy bị lệch ra ngoài khung hình."),
        ("empty", "no_page", "Không thấy trang giấy. Vui lòng đặt giấy tờ vào vùng chụp"),
        ("finger", "finger", "Có ngón tay hoặc bàn tay trên trang giấy."),
        ("dark", "too_dark", "Ảnh quá tối."),
    ],
)
def test_each_fault_gets_its_message(problem: str, code: str, vi: str) -> None:
    for seed in FAULT_SEEDS:
        shot = pages.cached_shot(seed, size=pages.PREVIEW, problem=problem)
        check = check_page(shot.image)
        assert check.problems and check.problems[0] == code, (seed, check.problems)
        assert not check.usable
        message = check.messages()[0]
        assert message["vi"].startswith(vi)
        assert message["en"] == MESSAGES[code]
        if problem == "glare":  # the UI draws the boxes: one holds the spot's centre
            cx, cy = shot.glare_centre
            assert any(x <= cx <= x + w and y <= cy <= y + h for x, y, w, h in check.glare_boxes)
        if problem == "finger":
            x, y, w, h = check.finger_box
            tx, ty = shot.finger_tip
            assert x - 10 <= tx <= x + w + 10 and y - 10 <= ty <= y + h + 10
        if problem in ("blurred", "glare", "finger"):
            assert check.capturable  # a manual capture may still go ahead
        if problem in ("cut_off", "empty", "dark"):
            assert not check.capturable
            with pytest.raises(PageRejected) as refused:
                scan(shot.image, check=check)
            assert refused.value.message_vi == vietnamese(MESSAGES[code])


def test_a_small_scrap_or_a_steeply_seen_sheet_is_refused() -> None:
    sheet = pages.flat(pages.cached_document(pages.KINDS.index("other")), 60)
    scrap = pages.place(sheet, np.float32([[600, 400], [700, 400], [700, 541], [600, 541]]))
    check = check_page(scrap)
    assert check.found and check.problems[0] == "too_small"
    assert check.messages()[0]["vi"] == vietnamese(MESSAGES["too_small"])
    # Seen from the side: the far edge half as long as the near one.
    steep = pages.place(sheet, np.float32([[460, 120], [820, 120], [1060, 860], [220, 860]]))
    check = check_page(steep)
    assert check.found and check.problems[0] == "too_skewed", check.quality
    assert check.quality.side_ratio > 2
    with pytest.raises(PageRejected) as refused:
        scan(steep, check=check)
    assert refused.value.message_vi.startswith("Trang giấy bị nghiêng hoặc cong vênh.")
    # The same sheet laid square is fine.
    square = pages.place(sheet, np.float32([[340, 40], [940, 40], [940, 890], [340, 890]]))
    assert check_page(square).problems == ()


def test_a_captured_sheet_is_rectified_to_a4_at_the_chosen_dpi() -> None:
    shot = pages.cached_shot(pages.KINDS.index("birth_certificate"))
    page = shared_ocr().upright(scan(shot.image))
    w, h = round(210 / 25.4 * DPI), round(297 / 25.4 * DPI)
    assert page.image.shape == (h, w, 3) and page.gray.shape == (h, w)
    assert page.dpi == DPI and page.paper == "A4"
    assert page.size_mm == pytest.approx((210, 297), abs=0.2)
    # The flat page lies over the document as printed (both straightened, as the print was
    # skewed on the sheet): the same ink in the same places, to a pixel or two.
    doc = pages.cached_document(pages.KINDS.index("birth_certificate"))
    truth = cv2.cvtColor(pages.flat(doc, DPI), cv2.COLOR_BGR2GRAY)
    truth = deskew(truth, estimate_skew(truth))
    match = cv2.matchTemplate(page.gray, truth[10:-10, 10:-10], cv2.TM_CCOEFF_NORMED)
    y, x = np.unravel_index(int(match.argmax()), match.shape)
    assert match.max() > 0.8 and abs(x - 10) <= 2 and abs(y - 10) <= 2
    # A card is cut out at its own size, lying.
    card = scan(pages.cached_shot(pages.KINDS.index("cccd_back")).image)
    assert card.paper == "ID-1" and card.size_mm == pytest.approx((85.6, 54.0), abs=0.2)


def _ink_hue(page_bgr: np.ndarray, mask: np.ndarray, *, red: bool) -> tuple[float, float]:
    """Median hue (OpenCV 0-180; for red, wrapped to -90..90 so red sits around 0) and
    saturation of the coloured ink under the mask."""
    hsv = cv2.cvtColor(page_bgr, cv2.COLOR_BGR2HSV)
    ink = mask & (hsv[:, :, 1] > 80) & (hsv[:, :, 2] > 60)
    hue = hsv[:, :, 0][ink].astype(np.float32)
    if red:
        hue[hue > 90] -= 180
    return float(np.median(hue)), float(np.median(hsv[:, :, 1][ink]))


@pytest.mark.parametrize("seed", [2, 5])
def test_enhancement_keeps_the_red_seal_red_and_the_blue_signature_blue(seed: int) -> None:
    shot = pages.cached_shot(seed)
    page = shared_ocr().upright(scan(shot.image))
    doc = shot.doc
    scale = DPI / doc.dpi
    cx, cy, r = (round(v * scale) for v in doc.stamp)
    seal = np.zeros(page.image.shape[:2], np.uint8)
    cv2.circle(seal, (cx, cy), r + 6, 1, -1)
    sx, sy, sw, sh = (round(v * scale) for v in doc.signature)
    pen = np.zeros_like(seal)
    pen[sy : sy + sh, sx : sx + sw] = 1
    pen[seal > 0] = 0  # where the pen crosses the seal the ink mixes
    red_hue, red_sat = _ink_hue(page.image, seal > 0, red=True)
    blue_hue, blue_sat = _ink_hue(page.image, pen > 0, red=False)
    assert -8 <= red_hue <= 8 and red_sat > 120, (red_hue, red_sat)
    assert 100 <= blue_hue <= 130 and blue_sat > 120, (blue_hue, blue_sat)
    # ... while the paper, under a tinted lamp and a shadow in the shot, comes out white.
    paper = page.image[60:140, 60:400].reshape(-1, 3).astype(np.float32)
    assert np.median(paper, axis=0).min() > 235
    assert np.ptp(np.median(paper, axis=0)) < 6


def test_enhancement_flattens_shade_and_white_balances() -> None:
    doc = pages.cached_document(pages.KINDS.index("other"))
    page = pages.flat(doc, DPI).astype(np.float32)
    w = page.shape[1]
    ramp = np.linspace(0.55, 1.0, w, dtype=np.float32)[None, :, None]
    shaded = np.clip(page * ramp * np.float32([0.8, 0.95, 1.05]), 0, 255).astype(np.uint8)
    out = enhance(shaded)
    left, right = out[200:300, 60:200], out[200:300, w - 200 : w - 60]
    for side in (left, right):
        level = np.median(side.reshape(-1, 3), axis=0)
        assert level.min() > 240 and np.ptp(level) < 5
    # Text keeps its contrast: the darkest print stays dark.
    assert np.percentile(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), 0.5) < 60


def test_the_ocr_copy_lifts_seals_but_keeps_print_and_red_titles() -> None:
    doc = pages.cached_document(pages.KINDS.index("birth_certificate"))
    image = enhance(pages.flat(doc, DPI))
    gray = ocr_gray(image, DPI)
    cx, cy, r = (round(v * DPI / doc.dpi) for v in doc.stamp)
    ring = np.zeros(gray.shape, np.uint8)
    cv2.circle(ring, (cx, cy), r, 1, max(2, r // 25))
    assert np.percentile(gray[ring > 0], 10) > 200  # the seal's ring is gone
    assert np.percentile(gray, 0.5) < 60  # black print stays
    card = pages.cached_document(pages.KINDS.index("cccd_front"))
    card_gray = ocr_gray(enhance(pages.flat(card, DPI)), DPI)
    title = card_gray[round(9 / 25.4 * DPI) : round(14 / 25.4 * DPI), 200:500]
    assert np.percentile(title, 2) < 110  # the red title "CĂN CƯỚC CÔNG DÂN" is kept


@pytest.mark.parametrize("angle", [-2.5, -0.8, 0.6, 1.7])
def test_skew_is_measured_and_undone(angle: float) -> None:
    doc = pages.cached_document(pages.KINDS.index("marriage_certificate"))
    gray = cv2.cvtColor(pages.flat(doc, DPI), cv2.COLOR_BGR2GRAY)
    turned = deskew(gray, -angle)
    measured = estimate_skew(turned)
    assert measured == pytest.approx(angle + estimate_skew(gray), abs=0.15)
    # Across the page too (a sheet still lying sideways).
    assert estimate_skew(np.ascontiguousarray(np.rot90(turned))) == pytest.approx(
        measured, abs=0.15
    )


def test_a_qr_on_the_original_is_read_with_the_page() -> None:
    shot = pages.cached_shot(pages.KINDS.index("cccd_front"))
    page = scan(shot.image)
    assert [code.text for code in page.qr] == [shot.doc.qr_text]
    (code,) = page.qr
    assert cv2.pointPolygonTest(shot.quad.reshape(-1, 1, 2), code.center, False) > 0
    # A flat scan of the card too, and the QR's modules are kept out of the OCR copy.
    flat = flat_page(pages.flat(pages.cached_document(shot.doc.seed, shot.doc.kind), DPI))
    assert [c.text for c in flat.qr] == [shot.doc.qr_text]
    x, y, w, h = (int(v) for v in flat.qr[0].bbox)
    assert flat.gray[y : y + h, x : x + w].min() > 200


def _shifted(image: np.ndarray, dx: float) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, 0]])
    return cv2.warpAffine(
        image, matrix, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE
    )


def test_auto_capture_fires_once_when_found_still_and_sharp() -> None:
    good = pages.cached_shot(3, size=pages.PREVIEW).image
    blurred = pages.cached_shot(3, size=pages.PREVIEW, problem="blurred").image
    empty = pages.cached_shot(3, size=pages.PREVIEW, problem="empty").image
    capture = PageCapture(frames=3, still_px=4.0)
    statuses = [capture.feed(f).status for f in (empty, blurred)]
    assert statuses == ["no_page", "adjust"]
    assert capture.feed(blurred).message_vi == vietnamese(MESSAGES["blurred"])
    # Held still (a pixel of jitter): the third steady frame is the one to take.
    states = [capture.feed(_shifted(good, dx)) for dx in (0, 1, 0, 1, 0)]
    assert [s.status for s in states] == [
        "hold_still",
        "hold_still",
        "capture",
        "captured",
        "captured",
    ]
    assert [s.capture for s in states].count(True) == 1
    assert states[0].message_vi == "Vui lòng giữ yên trang giấy."
    # Moving while settling starts the count again.
    capture.reset()
    states = [capture.feed(_shifted(good, dx)) for dx in (0, 12, 24, 24, 24)]
    assert [s.status for s in states][-1] == "capture"
    assert [s.steady_frames for s in states] == [1, 1, 1, 2, 3]
    # The next page (taken away, then put down): armed again.
    assert capture.feed(empty).status == "no_page"
    states = [capture.feed(good) for _ in range(3)]
    assert states[-1].capture
    assert states[-1].as_dict()["check"]["quad"] is not None


def test_manual_capture_takes_what_it_can_and_refuses_what_it_cannot() -> None:
    capture = PageCapture()
    with pytest.raises(PageRejected):
        capture.capture()  # nothing seen yet
    glare = pages.cached_shot(1, size=pages.PREVIEW, problem="glare").image
    assert capture.feed(glare).status == "adjust"
    page = capture.capture()  # the citizen pressed OK anyway
    assert "glare" in page.check.problems and page.paper == "ID-1"
    with pytest.raises(PageRejected) as refused:
        capture.capture(pages.cached_shot(1, size=pages.PREVIEW, problem="cut_off").image)
    assert refused.value.message_vi == vietnamese(MESSAGES["cut_off"])
    assert refused.value.exit_code == 2


def test_bad_frames_are_refused() -> None:
    with pytest.raises(BadInput):
        check_page(np.zeros((10, 10), np.float32))
    with pytest.raises(BadInput):
        check_page(np.zeros((0, 0, 3), np.uint8))
    # A grey or BGRA frame is fine.
    shot = pages.cached_shot(2, size=pages.PREVIEW)
    assert check_page(cv2.cvtColor(shot.image, cv2.COLOR_BGR2BGRA)).usable
    assert check_page(cv2.cvtColor(shot.image, cv2.COLOR_BGR2GRAY)).found
