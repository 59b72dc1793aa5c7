"""Pages on the platen: find the sheet in a camera frame, judge the shot, flatten and clean it.

`check_page(frame)` finds the sheet (a bright, unsaturated quadrilateral on the darker grey
platen) and says what the citizen must fix: no page, cut off, too small, tilted, a finger on it,
glare, blur, too dark. `scan(frame)` flattens the sheet to a known DPI, straightens the print
(deskew), flattens the light and white-balances from the paper while keeping ink colours, and
gives a grey copy for OCR. `PageCapture` watches the live frames and says when to take the shot.
The thresholds and their measured basis are in docs/document-ocr.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import cv2
import numpy as np

from edge.errors import BadInput
from edge.texts import N_, Text
from edge.vision.qr import QrCode, decode_qr, to_gray
from edge.vision.quad import intersect_sides, refit_sides

logger = logging.getLogger(__name__)

# Rectified pages, sheets and cards: 200 dpi, what the camera resolves on the platen; 300 read
# no better (cards: worse) and took 1.4x longer. See docs/document-ocr.md.
DPI = 200
A4_MM = (210.0, 297.0)
ID1_MM = (85.6, 54.0)
DETECT_WIDTH = 640  # the sheet is searched on a copy this wide
QUALITY_WIDTH = 1280  # sides are placed and blur judged on a copy this wide (the live preview)

# Judged on the generated corpus (tests/pages.py), see docs/document-ocr.md.
MIN_AREA = 0.03  # of the frame; an ID card on the platen covers about 6 %
MIN_PAPER_CONTRAST = 1.4  # paper / platen brightness: 2.0-2.9 measured on the corpus
MIN_EDGE_STEP = 4.0  # grey levels per px across the sheet's outline at 640 px (see _edge_step)
MAX_TILT_DEG = 20.0  # largest corner angle away from 90 degrees: steeper is a lifted or bent sheet
MAX_SIDE_RATIO = 1.3  # opposite sides; more is a sheet seen too obliquely
# Straightening resamples the page (softer print): only when the print is off by more than the
# estimate's own error (+-0.15 degrees on the corpus); 0.25 degrees drifts 7 px along an A4 line.
MIN_SKEW_DEG = 0.25
MIN_SHARPNESS = 2.0  # var(Laplacian) / var(grey) over the text tiles of the page, at 1280 px
MIN_PAPER_LEVEL = 90  # the paper's bright level (0-255); darker is too dark to read
GLARE_LEVEL = 250  # every channel at or above this: clipped
MIN_GLARE_AREA = 0.002  # of the page: one clipped blob this big is glare
MIN_SKIN_AREA = 0.002  # of the frame

Problem = Literal[
    "no_page", "too_dark", "cut_off", "too_small", "too_skewed", "finger", "glare", "blurred"
]
Box = tuple[int, int, int, int]  # x, y, w, h
Point = tuple[float, float]

# code -> what the citizen is told (English msgid; Vietnamese in the catalog, edge.texts)
MESSAGES: dict[Problem, str] = {
    "no_page": N_("No page found. Place the document in the capture area, printed side up."),
    "too_dark": N_("The picture is too dark. Do not block the light above the capture area."),
    "cut_off": N_(
        "Part of the page is outside the picture. Move the page to the middle of the capture area."
    ),
    "too_small": N_(
        "The document is too small in the picture. Place it in the middle of the capture area."
    ),
    "too_skewed": N_("The page is tilted or bent. Lay it flat on the capture area."),
    "finger": N_("A finger or hand is over the page. Take your hand off the page."),
    "glare": N_("There is glare on the page. Smooth the page flat or move it slightly."),
    "blurred": N_("The picture is blurred. Keep the page still."),
}
# Without these nothing usable can be cut out of the frame; the others still allow a manual shot.
BLOCKING: frozenset[Problem] = frozenset(
    {"no_page", "too_dark", "cut_off", "too_small", "too_skewed"}
)


class PageRejected(BadInput):
    """No usable page in the frame: `rule` is the problem's code, `text` what the citizen is
    told (message_vi, message_en: the same in each language; message_en is also str())."""

    code = "page_rejected"

    def __init__(self, check: PageCheck) -> None:
        self.rule: Problem = check.problems[0] if check.problems else "no_page"
        self.text = Text(MESSAGES[self.rule])
        super().__init__(self.text.en)
        self.message_vi = self.text.vi
        self.message_en = self.text.en
        self.check = check


@dataclass(frozen=True, slots=True)
class Quality:
    """The measures behind the verdict (see the thresholds above)."""

    area: float = 0.0  # page / frame
    sharpness: float | None = None  # var(Laplacian) / var(grey) on text tiles
    laplacian_var: float | None = None  # var(Laplacian) on the same tiles, raw
    paper_level: float | None = None  # 0-255
    glare: float = 0.0  # share of the page in clipped blobs
    tilt_deg: float = 0.0  # worst corner angle away from 90
    side_ratio: float = 1.0  # worst ratio of opposite sides
    cut_edges: tuple[str, ...] = ()  # frame edges the page touches

    def as_dict(self) -> dict[str, Any]:
        def r(v: float | None, n: int = 3) -> float | None:
            return None if v is None else round(float(v), n)

        return {
            "area": r(self.area),
            "sharpness": r(self.sharpness),
            "laplacian_var": r(self.laplacian_var, 1),
            "paper_level": r(self.paper_level, 1),
            "glare": r(self.glare, 4),
            "tilt_deg": r(self.tilt_deg, 1),
            "side_ratio": r(self.side_ratio),
            "cut_edges": list(self.cut_edges),
        }


@dataclass(frozen=True, slots=True)
class PageCheck:
    """What check_page saw in one frame. quad: the sheet's corners in the frame, clockwise from
    the one nearest the frame's top-left (the page's own top is known only after OCR);
    problems: most important first, empty when the shot is good."""

    found: bool
    quad: tuple[Point, ...] | None
    quality: Quality
    problems: tuple[Problem, ...]
    frame_size: tuple[int, int]  # width, height
    glare_boxes: tuple[Box, ...] = ()
    finger_box: Box | None = None

    @property
    def usable(self) -> bool:
        """Good enough to capture automatically: a page, and nothing to fix."""
        return self.found and not self.problems

    @property
    def capturable(self) -> bool:
        """A page can be cut out (a manual capture may go ahead, with warnings)."""
        return self.found and not BLOCKING.intersection(self.problems)

    def messages(self) -> list[dict[str, str]]:
        texts = {p: Text(MESSAGES[p]) for p in self.problems}
        return [{"code": p, "vi": t.vi, "en": t.en} for p, t in texts.items()]

    def as_dict(self) -> dict[str, Any]:
        """For the UI: the quad and boxes to draw, the measures, and what to tell the citizen."""
        return {
            "found": self.found,
            "usable": self.usable,
            "quad": None
            if self.quad is None
            else [[round(x, 1), round(y, 1)] for x, y in self.quad],
            "frame_size": list(self.frame_size),
            "quality": self.quality.as_dict(),
            "problems": list(self.problems),
            "messages": self.messages(),
            "glare_boxes": [list(b) for b in self.glare_boxes],
            "finger_box": None if self.finger_box is None else list(self.finger_box),
        }


@dataclass(frozen=True, slots=True, eq=False)
class ScannedPage:
    """A flattened page. `image` (BGR, enhanced, colours kept) is what the e-copy embeds at `dpi`;
    `gray` is the OCR copy; `flat` the rectified, straightened frame before enhancement. `rotation` is
    the quarter turns (counter-clockwise, as numpy.rot90) applied after rectification, by
    upright(); `qr` holds every QR read on the original, corners in the frame."""

    image: np.ndarray
    gray: np.ndarray
    flat: np.ndarray
    dpi: int
    paper: str  # "A4", "ID-1" or "other"
    check: PageCheck
    skew_deg: float = 0.0
    rotation: int = 0
    qr: tuple[QrCode, ...] = ()

    @property
    def size_mm(self) -> tuple[float, float]:
        """Width and height of the page as it now lies."""
        h, w = self.image.shape[:2]
        return round(w / self.dpi * 25.4, 1), round(h / self.dpi * 25.4, 1)

    def rotated(self, quarter_turns: int) -> ScannedPage:
        """The same page turned counter-clockwise by quarter_turns * 90 degrees."""
        k = quarter_turns % 4
        if k == 0:
            return self
        turn = lambda a: np.ascontiguousarray(np.rot90(a, k))  # noqa: E731
        return replace(
            self,
            image=turn(self.image),
            gray=turn(self.gray),
            flat=turn(self.flat),
            rotation=(self.rotation + k) % 4,
        )

    def __repr__(self) -> str:
        return f"ScannedPage({self.paper}, {self.size_mm} mm at {self.dpi} dpi, qr={len(self.qr)})"


# --- finding the sheet -------------------------------------------------------------------


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
    saturated = cv2.compare(cv2.subtract(high, low), cv2.multiply(high, 0.2), cv2.CMP_GT)
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
    mask = (gray > threshold).astype(np.uint8) * 255
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


# --- judging the shot ---------------------------------------------------------------------


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
    cv2.fillConvexPoly(inside_small, np.int32(np.rint(quad_small)), 255)
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
    ring = cv2.dilate(inside, np.ones((9, 9), np.uint8)) & ~cv2.erode(
        inside, np.ones((9, 9), np.uint8)
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


# --- flattening ---------------------------------------------------------------------------


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
        small = float(cv2.contourArea(np.float32(quad))) / (frame_size[0] * frame_size[1]) < 0.2
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
    quad = np.float32(quad).reshape(4, 2)
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
    target = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    return cv2.getPerspectiveTransform(np.float32(quad), target), (w, h)


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
    quad = np.float32(check.quad)
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
    paper, size_mm = paper_size(np.float32(corners), None)
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
            corners = np.float32(code.corners)
            centre = corners.mean(axis=0)
            cv2.fillConvexPoly(gray, np.int32(np.rint(centre + 1.12 * (corners - centre))), 255)
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
    pts = cv2.perspectiveTransform(np.float32([code.corners]), matrix)[0]
    return QrCode(code.text, tuple((float(x), float(y)) for x, y in pts), code.decoder)


# --- live capture -------------------------------------------------------------------------

Status = Literal["no_page", "adjust", "hold_still", "capture", "captured"]
HOLD_STILL = N_("Hold the page still.")
CAPTURED = N_("Page captured. Place the next page or press Next.")


@dataclass(frozen=True, slots=True)
class CaptureState:
    """One frame's answer: capture is True on exactly the frame that should be taken."""

    status: Status
    check: PageCheck
    steady_frames: int
    text: Text  # what the citizen is told

    @property
    def capture(self) -> bool:
        return self.status == "capture"

    @property
    def message_vi(self) -> str:
        return self.text.vi

    @property
    def message_en(self) -> str:
        return self.text.en

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "capture": self.capture,
            "steady_frames": self.steady_frames,
            "message_vi": self.message_vi,
            "message_en": self.message_en,
            "check": self.check.as_dict(),
        }


class PageCapture:
    """Auto-capture over the live preview: fires once the page has been found, free of problems
    and still (every corner moved less than still_px, in a 1280-wide frame) for `frames` frames
    in a row. After firing it waits for the page to go away or move before firing again, so one
    placement gives one capture. Not thread-safe: feed it from the camera thread only."""

    def __init__(
        self,
        *,
        frames: int = 3,
        still_px: float = 4.0,
        moved_px: float = 40.0,
        checker: Callable[[np.ndarray], PageCheck] = check_page,
    ) -> None:
        self.frames = frames
        self.still_px = still_px
        self.moved_px = moved_px
        self._check = checker
        self.reset()

    def reset(self) -> None:
        """Forget the page (a new session, or the citizen asked to retake)."""
        self._last_quad: np.ndarray | None = None
        self._captured_quad: np.ndarray | None = None
        self._steady = 0
        self._last_frame: np.ndarray | None = None
        self._last_check: PageCheck | None = None

    def feed(self, frame: np.ndarray) -> CaptureState:
        check = self._check(frame)
        self._last_frame, self._last_check = frame, check
        quad = (
            None
            if check.quad is None
            else np.float32(check.quad) * (QUALITY_WIDTH / check.frame_size[0])
        )
        moved = self._moved(self._last_quad, quad)
        self._last_quad = quad
        if quad is None:
            self._steady = 0
            self._captured_quad = None
            return self._state("no_page", check)
        if self._captured_quad is not None:
            if self._moved(self._captured_quad, quad) < self.moved_px:
                self._steady = 0
                return self._state("captured", check)
            self._captured_quad = None  # the next page (or the same one moved): arm again
        if check.problems:
            self._steady = 0
            return self._state("adjust", check)
        self._steady = self._steady + 1 if moved < self.still_px else 1
        if self._steady >= self.frames:
            self._captured_quad = quad
            return self._state("capture", check)
        return self._state("hold_still", check)

    def capture(self, frame: np.ndarray | None = None, *, dpi: int = DPI) -> ScannedPage:
        """Manual capture (the citizen pressed OK): scan this frame, or the last one fed, whatever
        its blur or glare. PageRejected when no page can be cut out of it."""
        if frame is None:
            if self._last_frame is None:
                raise PageRejected(PageCheck(False, None, Quality(), ("no_page",), (0, 0)))
            frame, check = self._last_frame, self._last_check
        else:
            check = None
        page = scan(frame, dpi=dpi, check=check)
        quad = np.float32(page.check.quad) * (QUALITY_WIDTH / page.check.frame_size[0])
        self._captured_quad = quad
        self._steady = 0
        return page

    @staticmethod
    def _moved(a: np.ndarray | None, b: np.ndarray | None) -> float:
        if a is None or b is None:
            return float("inf")
        return float(np.abs(a - b).max())

    def _state(self, status: Status, check: PageCheck) -> CaptureState:
        if status in ("no_page", "adjust"):
            msgid = MESSAGES[check.problems[0] if check.problems else "no_page"]
        elif status == "captured":
            msgid = CAPTURED
        else:
            msgid = HOLD_STILL
        return CaptureState(status, check, self._steady, Text(msgid))
