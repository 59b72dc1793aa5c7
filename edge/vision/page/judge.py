"""Judging the shot: check_page() says what the citizen must fix before the page is taken."""

from __future__ import annotations

import cv2
import numpy as np

from edge.vision.page.common import (
    DETECT_WIDTH,
    GLARE_LEVEL,
    MAX_SIDE_RATIO,
    MAX_TILT_DEG,
    MIN_AREA,
    MIN_GLARE_AREA,
    MIN_PAPER_LEVEL,
    MIN_SHARPNESS,
    MIN_SKIN_AREA,
    QUALITY_WIDTH,
    Box,
    PageCheck,
    Problem,
    Quality,
)
from edge.vision.page.find import _bgr, _channels_min_max, _find, _skin, _snap, _view


def check_page(frame: np.ndarray) -> PageCheck:
    """Find the sheet and judge the shot (see MESSAGES for what each problem tells the citizen)."""
    bgr = _bgr(frame)
    fh, fw = bgr.shape[:2]
    view, vscale = _view(bgr, QUALITY_WIDTH)
    small, half = _view(view, DETECT_WIDTH)
    scale = vscale * half
    found = _find(small)
    if found is None:
        level = float(np.percentile(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), 97))
        problem: Problem = "too_dark" if level < MIN_PAPER_LEVEL * 0.6 else "no_page"
        return PageCheck(False, None, Quality(), (problem,), (fw, fh))
    quad_small, sheet_small = found
    # The outline is found at 640 px; its sides are then placed on the 1280 px copy.
    gray = cv2.cvtColor(view, cv2.COLOR_BGR2GRAY)
    quad = (
        _snap(cv2.GaussianBlur(gray, (3, 3), 0).astype(np.float32), quad_small * (vscale / scale))
        / vscale
    )
    sh, sw = sheet_small.shape
    edges = _touching(sheet_small)
    area = float(cv2.contourArea(quad_small)) / (sh * sw)
    tilt, side_ratio = _geometry(quad)

    inside_small = np.zeros_like(sheet_small)
    cv2.fillConvexPoly(inside_small, np.rint(quad_small).astype(np.int32), 255)
    glare, glare_boxes = _glare(small, inside_small)
    finger_box = _finger(small, inside_small)
    # Blur needs the finer copy: at 640 px a sharp and a slightly soft page look alike.
    page = cv2.resize(
        cv2.bitwise_and(inside_small, sheet_small),
        (view.shape[1], view.shape[0]),
        interpolation=cv2.INTER_NEAREST,
    )
    interior = cv2.erode(page, cv2.getStructuringElement(cv2.MORPH_RECT, (15, 15)))
    paper_level = float(np.percentile(gray[interior > 0], 90)) if interior.any() else 0.0
    sharpness, lap_var = _sharpness(gray, interior)
    to_frame = 1 / scale
    quality = Quality(
        area=area,
        sharpness=sharpness,
        laplacian_var=lap_var,
        paper_level=paper_level,
        glare=glare,
        tilt_deg=tilt,
        side_ratio=side_ratio,
        cut_edges=edges,
    )
    problems: list[Problem] = []
    if edges:
        problems.append("cut_off")
    if area < MIN_AREA:
        problems.append("too_small")
    if tilt > MAX_TILT_DEG or side_ratio > MAX_SIDE_RATIO:
        problems.append("too_skewed")
    if paper_level < MIN_PAPER_LEVEL:
        problems.append("too_dark")
    if finger_box is not None:
        problems.append("finger")
    if glare_boxes:
        problems.append("glare")
    if sharpness is not None and sharpness < MIN_SHARPNESS and "too_dark" not in problems:
        problems.append("blurred")
    return PageCheck(
        found=True,
        quad=tuple((float(x), float(y)) for x, y in quad),
        quality=quality,
        problems=tuple(problems),
        frame_size=(fw, fh),
        glare_boxes=tuple(_scaled_box(b, to_frame) for b in glare_boxes),
        finger_box=None if finger_box is None else _scaled_box(finger_box, to_frame),
    )


def _scaled_box(box: Box, factor: float) -> Box:
    return tuple(round(v * factor) for v in box)  # type: ignore[return-value]


def _touching(sheet: np.ndarray) -> tuple[str, ...]:
    """Frame edges the sheet's mask reaches (2 px at the detection scale)."""
    m = 2
    sides = {
        "top": sheet[:m].any(),
        "bottom": sheet[-m:].any(),
        "left": sheet[:, :m].any(),
        "right": sheet[:, -m:].any(),
    }
    return tuple(name for name, hit in sides.items() if hit)


def _geometry(quad: np.ndarray) -> tuple[float, float]:
    """Worst corner angle away from 90 degrees, and worst ratio of opposite sides."""
    worst = 0.0
    for i in range(4):
        a, b, c = quad[i - 1], quad[i], quad[(i + 1) % 4]
        u, v = a - b, c - b
        cos = float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-9))
        worst = max(worst, abs(np.degrees(np.arccos(np.clip(cos, -1, 1))) - 90))
    sides = np.hypot(*(np.roll(quad, -1, axis=0) - quad).T)
    ratio = max(sides[0] / sides[2], sides[2] / sides[0], sides[1] / sides[3], sides[3] / sides[1])
    return worst, float(ratio)


def _sharpness(
    gray: np.ndarray, interior: np.ndarray, tile: int = 48
) -> tuple[float | None, float | None]:
    """Variance of the Laplacian over the tiles that hold print, divided by the grey variance of
    the same tiles (so light and contrast do not count, only how crisp the strokes are). Median
    over the tiles; None when the page shows no print at all."""
    h, w = (gray.shape[0] // tile) * tile, (gray.shape[1] // tile) * tile
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)[:h, :w]

    def tiles(a: np.ndarray) -> np.ndarray:
        return a[:h, :w].reshape(h // tile, tile, w // tile, tile).swapaxes(1, 2)

    inside = tiles(interior).min(axis=(2, 3)) > 0
    gvar = tiles(gray.astype(np.float32)).var(axis=(2, 3))
    lvar = tiles(lap).var(axis=(2, 3))
    keep = inside & (gvar >= 150)  # blank paper has nothing to judge by
    if np.count_nonzero(keep) < 3:
        return None, None
    return float(np.median(lvar[keep] / gvar[keep])), float(np.median(lvar[keep]))


def _glare(view: np.ndarray, inside: np.ndarray) -> tuple[float, list[Box]]:
    """Clipped blobs on the page: every channel at GLARE_LEVEL or more."""
    low, _ = _channels_min_max(view)
    clipped = cv2.bitwise_and((low >= GLARE_LEVEL).astype(np.uint8), (inside > 0).astype(np.uint8))
    page_area = max(1, int(np.count_nonzero(inside)))
    count, _, stats, _ = cv2.connectedComponentsWithStats(clipped, connectivity=8)
    boxes = []
    total = 0
    for i in range(1, count):
        x, y, w, h, a = (int(v) for v in stats[i])
        if a >= MIN_GLARE_AREA * page_area:
            boxes.append((x, y, w, h))
            total += a
    return total / page_area, boxes


def _finger(view: np.ndarray, inside: np.ndarray) -> Box | None:
    """A skin-coloured blob reaching from outside the page onto it (best effort: a skin-coloured
    glove, sleeve or object looks the same; a hand of another colour is missed)."""
    skin = _skin(view)
    skin = cv2.morphologyEx(
        skin, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    )
    count, labels, stats, _ = cv2.connectedComponentsWithStats(skin, connectivity=8)
    frame_area = skin.shape[0] * skin.shape[1]
    page_area = max(1, int(np.count_nonzero(inside)))
    ring = cv2.bitwise_and(
        cv2.dilate(inside, np.ones((9, 9), np.uint8)),
        cv2.bitwise_not(cv2.erode(inside, np.ones((9, 9), np.uint8))),
    )
    best: Box | None = None
    best_area = 0
    for i in range(1, count):
        x, y, w, h, a = (int(v) for v in stats[i])
        if a < MIN_SKIN_AREA * frame_area:
            continue
        blob = labels[y : y + h, x : x + w] == i
        on_page = np.count_nonzero(blob & (inside[y : y + h, x : x + w] > 0))
        crosses = np.count_nonzero(blob & (ring[y : y + h, x : x + w] > 0))
        # Reaches onto the page (0.3 % of it at least: a fingertip) across its edge, from outside.
        if on_page >= 0.003 * page_area and crosses > 0 and on_page < a and a > best_area:
            best, best_area = (x, y, w, h), a
    return best
