"""Finding the sheet: a bright, unsaturated quadrilateral on the darker grey platen."""

from __future__ import annotations

import cv2
import numpy as np

from edge.vision.page.common import MIN_AREA, MIN_EDGE_STEP, MIN_PAPER_CONTRAST
from edge.vision.qr import to_gray
from edge.vision.quad import intersect_sides, refit_sides


def _bgr(frame: np.ndarray) -> np.ndarray:
    gray = to_gray(frame)  # validates the array
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def _resized(image: np.ndarray, width: int, *, fast: bool = False) -> tuple[np.ndarray, float]:
    """A copy `width` wide (never enlarged), and the scale; area resampling. fast: halve by
    pyrDown first (at a ratio like 0.25 area resampling is 5x slower than pyramid steps, which
    blur a little more: fine for estimating light, not for judging blur)."""
    scale = width / image.shape[1]
    if scale >= 1:
        return image, 1.0
    out = image
    while fast and width / out.shape[1] <= 0.5:
        out = cv2.pyrDown(out)
    if out.shape[1] != width:
        height = max(1, round(image.shape[0] * scale))
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_AREA)
    return out, scale


def _view(image: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """A copy about `width` wide: shrunk by a whole factor when that lands within 5 % of the
    width (the camera's 2592 px still: 1296, by OpenCV's fast path for whole ratios), else to
    exactly `width`. Blur is judged on this copy, so its scale must not wander."""
    factor = image.shape[1] // width
    if factor >= 2 and image.shape[1] / factor <= 1.05 * width:
        h, w = image.shape[:2]
        size = (w // factor, h // factor)
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA), size[0] / w
    return _resized(image, width)


def _channels_min_max(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b, g, r = cv2.split(bgr)
    return cv2.min(cv2.min(b, g), r), cv2.max(cv2.max(b, g), r)


def _skin(bgr: np.ndarray) -> np.ndarray:
    """Skin-coloured pixels: the usual YCrCb box, and clearly saturated (white paper under a
    warm lamp falls in the box too, but is nearly grey)."""
    ycrcb = cv2.inRange(cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb), (50, 138, 80), (255, 178, 128))
    low, high = _channels_min_max(bgr)
    saturated = cv2.compare(
        cv2.subtract(high, low), cv2.convertScaleAbs(high, alpha=0.2), cv2.CMP_GT
    )
    return cv2.bitwise_and(ycrcb, saturated)


def _paper_mask(small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bright, unsaturated pixels: paper. The threshold sits between the platen's level (the
    frame border) and the brightest paper, so shade on the page stays above it."""
    gray = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
    border = np.concatenate(
        [gray[:4].ravel(), gray[-4:].ravel(), gray[:, :4].ravel(), gray[:, -4:].ravel()]
    )
    platen = float(np.percentile(border, 30))
    bright = float(np.percentile(gray, 99.5))  # a card covers only a few % of the frame
    threshold = platen + 0.35 * (bright - platen)
    mask: np.ndarray = (gray > threshold).astype(np.uint8) * 255
    low, high = _channels_min_max(small)
    mask[(cv2.subtract(high, low) > 70) & (gray < 200)] = 0  # a coloured object is not paper
    mask[_skin(small) > 0] = 0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2)
    return mask, gray


def _find(small: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(quad, the sheet's mask) at the detection scale."""
    mask, gray = _paper_mask(small)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    h, w = mask.shape
    if cv2.contourArea(contour) < 0.25 * MIN_AREA * h * w:
        return None
    # A sheet has a crisp edge against the platen; the edge of a shadow or of the bright side of
    # a light ramp on an empty platen is soft.
    if _edge_step(gray, contour) < MIN_EDGE_STEP:
        return None
    sheet = np.zeros_like(mask)
    cv2.drawContours(sheet, [contour], -1, 255, -1)
    # And it lies on the darker platen: a white patch on a page (a QR code on a scanned card)
    # is not a sheet.
    outside = gray[sheet == 0]
    if outside.size > 0.03 * h * w:
        paper = float(np.percentile(gray[sheet > 0], 75))
        if paper < MIN_PAPER_CONTRAST * max(float(np.median(outside)), 1.0):
            return None
    return _quad_of(contour), sheet


def _edge_step(gray: np.ndarray, contour: np.ndarray) -> float:
    """Median brightness slope (grey levels per pixel) across the outline, where it is not
    the frame's border."""
    h, w = gray.shape
    pts = contour.reshape(-1, 2)
    pts = pts[(pts[:, 0] > 2) & (pts[:, 0] < w - 3) & (pts[:, 1] > 2) & (pts[:, 1] < h - 3)]
    if len(pts) < 20:
        return float("inf")  # the sheet covers the whole frame: nothing to compare with
    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    # The mask's outline lies a pixel or two off the steepest point: take the best nearby.
    magnitude = cv2.dilate(cv2.magnitude(gx, gy), np.ones((5, 5), np.uint8)) / 8
    return float(np.median(magnitude[pts[:, 1], pts[:, 0]]))


def _quad_of(contour: np.ndarray) -> np.ndarray:
    """Four corners of the sheet: the hull simplified to 4 points, each side then refit to the
    outline points along it (a finger or a clipped corner bends the hull, not the fit)."""
    hull = cv2.convexHull(contour)
    perimeter = cv2.arcLength(hull, True)
    approx = None
    for eps in (0.01, 0.02, 0.03, 0.05, 0.08):
        candidate = cv2.approxPolyDP(hull, eps * perimeter, True)
        if len(candidate) == 4:
            approx = candidate
            break
    if approx is None:
        rect = cv2.boxPoints(cv2.minAreaRect(hull))
        approx = rect.reshape(-1, 1, 2)
    quad = _order(approx.reshape(4, 2).astype(np.float32))
    return _refine(quad, contour.reshape(-1, 2).astype(np.float32))


def _refine(quad: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Each side refit to the outline points along its middle 80 %."""
    return refit_sides(
        quad, points, span=(0.1, 0.9), band_px=2.0, band_frac=0.02, min_side=4, max_shift_frac=0.08
    )


def _order(points: np.ndarray) -> np.ndarray:
    """Clockwise on screen (y down), starting from the corner nearest the top-left."""
    centre = points.mean(axis=0)
    angles = np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0])
    ordered = points[np.argsort(angles)]
    first = int(np.argmin(ordered.sum(axis=1)))
    return np.roll(ordered, -first, axis=0)


def _snap(gray: np.ndarray, quad: np.ndarray, reach: float = 8.0) -> np.ndarray:
    """Move each side onto the strongest paper-to-platen step across it (sub-pixel, from 48
    grey profiles per side), then intersect the sides again. Profiles where the step is weak (a
    finger, a shadow along the edge) are left out; a side with too few stays where it was."""
    centre = quad.mean(axis=0)
    offsets = np.arange(-reach, reach + 0.25, 0.5, dtype=np.float32)
    ts = np.linspace(0.08, 0.92, 48, dtype=np.float32)[:, None]
    lines = []
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        length = float(np.hypot(*(b - a)))
        u = (b - a) / max(length, 1e-6)
        n = np.array([-u[1], u[0]], np.float32)
        if (a + b) @ n / 2 < centre @ n:
            n = -n  # outward
        base = a + ts * (b - a)  # 48 x 2
        xs = (base[:, :1] + offsets[None, :] * n[0]).astype(np.float32)
        ys = (base[:, 1:] + offsets[None, :] * n[1]).astype(np.float32)
        profiles = cv2.remap(gray, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        step = np.diff(profiles, axis=1)  # bright paper to dark platen: negative outwards
        k = np.argmin(step, axis=1)
        depth = -step[np.arange(len(k)), k]
        good = (depth > 0.4 * np.median(depth)) & (k > 0) & (k < step.shape[1] - 1)
        if np.count_nonzero(good) < 12:
            lines.append((a, u))
            continue
        rows = np.nonzero(good)[0]
        kk = k[rows]
        left, mid, right = step[rows, kk - 1], step[rows, kk], step[rows, kk + 1]
        denom = left - 2 * mid + right
        frac = np.where(np.abs(denom) > 1e-6, 0.5 * (left - right) / denom, 0.0)
        s = offsets[kk] + 0.25 + 0.5 * np.clip(frac, -0.5, 0.5)  # diff sits between samples
        points = (base[rows] + s[:, None] * n).astype(np.float32)
        vx, vy, x0, y0 = cv2.fitLine(points, cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        lines.append((np.array([x0, y0]), np.array([vx, vy])))
    snapped = intersect_sides(lines)
    if snapped is None or np.abs(snapped - quad).max() > 2 * reach:
        return quad
    return snapped
