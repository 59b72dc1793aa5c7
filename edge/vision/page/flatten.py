"""Flattening: the sheet cut out at a known DPI, straightened, its light evened out, cleaned."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edge.vision.page.common import (
    A4_MM,
    DPI,
    ID1_MM,
    MIN_SKEW_DEG,
    PageCheck,
    PageRejected,
    Quality,
    ScannedPage,
)
from edge.vision.page.find import _bgr, _channels_min_max, _resized
from edge.vision.page.judge import check_page
from edge.vision.qr import QrCode, decode_qr


def paper_size(
    quad: np.ndarray, frame_size: tuple[int, int] | None
) -> tuple[str, tuple[float, float]]:
    """("A4" | "ID-1" | "other", (short, long) mm) from the sheet's shape and its share of the
    frame (a card covers little of it; frame_size None: judge by shape alone). The kiosk frames
    an A4 sheet lying across the platen; a sheet of another shape is given A4's long side."""
    sides = np.hypot(*(np.roll(quad, -1, axis=0) - quad).T)
    long_side = max(sides[0] + sides[2], sides[1] + sides[3]) / 2
    short_side = min(sides[0] + sides[2], sides[1] + sides[3]) / 2
    aspect = long_side / short_side
    small = True
    if frame_size is not None:
        small = (
            float(cv2.contourArea(np.array(quad, dtype=np.float32)))
            / (frame_size[0] * frame_size[1])
            < 0.2
        )
    if abs(aspect / (ID1_MM[0] / ID1_MM[1]) - 1) < 0.1 and small:
        return "ID-1", (ID1_MM[1], ID1_MM[0])
    if abs(aspect / (A4_MM[1] / A4_MM[0]) - 1) < 0.1:
        return "A4", A4_MM
    return "other", (round(A4_MM[1] / aspect, 1), A4_MM[1])


def rectify(
    frame: np.ndarray,
    quad: np.ndarray | Any,
    *,
    dpi: int = DPI,
    size_mm: tuple[float, float] | None = None,
) -> np.ndarray:
    """The sheet cut out and flattened to size_mm (short, long) at dpi, as it is (no deskew,
    no enhancement). Sheets come out upright (portrait), cards lying (landscape); which end
    is up is decided later (OCR)."""
    bgr = _bgr(frame)
    quad = np.array(quad, dtype=np.float32).reshape(4, 2)
    if size_mm is None:
        _, size_mm = paper_size(quad, (bgr.shape[1], bgr.shape[0]))
    matrix, size = _homography(quad, dpi, size_mm)
    return _warp(bgr, matrix, size)


def _homography(
    quad: np.ndarray, dpi: int, size_mm: tuple[float, float]
) -> tuple[np.ndarray, tuple[int, int]]:
    """(frame-to-page homography, page size in px)."""
    short_mm, long_mm = sorted(size_mm)
    card = long_mm < 120
    sides = np.hypot(*(np.roll(quad, -1, axis=0) - quad).T)
    first_is_long = sides[0] + sides[2] > sides[1] + sides[3]
    # Start from a corner so that the first side runs along the output's width.
    if first_is_long != card:
        quad = np.roll(quad, -1, axis=0)
    w_mm, h_mm = (long_mm, short_mm) if card else (short_mm, long_mm)
    w, h = round(w_mm / 25.4 * dpi), round(h_mm / 25.4 * dpi)
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    return cv2.getPerspectiveTransform(np.array(quad, dtype=np.float32), target), (w, h)


def _warp(bgr: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    # The source is usually coarser than the target: linear is as good as cubic here, 2x faster.
    return cv2.warpPerspective(
        bgr, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def _turn(degrees: float, size: tuple[int, int]) -> np.ndarray:
    """3x3: turn by degrees (counter-clockwise) about the centre of an image of size w, h."""
    w, h = size
    return np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0), [0, 0, 1]])


def paper_background(image: np.ndarray) -> np.ndarray:
    """The light falling on the paper, per channel (uint8, full size): the page at a quarter
    of its size, with print removed (pixels darker than their neighbourhood's paper, or
    coloured), filled in by normalised convolution and smoothed."""
    small, _ = _resized(image, max(64, image.shape[1] // 4), fast=True)
    small_f = small.astype(np.float32)
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
    local_max = cv2.dilate(gray, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)))
    low, high = _channels_min_max(small)
    sat = cv2.subtract(high, low).astype(np.float32)
    paper = ((gray >= 0.93 * local_max) & (sat < 0.3 * gray + 10)).astype(np.float32)
    sigma = max(2.0, small.shape[1] / 60)
    weighted = small_f * paper[:, :, None]
    weight = cv2.GaussianBlur(paper, (0, 0), sigma)
    near = cv2.GaussianBlur(weighted, (0, 0), sigma) / np.maximum(weight, 1e-3)[:, :, None]
    # The wide estimate: the same at a quarter of this size (4x the reach, 1/16 the work).
    size = (small.shape[1], small.shape[0])
    quarter = (max(1, size[0] // 4), max(1, size[1] // 4))
    wide_weight = cv2.GaussianBlur(
        cv2.resize(paper, quarter, interpolation=cv2.INTER_AREA), (0, 0), sigma
    )
    wide = cv2.GaussianBlur(
        cv2.resize(weighted, quarter, interpolation=cv2.INTER_AREA), (0, 0), sigma
    )
    wide = cv2.resize(wide / np.maximum(wide_weight, 1e-3)[:, :, None], size)
    wide_weight = cv2.resize(wide_weight, size)
    trust = np.clip(weight / 0.3, 0, 1)[:, :, None]  # in large print (a photo): the wider one
    background = trust * near + (1 - trust) * wide
    background[wide_weight < 1e-3] = float(np.percentile(gray, 95))
    background = np.clip(background, 8, 255).astype(np.uint8)
    return cv2.resize(background, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)


_INK_CURVE = 1.4  # reflectance r -> r ** 1.4: paper stays white, strokes and seals get deeper


def enhance(image: np.ndarray, *, white: int = 250) -> np.ndarray:
    """Even light, white paper, crisper print, colours kept (a red seal stays red, a blue
    signature blue): each channel divided by the paper's own colour under the light (which
    flattens shade and white-balances in one step), then one tone curve for every channel, so
    hues are kept while the print gains contrast."""
    # 255 = paper; brighter than the paper clips to paper.
    ratio8 = cv2.divide(image, paper_background(image), scale=255.0)
    curve = np.clip(white * (np.arange(256) / 255.0) ** _INK_CURVE, 0, 255).astype(np.uint8)
    return cv2.LUT(ratio8, curve)


def ocr_gray(enhanced: np.ndarray, dpi: int = DPI) -> np.ndarray:
    """The OCR copy: grey, with seals and signatures (coloured ink in big, round or blocky
    marks) lifted to white so Tesseract does not turn them into letters. Black print over a
    seal stays, and so does coloured print (a red title: a long, low run of marks). Chosen by
    measurement, see docs/document-ocr.md."""
    gray = cv2.cvtColor(enhanced, cv2.COLOR_BGR2GRAY)
    low, high = _channels_min_max(enhanced)
    sat = cv2.subtract(high, low)
    seals = _seal_mask(sat, dpi)
    if seals is not None:
        # Inside a seal's box even faint or mixed ink (a signature over the seal) goes. (Taking
        # the brightest channel there instead, to keep black print under the seal, left more
        # of the seal for Tesseract to misread: 2.6 % CER against 1.1 % on the corpus.)
        gray[(seals > 0) & (sat > 18)] = 255
    return gray


def _seal_mask(sat: np.ndarray, dpi: int) -> np.ndarray | None:
    """Boxes of the seals and signatures: marks of coloured ink (joined across 1.5 mm) longer
    than 10 mm that are not a line of print (longer than 4x their height and under 9 mm)."""
    half = cv2.resize(sat, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    px_mm = dpi / 25.4 / 2
    colour = (half > 40).astype(np.uint8)
    if not colour.any():
        return None
    join = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(3 * px_mm) | 1,) * 2)
    _, _, stats, _ = cv2.connectedComponentsWithStats(cv2.dilate(colour, join))
    mask = np.zeros_like(colour)
    found = False
    for x, y, w, h, _area in stats[1:]:
        long_side, short_side = max(w, h) / px_mm, min(w, h) / px_mm
        if long_side < 10 or (long_side > 4 * short_side and short_side < 9):
            continue
        pad = int(px_mm)
        mask[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad] = 1
        found = True
    if not found:
        return None
    return cv2.resize(mask, (sat.shape[1], sat.shape[0]), interpolation=cv2.INTER_NEAREST)


def estimate_skew(gray: np.ndarray, *, max_deg: float = 5.0) -> float:
    """The print's small angle on the page in degrees (turn the image by -angle to level it),
    from the sharpest projection of the ink over a range of angles; lines may run across or
    down the page (a sheet not yet turned upright), whichever projects sharper."""
    small, _ = _resized(gray, 800)
    _, ink = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    ys, xs = np.nonzero(ink)
    if len(xs) < 500:
        return 0.0
    if len(xs) > 30000:  # plenty for a 0.05 degree peak, and half the work of 60000
        pick = np.random.default_rng(0).choice(len(xs), 30000, replace=False)
        xs, ys = xs[pick], ys[pick]
    # Whole-pixel centre: at 0 and 90 degrees every row keeps its own bin (a half-pixel centre
    # would round two rows into one and fake a sharp projection).
    xs = (xs - small.shape[1] // 2).astype(np.float32)
    ys = (ys - small.shape[0] // 2).astype(np.float32)

    def score(deg: float) -> float:
        rad = np.deg2rad(deg)
        rows = np.rint(ys * np.cos(rad) - xs * np.sin(rad)).astype(np.int64)
        counts = np.bincount(rows - rows.min()).astype(np.float64)
        return float((counts**2).sum())

    # Each family is judged by how much its best angle beats its own median: the spread of the
    # ink across or down the page differs, the peak of aligned lines does not.
    steps = np.arange(-max_deg, max_deg + 1e-6, 0.5)
    best, gain = 0.0, -1.0
    for base in (0.0, 90.0):
        scores = np.array([score(base + a) for a in steps])
        if scores.max() / np.median(scores) > gain:
            gain = scores.max() / np.median(scores)
            best = base + float(steps[int(np.argmax(scores))])
    fine = np.arange(best - 0.5, best + 0.5 + 1e-6, 0.05)
    angle = float(max(fine, key=score))
    return angle - 90.0 if angle > 45 else angle


def deskew(image: np.ndarray, degrees: float) -> np.ndarray:
    """Turn the image by -degrees about its centre, filling with the colour of its border."""
    if abs(degrees) < 0.1:
        return image
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(
        image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def scan(
    frame: np.ndarray, *, dpi: int = DPI, check: PageCheck | None = None, qr: bool = True
) -> ScannedPage:
    """Cut out, flatten, straighten and clean the page in the frame; read any QR on it.

    Raises PageRejected when no page can be cut out (no page, cut off, too small, tilted, too
    dark); other problems (blur, glare, finger) are kept in .check for the caller to show.
    check: a PageCheck of this very frame, to avoid judging it twice.
    """
    check = check or check_page(frame)
    if not check.capturable or check.quad is None:
        raise PageRejected(check)
    bgr = _bgr(frame)
    quad = np.array(check.quad, dtype=np.float32)
    paper, size_mm = paper_size(quad, check.frame_size)
    matrix, (w, h) = _homography(quad, dpi, size_mm)
    # The print's skew, measured on a half-size cut; then one warp with the turn folded in.
    halved = np.diag([0.5, 0.5, 1.0]) @ matrix
    skew = _print_skew(_warp(bgr, halved, (w // 2, h // 2)), dpi // 2)
    if abs(skew) >= MIN_SKEW_DEG:
        matrix = _turn(skew, (w, h)) @ matrix
    flat = _warp(bgr, matrix, (w, h))
    return _finish(flat, dpi=dpi, paper=paper, check=check, matrix=matrix, skew=skew, qr=qr)


def flat_page(image: np.ndarray, *, dpi: int | None = None, qr: bool = True) -> ScannedPage:
    """A page that is already flat (a scan, or a photo filling the frame): straightened,
    cleaned and read for QR like scan() does, without looking for a sheet. dpi: default from
    the size, taking the image's long side as that of the paper size its shape suggests (A4,
    ID-1)."""
    bgr = _bgr(image)
    h, w = bgr.shape[:2]
    corners = ((0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h)))
    check = PageCheck(True, corners, Quality(area=1.0), (), (w, h))
    paper, size_mm = paper_size(np.array(corners, dtype=np.float32), None)
    dpi = dpi or int(np.clip(round(max(h, w) / (size_mm[1] / 25.4)), 50, 600))
    small, factor = _resized(bgr, max(64, w // 2))
    skew = _print_skew(small, max(1, round(dpi * factor)))
    matrix = np.eye(3)
    if abs(skew) >= MIN_SKEW_DEG:
        matrix = _turn(skew, (w, h))
        bgr = cv2.warpPerspective(bgr, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
    return _finish(bgr, dpi=dpi, paper=paper, check=check, matrix=matrix, skew=skew, qr=qr)


def _print_skew(page: np.ndarray, dpi: int) -> float:
    """estimate_skew on the OCR copy of a (small) flat page, its edge left out: the sheet's
    straight border, seals and shade would outweigh the lines of print."""
    gray = ocr_gray(enhance(page), dpi)
    rim = max(2, round(4 / 25.4 * dpi))
    return estimate_skew(gray[rim:-rim, rim:-rim])


def _finish(
    flat: np.ndarray,
    *,
    dpi: int,
    paper: str,
    check: PageCheck,
    matrix: np.ndarray,
    skew: float,
    qr: bool,
) -> ScannedPage:
    """Enhance and make the OCR copy, with QR codes blanked out of it (Tesseract reads their
    modules as letters); matrix maps the frame onto the flat page."""
    enhanced = enhance(flat)
    gray = ocr_gray(enhanced, dpi)
    codes: list[QrCode] = []
    if qr:
        back = np.linalg.inv(matrix)
        for code in decode_qr(flat, thorough=False):
            corners = np.array(code.corners, dtype=np.float32)
            centre = corners.mean(axis=0)
            cv2.fillConvexPoly(
                gray, np.rint(centre + 1.12 * (corners - centre)).astype(np.int32), 255
            )
            codes.append(_mapped(code, back))
    # The sheet's own edge (and any platen left along it) reads as a row of bars and dashes.
    rim = max(2, round(2 / 25.4 * dpi))
    gray[:rim], gray[-rim:], gray[:, :rim], gray[:, -rim:] = 255, 255, 255, 255
    return ScannedPage(
        image=enhanced,
        gray=gray,
        flat=flat,
        dpi=dpi,
        paper=paper,
        check=check,
        skew_deg=skew,
        qr=tuple(codes),
    )


def _mapped(code: QrCode, matrix: np.ndarray) -> QrCode:
    pts = cv2.perspectiveTransform(np.array([code.corners], dtype=np.float32), matrix)[0]
    return QrCode(code.text, tuple((float(x), float(y)) for x, y in pts), code.decoder)
