"""capture_quality: can this flattened page be read, or must the citizen take it again?

Measured on tests/data/page-checks (docs/page-checks.md): every page the real Tesseract `vie`
still read with a character error rate at or below READABLE_CER passes; the thresholds sit
between the worst page still read and the best page no longer read.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.texts import Text
from edge.vision.checks.common import DPI, MESSAGES, Quality, at_work_scale

READABLE_CER = 0.10  # the ground truth of "readable" on the set (see docs/page-checks.md)
# var(Laplacian) / var(grey) on the text tiles at WORK_DPI: pages still read 0.33 and up, lost 0.21
# and down (one lost page at 0.33, CER 0.12, passes: see the docs)
MIN_SHARPNESS = 0.22
MIN_BRIGHTNESS = 11.0  # the paper's grey level, 0-255: read down to 14, lost at 8
MIN_CONTRAST = 8.0  # paper minus ink, grey levels: read down to 11, lost at 5-6
_TILE = 32


def measures(page: np.ndarray, *, dpi: float = DPI) -> tuple[float, float, float]:
    """sharpness, brightness, contrast of a page (see Quality)."""
    gray = cv2.cvtColor(at_work_scale(page, dpi), cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    m = max(4, min(h, w) // 40)  # the page's own border (shadow, cut) says nothing of the print
    gray = gray[m : h - m, m : w - m]
    brightness = float(np.percentile(gray, 90))
    contrast = brightness - float(np.percentile(gray, 2))
    th, tw = (gray.shape[0] // _TILE) * _TILE, (gray.shape[1] // _TILE) * _TILE
    if th == 0 or tw == 0:
        return 0.0, brightness, contrast
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)[:th, :tw]

    def tiles(a: np.ndarray) -> np.ndarray:
        return a[:th, :tw].reshape(th // _TILE, _TILE, tw // _TILE, _TILE).swapaxes(1, 2)

    gvar = tiles(gray.astype(np.float32)).var(axis=(2, 3))
    lvar = tiles(lap).var(axis=(2, 3))
    # Tiles that hold print: their grey varies well above the paper's grain (relative, so that
    # an underexposed page, whose print varies by a few levels only, is still judged).
    keep = gvar >= max(1.0, 0.15 * float(gvar.max()))
    if np.count_nonzero(keep) < 3:
        return 0.0, brightness, contrast
    return float(np.median(lvar[keep] / gvar[keep])), brightness, contrast


def capture_quality(page: np.ndarray, *, dpi: float = DPI) -> Quality:
    """Whether the flattened page (BGR, as scan() gives it: ScannedPage.flat, the light as the
    camera saw it) can be read; when not, problem says what the citizen must do."""
    sharpness, brightness, contrast = measures(page, dpi=dpi)
    problem: Text | None = None
    if brightness < MIN_BRIGHTNESS or contrast < MIN_CONTRAST:
        problem = Text(MESSAGES["dark"])
    elif sharpness < MIN_SHARPNESS:
        problem = Text(MESSAGES["blur"])
    return Quality(sharpness, brightness, contrast, problem is None, problem)
