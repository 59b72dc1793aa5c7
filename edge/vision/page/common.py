"""Page thresholds, the problems a shot can have, and what a check and a scan give back."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from edge.errors import BadInput
from edge.texts import N_, Text
from edge.vision.qr import QrCode

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
