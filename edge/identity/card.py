"""Read a CCCD card held under the camera: find it, flatten it, decode and check its QR, find the
portrait. Everything stays in RAM; nothing here writes an image anywhere."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from edge.identity.cccd import CardError, CccdCard, CccdInvalid, parse_card
from edge.identity.mrz import Mrz, MrzInvalid, parse_td1
from edge.texts import N_, Text
from edge.vision.qr import QrCode, decode_qr, to_gray
from edge.vision.quad import refit_sides

logger = logging.getLogger(__name__)

CARD_SIZE = (856, 540)  # flattened card, width x height: ID-1 (85.6 x 54 mm) at 10 px/mm
CARD_ASPECT = CARD_SIZE[0] / CARD_SIZE[1]
# The card outline must cover this share of the frame; smaller blobs are not a card held at
# reading distance, or it is too far away for its QR to be read anyway.
MIN_CARD_AREA = 0.04
WORK_WIDTH = 640  # the outline search runs on a copy this wide

Box = tuple[int, int, int, int]  # x, y, w, h
FindFace = Callable[[np.ndarray], Sequence[Sequence[float]]]


class CardNotFound(CardError):
    """No card (and no readable QR) in the image."""

    code = "card_not_found"

    def __init__(self) -> None:
        super().__init__(
            Text(N_("No ID card found. Place the card straight under the camera, QR code up.")),
            "no ID card outline and no QR code found in the image",
        )


class QrNotFound(CardError):
    """A card is there but its QR cannot be read (wrong side up, glare, blur)."""

    code = "qr_not_found"

    def __init__(self) -> None:
        super().__init__(
            Text(
                N_(
                    "No QR code found on the card. Place the card straight under the camera, QR code up."
                )
            ),
            "ID card found but no QR code could be decoded",
        )


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class CardReading:
    """What was read from one image. `flat` is the card warped to CARD_SIZE with the QR at the top
    right (as on the chip CCCD front); it and `card_quad` are None when the QR was read but the
    card's outline was not found, so no portrait can be taken from this reading."""

    card: CccdCard
    card_quad: tuple[tuple[float, float], ...] | None  # tl, tr, br, bl of the card in the frame
    flat: np.ndarray | None  # BGR, RAM only: it shows the citizen's face
    portrait_box: Box | None  # in `flat`
    face_found: bool
    qr: QrCode

    def portrait(self, margin: float = 0.5) -> np.ndarray | None:
        """The portrait crop of the flat card grown by margin x its size on each side (the
        embedder aligns on the whole face), or None. VerificationSession.card_read takes the
        face from this method only (CardReading, TwoSided and a chip reading alike)."""
        return _crop(self.flat, self.portrait_box, margin)

    def __repr__(self) -> str:
        return f"CardReading(card_found={self.card_quad is not None}, face_found={self.face_found})"


def read_card(
    image: np.ndarray, *, find_face: FindFace | None = None, today: dt.date | None = None
) -> CardReading:
    """Find the card, flatten it, decode and validate its QR, and locate its portrait.

    The QR is searched on the flattened card first (straight, upsampled: easier), then in the
    whole frame. find_face(bgr) -> [(x, y, w, h), ...] runs on the flattened card; the largest
    box is the portrait. Raises CardNotFound, QrNotFound or CccdInvalid.
    """
    _, quad, flat, card, qr = _locate(image, today, thorough=True)
    if card is None or qr is None:
        raise CardNotFound() if quad is None else QrNotFound()
    box = _portrait_box(flat, find_face) if flat is not None and find_face is not None else None
    return CardReading(
        card=card,
        card_quad=None if quad is None else tuple((float(x), float(y)) for x, y in quad),
        flat=flat,
        portrait_box=box,
        face_found=box is not None,
        qr=qr,
    )


def _locate(
    image: np.ndarray, today: dt.date | None, *, thorough: bool | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, CccdCard | None, QrCode | None]:
    """The card's outline, the card flattened and turned upright by its QR, and the QR's card:
    (bgr, quad, flat, card, qr). The QR is searched on the flattened card first (straight,
    upsampled: easier), then in the whole frame (thorough: decode_qr's; None: only when an
    outline was found). A QR outside the outline means the outline was something else: quad
    and flat are then None. card and qr are None when no QR was read."""
    gray = to_gray(image)
    bgr = _bgr(image, gray)
    quad = find_card(gray)
    flat = homography = None
    codes: list[QrCode] = []
    if quad is not None:
        flat, homography = _flatten(bgr, quad)
        codes = [_mapped(code, np.linalg.inv(homography)) for code in decode_qr(flat)]
    if not codes:
        codes = decode_qr(bgr, thorough=quad is not None if thorough is None else thorough)
    if not codes:
        return bgr, quad, flat, None, None
    card, qr = _first_valid(codes, today)
    if quad is not None and homography is not None and flat is not None:
        if cv2.pointPolygonTest(quad.reshape(-1, 1, 2), qr.center, False) < 0:
            quad = flat = None
        elif _upside_down(_mapped_point(qr.center, homography)):
            quad = np.roll(quad, 2, axis=0)
            flat = cv2.rotate(flat, cv2.ROTATE_180)
    return bgr, quad, flat, card, qr


def _bgr(image: np.ndarray, gray: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def _mapped_point(point: tuple[float, float], matrix: np.ndarray) -> tuple[float, float]:
    x, y = cv2.perspectiveTransform(np.float32([[point]]), matrix)[0, 0]
    return float(x), float(y)


def _mapped(code: QrCode, matrix: np.ndarray) -> QrCode:
    corners = tuple(_mapped_point(p, matrix) for p in code.corners)
    return QrCode(code.text, corners, code.decoder)


def find_card(gray: np.ndarray) -> np.ndarray | None:
    """The card's outline as 4x2 float32 corners, clockwise, a long side first; or None.

    Looks for a convex quadrilateral with the ID-1 aspect ratio (allowing for perspective) in
    two binary views of a downscaled copy: edges (Canny) and brightness (Otsu), because glare
    breaks one or the other but rarely both. Each side is then refined by a line fit on the
    outline points, which also puts the corners where the rounded card corners would meet.
    """
    scale = WORK_WIDTH / gray.shape[1] if gray.shape[1] > WORK_WIDTH else 1.0
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    edges = cv2.dilate(cv2.Canny(small, 30, 90), kernel)
    _, bright = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, kernel, iterations=2)
    min_area = MIN_CARD_AREA * small.shape[0] * small.shape[1]
    best: tuple[float, np.ndarray] | None = None
    for view in (edges, bright):
        contours, _ = cv2.findContours(view, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        for contour in contours:
            if cv2.contourArea(contour) < min_area:
                continue
            quad = _quad_of(contour)
            if quad is None:
                continue
            score = _card_score(quad, min_area) * _edge_support(quad, edges)
            if score > 0 and (best is None or score > best[0]):
                best = (score, quad)
    if best is None:
        return None
    return (_order(best[1]) / scale).astype(np.float32)


def _quad_of(contour: np.ndarray) -> np.ndarray | None:
    hull = cv2.convexHull(contour)
    perimeter = cv2.arcLength(hull, True)
    approx = cv2.approxPolyDP(hull, 0.02 * perimeter, True)
    if len(approx) != 4:
        approx = cv2.approxPolyDP(hull, 0.04 * perimeter, True)
    if len(approx) != 4 or not cv2.isContourConvex(approx):
        return None
    quad = _order(approx.reshape(4, 2).astype(np.float32))
    return _refine(quad, contour.reshape(-1, 2).astype(np.float32))


def _refine(quad: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Fit a line to the outline points along each side (away from the rounded corners) and
    intersect them; the polygon's corners stay when the fit went somewhere odd."""
    return refit_sides(
        quad, points, span=(0.15, 0.85), band_px=3.0, band_frac=0.03, min_side=1, max_shift_frac=0.1
    )


def _card_score(quad: np.ndarray, min_area: float) -> float:
    """Bigger and closer to the ID-1 aspect ratio is better; 0 when it cannot be a card."""
    sides = np.hypot(*(np.roll(quad, -1, axis=0) - quad).T)
    if sides.min() < 10:
        return 0.0
    long_side = (sides[0] + sides[2]) / 2
    short_side = (sides[1] + sides[3]) / 2
    aspect = max(long_side, short_side) / min(long_side, short_side)
    # Perspective on a platen camera stays mild; a square sheet or a long strip is not a card.
    if not 1.3 < aspect < 1.95:
        return 0.0
    area = cv2.contourArea(quad)
    if area < min_area:
        return 0.0
    return area * (1 - abs(np.log(aspect / CARD_ASPECT)))


def _edge_support(quad: np.ndarray, edges: np.ndarray) -> float:
    """The share of points along the weakest side that lie on an edge. A glare spot that merged
    with the card gives a side along a soft gradient, which Canny leaves mostly empty."""
    h, w = edges.shape
    steps = np.linspace(0.1, 0.9, 40)[:, None]
    weakest = 1.0
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        pts = np.rint(a + steps * (b - a)).astype(int)
        pts = pts[(pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)]
        support = float((edges[pts[:, 1], pts[:, 0]] > 0).mean()) if len(pts) else 0.0
        weakest = min(weakest, support)
    return weakest


def _order(points: np.ndarray) -> np.ndarray:
    """Clockwise on screen (y down) from the corner that starts a long side."""
    centre = points.mean(axis=0)
    angles = np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0])
    ordered = points[np.argsort(angles)]
    first = np.hypot(*(ordered[1] - ordered[0]))
    second = np.hypot(*(ordered[2] - ordered[1]))
    if first < second:
        ordered = np.roll(ordered, -1, axis=0)
    # Of the two long-side starts, take the one nearer the frame's top-left for a stable answer.
    if ordered[2].sum() < ordered[0].sum():
        ordered = np.roll(ordered, 2, axis=0)
    return ordered


def _flatten(bgr: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w, h = CARD_SIZE
    target = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    homography = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    flat = cv2.warpPerspective(bgr, homography, CARD_SIZE, flags=cv2.INTER_CUBIC)
    return flat, homography


def _upside_down(qr_center: tuple[float, float]) -> bool:
    """The QR belongs at the top right; nearer the bottom left means the card lies rotated."""
    w, h = CARD_SIZE
    x, y = qr_center
    return np.hypot(x, y - h) < np.hypot(x - w, y)


def _first_valid(codes: list[QrCode], today: dt.date | None) -> tuple[CccdCard, QrCode]:
    """The first code that is a valid CCCD payload; otherwise the first code's refusal."""
    first_error: CccdInvalid | None = None
    for code in codes:
        try:
            return parse_card(code.text, today=today), code
        except CccdInvalid as err:
            logger.info("QR refused: %s", err.message_en)
            first_error = first_error or err
    assert first_error is not None
    raise first_error


def _portrait_box(flat: np.ndarray, find_face: FindFace) -> Box | None:
    h, w = flat.shape[:2]
    best: Box | None = None
    for found in find_face(flat):
        x, y, bw, bh = (round(float(v)) for v in found[:4])
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(w, x + bw), min(h, y + bh)
        if x1 <= x0 or y1 <= y0:
            continue
        if best is None or (x1 - x0) * (y1 - y0) > best[2] * best[3]:
            best = (x0, y0, x1 - x0, y1 - y0)
    return best


# --- one side at a time, both generations ----------------------------------------------------

Side = Literal["front", "back"]
MRZ_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"
_PRINTED_ID = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")
# The MRZ sits on the lower part of the back of both generations (ICAO 9303 part 5, TD1).
MRZ_BAND = 0.55  # of the flat card's height, from the top: OCR looks below this line


class CardMismatch(CardError):
    """The two sides shown are not one card (printed number, MRZ and QR disagree)."""

    code = "card_mismatch"

    def __init__(self, what: str) -> None:
        super().__init__(
            Text(
                N_(
                    "The two sides shown do not belong to the same card. Please show both sides "
                    "of your own card."
                )
            ),
            f"the card's sides disagree: {what}",
        )


class SideNotFound(CardNotFound):
    """read_side: no card in the image (either side may be up)."""

    def __init__(self) -> None:
        CardError.__init__(
            self,
            Text(N_("No ID card found. Place the card straight under the camera, either side up.")),
            "no ID card outline and no QR code found in the image",
        )


class SideUnreadable(QrNotFound):
    """read_side: a card is there, but neither a QR, a portrait, a printed number nor an MRZ
    could be read on it (glare, blur, moving)."""

    def __init__(self) -> None:
        CardError.__init__(
            self,
            Text(N_("The card cannot be read. Hold it still and straight under the camera.")),
            "ID card found but no side could be read (no QR, portrait, printed number or MRZ)",
        )


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class SideReading:
    """What one photo shows of a card. `flat` is upright (portrait on the left for a front)."""

    side: Side
    card: CccdCard | None  # from the QR on this side, if it has one
    card_quad: tuple[tuple[float, float], ...] | None
    flat: np.ndarray | None  # BGR, RAM only
    portrait_box: Box | None
    printed_id: str | None  # the 12 digits printed on a front, by OCR
    mrz: Mrz | None  # the back's MRZ, every check digit verified

    @property
    def face_found(self) -> bool:
        return self.portrait_box is not None

    def portrait(self, margin: float = 0.5) -> np.ndarray | None:
        return _crop(self.flat, self.portrait_box, margin)

    def __repr__(self) -> str:
        return f"SideReading(side={self.side}, qr={self.card is not None}, face={self.face_found})"


def _crop(flat: np.ndarray | None, box: Box | None, margin: float) -> np.ndarray | None:
    if flat is None or box is None:
        return None
    x, y, w, h = box
    mw, mh = int(w * margin), int(h * margin)
    return flat[max(0, y - mh) : y + h + mh, max(0, x - mw) : x + w + mw]


def read_side(
    image: np.ndarray,
    *,
    find_face: FindFace | None = None,
    ocr: Any = None,
    today: dt.date | None = None,
) -> SideReading:
    """Read one side of either card generation: its QR (if any), its portrait (if any), the ID
    number printed on a front, the MRZ on a back. Raises SideNotFound (a CardNotFound),
    SideUnreadable (a QrNotFound: no QR, no face, no printed number, no MRZ) or CccdInvalid.

    ocr: an edge.vision.ocr.Ocr (default: the shared one)."""
    if ocr is None:
        from edge.vision.ocr import shared_ocr

        ocr = shared_ocr()
    _, quad, flat, card, _ = _locate(image, today, thorough=None)
    if flat is None:
        if card is None:
            raise SideNotFound()
        side: Side = "back" if card.card_generation == "can_cuoc_2024" else "front"
        return SideReading(side, card, None, None, None, None, None)
    box = _portrait_box(flat, find_face) if find_face is not None else None
    right = box is not None and box[0] + box[2] / 2 > CARD_SIZE[0] / 2
    if right and card is None and quad is not None:
        # A front without a QR lies upside down when its portrait is on the right.
        quad = np.roll(quad, 2, axis=0)
        flat = cv2.rotate(flat, cv2.ROTATE_180)
        box = _portrait_box(flat, find_face) if find_face is not None else None
    card_quad = tuple((float(x), float(y)) for x, y in quad) if quad is not None else None
    if box is not None or (card is not None and card.card_generation == "cccd"):
        printed = _printed_id(flat, ocr, both_ways=False)
        return SideReading("front", card, card_quad, flat, box, printed, None)
    mrz, turned = _mrz_of_flat(flat, ocr, both_ways=True)
    if mrz is not None or card is not None:
        if turned:
            flat = cv2.rotate(flat, cv2.ROTATE_180)
        return SideReading("back", card, card_quad, flat, None, None, mrz)
    printed = _printed_id(flat, ocr, both_ways=True)
    if printed is not None:  # a front without a portrait: a child's card
        return SideReading("front", None, card_quad, flat, None, printed, None)
    raise SideUnreadable()


def _ocr_text(ocr: Any, image: np.ndarray, *, psm: int = 6) -> str:
    return str(ocr.read(image, psm=psm).text)


def _printed_id(flat: np.ndarray, ocr: Any, *, both_ways: bool) -> str | None:
    """The 12-digit number printed on a front (OCR, digits only), or None."""
    for turned in (False, True) if both_ways else (False,):
        view = cv2.rotate(flat, cv2.ROTATE_180) if turned else flat
        text = _ocr_text(ocr, view, psm=3)
        for line in text.splitlines():
            found = _PRINTED_ID.findall(re.sub(r"(?<=[0-9])[ .](?=[0-9])", "", line))
            if found:
                return str(found[0])
    return None


def read_mrz(image: np.ndarray, *, ocr: Any = None) -> Mrz | None:
    """The TD1 MRZ of the Vietnamese card back in the image (OCR, then every check digit
    verified by parse_td1, issuing state VNM, document number = the last 9 digits of the ID
    number in optional data 1), or None. Nothing is logged or kept."""
    if ocr is None:
        from edge.vision.ocr import shared_ocr

        ocr = shared_ocr()
    gray = to_gray(image)
    quad = find_card(gray)
    if quad is None:
        return _mrz_in(_bgr(image, gray), ocr)
    flat, _ = _flatten(_bgr(image, gray), quad)
    return _mrz_of_flat(flat, ocr, both_ways=True)[0]


def _mrz_of_flat(flat: np.ndarray, ocr: Any, *, both_ways: bool) -> tuple[Mrz | None, bool]:
    for turned in (False, True) if both_ways else (False,):
        view = cv2.rotate(flat, cv2.ROTATE_180) if turned else flat
        mrz = _mrz_in(view[int(view.shape[0] * MRZ_BAND) :], ocr)
        if mrz is not None:
            return mrz, turned
    return None, False


def _mrz_in(image: np.ndarray, ocr: Any) -> Mrz | None:
    gray = to_gray(image)
    for width in (1200, 1500):
        scale = max(1.0, width / gray.shape[1])
        big = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        lines = [_mrz_line(line) for line in _ocr_text(ocr, big, psm=6).splitlines()]
        lines = [line for line in lines if len(line) >= 28]
        for i in range(len(lines) - 2):
            candidate = [ln[:30].ljust(30, "<") for ln in lines[i : i + 3]]
            mrz = _checked(candidate)
            if mrz is not None:
                return mrz
    return None


def _mrz_line(line: str) -> str:
    """An OCR line as MRZ characters: spaces dropped, lookalikes of '<' mapped to it."""
    text = line.upper().replace(" ", "")
    for wrong in ("«", "‹", "(", "{", "[", "≤"):
        text = text.replace(wrong, "<")
    return "".join(ch for ch in text if ch in MRZ_CHARS)


_TO_DIGIT = str.maketrans("OQDIZSBG", "00012586")
# Digits OCR confuses with each other in a monospace font; the check digits decide.
_DIGIT_LOOKALIKES = {"0": "689", "6": "085", "8": "0693", "9": "80", "3": "8", "5": "6", "1": "7"}
_NUMERIC = [(0, range(5, 15)), (0, range(18, 30)), (1, range(0, 7)), (1, range(8, 15)), (1, [29])]


def _checked(lines: list[str]) -> Mrz | None:
    """The lines as an MRZ whose every check digit holds: as read; with letters in the fields
    ICAO 9303 fixes as numeric made digits (O→0, I→1 ...) and the 'ID' document code restored;
    then with one digit swapped for a lookalike (0/6/8 ...). None if nothing holds."""
    l1, l2, l3 = lines
    if l1[1:5] == "DVNM":
        l1 = "I" + l1[1:]
    l1 = l1[:5] + l1[5:15].translate(_TO_DIGIT) + l1[15:27].translate(_TO_DIGIT) + l1[27:]
    l2 = l2[:7].translate(_TO_DIGIT) + l2[7] + l2[8:15].translate(_TO_DIGIT) + l2[15:]
    base = [l1, l2, l3]
    tries = [base]
    for row, positions in _NUMERIC:
        for pos in positions:
            for alt in _DIGIT_LOOKALIKES.get(base[row][pos], ""):
                changed = list(base)
                changed[row] = base[row][:pos] + alt + base[row][pos + 1 :]
                tries.append(changed)
    for attempt in tries:
        try:
            mrz = parse_td1("\n".join(attempt))
        except MrzInvalid:
            continue
        # Only a Vietnamese card's: issued by VNM, its document number the last 9 digits of the
        # 12 in optional data 1. A line OCR shifted by one character can pass the check digits
        # by chance (measured: 1 in 40 photos), not this as well.
        if mrz.issuing_state == "VNM" and (mrz.id_number or "")[3:] == mrz.document_number:
            return mrz
    return None


class CardSides:
    """Sides of one card shown in any order. `needed` says which side is still missing
    ("front", "back", or None when done); add() raises CardMismatch when the sides disagree.

    A CCCD (2021) front has the QR and the portrait: one photo is enough. A 2024 card has the
    portrait on the front and the QR on the back: both are needed, and the 12 digits printed on
    the front (OCR) must be the QR's ID number, as must the MRZ's when it was read.
    """

    def __init__(self, *, today: dt.date | None = None) -> None:
        self.today = today
        self.front: SideReading | None = None
        self.back: SideReading | None = None
        self.card: CccdCard | None = None

    def add(self, reading: SideReading) -> None:
        if reading.side == "front":
            self.front = reading
        else:
            self.back = reading
        if reading.card is not None:
            self.card = reading.card
        try:
            self._check()
        except CardMismatch:
            self.front = self.back = None
            self.card = None
            raise

    def _check(self) -> None:
        card = self.card
        if card is None:
            return
        if self.front is not None and self.front.printed_id not in (None, card.id_number):
            raise CardMismatch("the number printed on the front is not the QR's")
        mrz = self.back.mrz if self.back is not None else None
        if mrz is not None and mrz.id_number not in (None, card.id_number):
            raise CardMismatch("the MRZ's ID number is not the QR's")

    @property
    def child_without_portrait(self) -> bool:
        """A card of a child under 6 (no portrait is printed on it) whose front was shown."""
        card, front = self.card, self.front
        if card is None or front is None or front.face_found:
            return False
        return card.card_generation == "can_cuoc_2024" and card.age_on(self._today()) < 6

    @property
    def needed(self) -> Side | None:
        card, front = self.card, self.front
        if card is None:
            return "back" if front is not None else "front"
        if front is None:
            return "front"
        if front.card is not None:  # a CCCD front: QR and portrait (found or not) on one side
            return None
        if front.printed_id is None:  # the number tells it is this card's front
            return "front"
        if not front.face_found and not self.child_without_portrait:
            return "front"
        return None

    def reading(self) -> TwoSided:
        """The finished card: the QR's data and the front's portrait (needed must be None)."""
        if self.card is None or self.front is None or self.needed is not None:
            raise ValueError("the card is not complete yet")
        return TwoSided(
            card=self.card,
            front=self.front,
            back=self.back,
            no_portrait=self.child_without_portrait,
        )

    def _today(self) -> dt.date:
        from edge.identity.cccd import today_vn

        return self.today or today_vn()


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class TwoSided:
    """A card read from its sides: what VerificationSession.card_read takes (portrait())."""

    card: CccdCard
    front: SideReading
    back: SideReading | None
    no_portrait: bool  # a child's card: staff must verify

    @property
    def face_found(self) -> bool:
        return self.front.face_found

    @property
    def mrz(self) -> Mrz | None:
        return self.back.mrz if self.back is not None else None

    @property
    def card_quad(self) -> tuple[tuple[float, float], ...] | None:
        return self.front.card_quad

    @property
    def sides(self) -> list[str]:
        return ["front"] + (["back"] if self.back is not None else [])

    def portrait(self, margin: float = 0.5) -> np.ndarray | None:
        return self.front.portrait(margin)

    def __repr__(self) -> str:
        return f"TwoSided(sides={self.sides}, face_found={self.face_found})"
