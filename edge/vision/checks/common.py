"""What a check gives back (Flag, Quality), the texts it says, and the page's working scale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from edge.texts import N_, Text

Check = Literal["blur", "dark", "forbidden_mark", "photocopy", "screen", "damage", "qr"]

# Every measure is taken on the page resampled to this many dots per inch: an A4 sheet is then
# 1240 px wide. Thresholds in this package are measured at this scale (docs/page-checks.md).
WORK_DPI = 150
DPI = 200  # the kiosk's flattened pages (edge.vision.page.DPI)

# check -> what the officer (and the citizen) is told; Vietnamese in the catalog (edge.texts).
MESSAGES: dict[str, str] = {
    "blur": N_("The picture is blurred. Hold the page still and take it again."),
    "dark": N_("The picture is too dark to read. Do not block the light and take it again."),
    "forbidden_mark": N_(
        "The original carries a mark that forbids copying (%(mark)s): it cannot be certified."
    ),
    "photocopy": N_("The original looks like a photocopy, not an original: check it by eye."),
    "screen": N_("The original looks like a picture of a screen, not a paper original."),
    "damage": N_(
        "The original may be altered or damaged (%(kind)s): check it by eye before certifying."
    ),
    "qr_copy": N_(
        "The page carries the QR code of a certified e-copy: it is a copy, not an original."
    ),
    "qr_invalid": N_("The page carries a copy QR code that does not verify: check it by eye."),
    "qr_unknown": N_("The page carries a QR code this kiosk cannot verify: check it by eye."),
}
DAMAGE_KINDS = {
    "correction": N_("correction fluid or an erased patch"),
    "hole": N_("a hole or a tear"),
}


@dataclass(frozen=True, slots=True)
class Flag:
    """One finding on an original, for the officer to weigh (never a verdict by itself)."""

    check: Check
    page: int  # 1-based page of the original, 0 for the whole original
    score: float  # the measured value that fired
    detail: dict[str, Any]  # JSON-safe, no personal data
    text: Text

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "page": self.page,
            "score": round(float(self.score), 4),
            "detail": self.detail,
            "text": self.text.msgid,
            "params": {
                k: v.msgid if isinstance(v, Text) else v for k, v in self.text.params.items()
            },
        }


@dataclass(frozen=True, slots=True)
class Quality:
    """Whether a captured page can be read, and the measures behind it."""

    sharpness: float  # median var(Laplacian) / var(grey) over the text tiles, at WORK_DPI
    brightness: float  # the paper's level, 90th percentile of grey (0-255)
    contrast: float  # paper level minus ink level (90th - 2nd percentile of grey)
    readable: bool
    problem: Text | None = None  # what the citizen is told when not readable

    def as_dict(self) -> dict[str, Any]:
        return {
            "sharpness": round(self.sharpness, 3),
            "brightness": round(self.brightness, 1),
            "contrast": round(self.contrast, 1),
            "readable": self.readable,
            "problem": None if self.problem is None else self.problem.msgid,
        }


def bgr(page: np.ndarray) -> np.ndarray:
    """A BGR uint8 copy-free view of a BGR or grey page."""
    if not isinstance(page, np.ndarray) or page.dtype != np.uint8 or page.ndim not in (2, 3):
        raise ValueError("expected a uint8 grey or BGR image")
    if page.ndim == 2:
        return cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)
    if page.shape[2] == 4:
        return cv2.cvtColor(page, cv2.COLOR_BGRA2BGR)
    return page


def at_work_scale(page: np.ndarray, dpi: float) -> np.ndarray:
    """The page as BGR at WORK_DPI (area resampling down, linear up)."""
    image = bgr(page)
    factor = WORK_DPI / float(dpi)
    if abs(factor - 1) < 0.02:
        return image
    method = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=method)
