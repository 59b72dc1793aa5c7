"""Pages on the platen: find the sheet in a camera frame, judge the shot, flatten and clean it.

`check_page(frame)` finds the sheet (a bright, unsaturated quadrilateral on the darker grey
platen) and says what the citizen must fix: no page, cut off, too small, tilted, a finger on it,
glare, blur, too dark. `scan(frame)` flattens the sheet to a known DPI, straightens the print
(deskew), flattens the light and white-balances from the paper while keeping ink colours, and
gives a grey copy for OCR. `PageCapture` watches the live frames and says when to take the shot.
The thresholds and their measured basis are in docs/document-ocr.md.

The parts, in the order they depend on each other: `common` (thresholds, problems, results),
`find` (the sheet), `judge` (check_page), `flatten` (scan, flat_page, the cleaning steps),
`capture` (PageCapture).
"""

from __future__ import annotations

from edge.vision.page.capture import (
    CAPTURED,
    HOLD_STILL,
    CaptureState,
    PageCapture,
    Status,
)
from edge.vision.page.common import (
    A4_MM,
    BLOCKING,
    DETECT_WIDTH,
    DPI,
    GLARE_LEVEL,
    ID1_MM,
    MAX_SIDE_RATIO,
    MAX_TILT_DEG,
    MESSAGES,
    MIN_AREA,
    MIN_EDGE_STEP,
    MIN_GLARE_AREA,
    MIN_PAPER_CONTRAST,
    MIN_PAPER_LEVEL,
    MIN_SHARPNESS,
    MIN_SKEW_DEG,
    MIN_SKIN_AREA,
    QUALITY_WIDTH,
    Box,
    PageCheck,
    PageRejected,
    Point,
    Problem,
    Quality,
    ScannedPage,
)
from edge.vision.page.flatten import (
    deskew,
    enhance,
    estimate_skew,
    flat_page,
    ocr_gray,
    paper_background,
    paper_size,
    rectify,
    scan,
)
from edge.vision.page.judge import (
    check_page,
)

__all__ = [
    "A4_MM",
    "BLOCKING",
    "CAPTURED",
    "DETECT_WIDTH",
    "DPI",
    "GLARE_LEVEL",
    "HOLD_STILL",
    "ID1_MM",
    "MAX_SIDE_RATIO",
    "MAX_TILT_DEG",
    "MESSAGES",
    "MIN_AREA",
    "MIN_EDGE_STEP",
    "MIN_GLARE_AREA",
    "MIN_PAPER_CONTRAST",
    "MIN_PAPER_LEVEL",
    "MIN_SHARPNESS",
    "MIN_SKEW_DEG",
    "MIN_SKIN_AREA",
    "QUALITY_WIDTH",
    "Box",
    "CaptureState",
    "PageCapture",
    "PageCheck",
    "PageRejected",
    "Point",
    "Problem",
    "Quality",
    "ScannedPage",
    "Status",
    "check_page",
    "deskew",
    "enhance",
    "estimate_skew",
    "flat_page",
    "ocr_gray",
    "paper_background",
    "paper_size",
    "rectify",
    "scan",
]
