"""Is it a paper original? Photocopy and picture-of-a-screen cues, and signs of alteration or
damage (correction fluid, erased patches, holes and tears). Thresholds measured on
tests/data/page-checks (docs/page-checks.md); each cue is a hint for the officer, not a verdict.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.texts import Text
from edge.vision.checks.common import DAMAGE_KINDS, DPI, MESSAGES, WORK_DPI, Flag, at_work_scale

# Photocopy: share of the page in saturated ink (a red seal, a blue signature). An original
# with a seal has far more; a copy has none. Measured, see the docs.
MIN_COLOUR_SHARE = 0.0002  # originals 0.0048-0.0092, blurred 0.00047+, copies 0
MIN_INK_SHARE = 0.002  # a page with less print than this says nothing either way
# Screen: strongest periodic peak in the chroma's fine texture, over the spectrum's median.
MAX_PERIODIC_PEAK = 250.0  # screens 472-538; slightly blurred pages up to 141, camera shots 128
MIN_CHROMA_TEXTURE = 1.0  # std of the high-passed chroma; blurred pages 0.2, paper 2.8-4
# Damage: areas in mm^2 (measured)
MIN_PATCH_MM2 = (
    70.0  # correction patches 88-116; others 34 at most, 53 on a page too blurred to read
)
MIN_HOLE_MM2 = 20.0  # hole 88, tear 329; others 0 (also 0 on 11 camera shots, see the docs)
_MM = WORK_DPI / 25.4  # px per mm at the working scale
PATCH_STEP = 6.0  # grey levels brighter than the paper around it
PATCH_GRAIN = 1.6  # local standard deviation (7x7 px): flatter than paper grain
HOLE_LEVEL = 0.55  # darker than this share of the paper: the platen (about 0.4) shows through
RIM_MM = 3.0


def colour_share(work: np.ndarray) -> tuple[float, float]:
    """Shares of the page in saturated ink and in any ink."""
    hsv = cv2.cvtColor(work, cv2.COLOR_BGR2HSV)
    s, v = hsv[:, :, 1].astype(np.int16), hsv[:, :, 2].astype(np.int16)
    paper = float(np.percentile(v, 90))
    ink = v < 0.7 * paper
    coloured = (s > 90) & (v > 0.15 * paper) & (v < 0.95 * paper)
    return float(np.count_nonzero(coloured)) / v.size, float(np.count_nonzero(ink)) / v.size


def periodic_peak(work: np.ndarray) -> float:
    """How strongly a fine, regular pattern stands out of the page's texture: the largest
    spectral peak of the high-passed chroma (a screen's RGB grid and its moiré are coloured and
    regular; paper grain is neither), over the spectrum's median, on the middle of the page."""
    h, w = work.shape[:2]
    side = min(512, h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    crop = work[y0 : y0 + side, x0 : x0 + side]
    lab = cv2.cvtColor(crop, cv2.COLOR_BGR2LAB).astype(np.float32)
    best = 0.0
    window = np.outer(np.hanning(side), np.hanning(side)).astype(np.float32)
    yy, xx = np.mgrid[0:side, 0:side]
    radius = np.hypot(yy - side // 2, xx - side // 2)
    ring = radius > side / 32  # leave out the slow changes (seal, light)
    for c in (1, 2):  # a*, b*: the colour only
        chan = lab[:, :, c]
        chan = chan - cv2.GaussianBlur(chan, (0, 0), 3)
        if float(chan.std()) < MIN_CHROMA_TEXTURE:
            continue  # no fine colour texture at all (a blurred or grey page): nothing to judge
        spec = np.abs(np.fft.fftshift(np.fft.fft2(chan * window)))
        vals = spec[ring]
        med = float(np.median(vals)) + 1e-6
        best = max(best, float(np.percentile(vals, 99.99)) / med)
    return best


def original_cues(page: np.ndarray, *, page_no: int, dpi: float = DPI) -> list[Flag]:
    """Photocopy (no coloured ink on a printed page) and picture-of-a-screen (a regular fine
    colour pattern) cues on one flattened page."""
    work = at_work_scale(page, dpi)
    flags = []
    colour, ink = colour_share(work)
    if ink >= MIN_INK_SHARE and colour < MIN_COLOUR_SHARE:
        flags.append(
            Flag(
                "photocopy",
                page_no,
                round(colour, 5),
                {"colour_share": round(colour, 5), "ink_share": round(ink, 4)},
                Text(MESSAGES["photocopy"]),
            )
        )
    peak = periodic_peak(work)
    if peak > MAX_PERIODIC_PEAK:
        flags.append(
            Flag(
                "screen",
                page_no,
                round(peak, 2),
                {"peak": round(peak, 2)},
                Text(MESSAGES["screen"]),
            )
        )
    return flags


def paper_level(gray: np.ndarray) -> np.ndarray:
    """The paper's own level around each pixel (float32): print taken off, then the median over
    about 40 mm, so that a patch of fluid or a hole (smaller) does not move it, while the
    light's slow changes over the page (shading, a shadow) do."""
    # Print taken off first (a grey dilation wider than strokes), so the median is the paper's.
    unprinted = cv2.dilate(gray, cv2.getStructuringElement(cv2.MORPH_RECT, (9, 9)))
    small = cv2.resize(unprinted, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    k = max(3, round(40 * _MM / 4)) | 1
    level = cv2.medianBlur(small, k)
    h, w = gray.shape
    return cv2.resize(level, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def damage_areas(work: np.ndarray) -> tuple[float, float]:
    """Largest correction-like patch and largest hole-like blob, in mm^2."""
    gray = cv2.cvtColor(work, cv2.COLOR_BGR2GRAY)
    sat = cv2.cvtColor(work, cv2.COLOR_BGR2HSV)[:, :, 1]
    g = gray.astype(np.float32)
    local = paper_level(gray)
    overall = float(np.percentile(g, 75))
    mean = cv2.blur(g, (7, 7))
    std = np.sqrt(np.maximum(cv2.blur(g * g, (7, 7)) - mean * mean, 0))
    # Correction fluid / erasure: brighter than the paper around it and flatter than its grain.
    flat_bright = ((mean >= local + PATCH_STEP) & (std < PATCH_GRAIN)).astype(np.uint8)
    patch = cv2.morphologyEx(
        flat_bright, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    )
    # Hole or tear: the platen (much darker, unsaturated) through the page, wider than any
    # stroke; not in the outer rim, where a sliver of platen is left by the page's cut-out.
    ref = np.maximum(local, 0.8 * overall)
    grey = ((g < HOLE_LEVEL * ref) & (g > 35) & (sat < 60)).astype(np.uint8)
    rim = max(1, round(RIM_MM * _MM))
    grey[:rim], grey[-rim:], grey[:, :rim], grey[:, -rim:] = 0, 0, 0, 0
    k = max(3, round(4 * _MM)) | 1
    hole = cv2.morphologyEx(
        grey, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    )
    return _largest(patch) / _MM**2, _largest(hole) / _MM**2


def _largest(mask: np.ndarray) -> float:
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return float(stats[1:, cv2.CC_STAT_AREA].max()) if count > 1 else 0.0


def damage(page: np.ndarray, *, page_no: int, dpi: float = DPI) -> list[Flag]:
    """Correction fluid or erased patches (brighter and flatter than the paper) and holes or
    tears (the platen seen through the page) on one flattened page."""
    patch, hole = damage_areas(at_work_scale(page, dpi))
    flags = []
    if patch >= MIN_PATCH_MM2:
        flags.append(_damage(page_no, "correction", patch))
    if hole >= MIN_HOLE_MM2:
        flags.append(_damage(page_no, "hole", hole))
    return flags


def _damage(page_no: int, kind: str, area: float) -> Flag:
    return Flag(
        "damage",
        page_no,
        round(area, 1),
        {"kind": kind, "area_mm2": round(area, 1)},
        Text(MESSAGES["damage"], {"kind": Text(DAMAGE_KINDS[kind])}),
    )
