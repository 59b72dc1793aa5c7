"""Find and decode every QR code in a camera frame or an image file; a scanner for the live feed.

Decoder choice, measured with tests/cards.py scenes (1280x960; moderate: card 560-780 px wide,
turned up to 30°, tilt, uneven light, contrast 0.6-1.0, glare, blur sigma 0.3-1.3, JPEG 60-90;
heavy: card 480-660 px, contrast 0.35-0.55, glare often on the QR, blur sigma 1.2-2.0, JPEG
35-60), 100 scenes of each, on the x86 dev machine (2 cores, shared), zxing-cpp 3.1.1, OpenCV 5.0.
Median times are for a card scene / an empty platen:

  one pass on the grey frame                 moderate  heavy  median ms
  zxing-cpp, library defaults (all formats)   95 %      6 %    13 / 8.4
  zxing-cpp, QRCode only                      95 %      6 %    1.7 / 1.3
  zxing-cpp after an unsharp mask             98 %     16 %    3.1 / 2.6
  cv2.QRCodeDetector                          48 %      0 %    37 / 19
  cv2.QRCodeDetectorAruco                     56 %      0 %    41 / 2.8
  cv2.QRCodeDetectorAruco after unsharp       81 %      2 %    39 / 3.9
  decode_qr(frame, thorough=False)            99 %     16 %    1.5 / 2.6
  decode_qr(frame)                           100 %     24 %    1.4 / 18

zxing-cpp is the primary decoder: it reads more and is 10-25x faster. decode_qr stops at the
first pass that finds anything: (1) zxing on the grey frame, (2) zxing after an unsharp mask,
and, thorough only, (3) zxing on a 2x upscaled, sharpened copy and (4) OpenCV's
QRCodeDetectorAruco (the better of the two OpenCV detectors) as the fallback. On these 200
scenes the fallback decoded nothing zxing had missed; it stays as a last resort for damage the
generator does not model; the live scanner runs the thorough pipeline on the whole frame only
on every 5th miss in a row, so an empty platen does not pay for it on every frame. zxing options: restricting formats to QRCode cut the time
8x; try_rotate changed nothing (QR finder patterns are rotation invariant) and is off;
try_downscale changed nothing on the scenes but read 40/40 instead of 35/40 large, blurred codes
(500-900 px, sigma 2-6), so it stays on; try_invert is off (the CCCD and our receipts print dark
on light).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zxingcpp

from edge.errors import BadInput

logger = logging.getLogger(__name__)

Point = tuple[float, float]

_ZXING_OPTIONS = {
    "formats": zxingcpp.BarcodeFormat.QRCode,
    "try_rotate": False,
    "try_downscale": True,
    "try_invert": False,
}
_SHARPEN = (1.5, 1.0)  # unsharp mask: Gaussian sigma, amount (measured best of 1.5/2.5/3 x 1/1.5)
_UPSCALED_SHARPEN = (3.0, 1.5)
_local = threading.local()  # OpenCV detectors are not safe to share between threads


@dataclass(frozen=True, slots=True)
class QrCode:
    """One decoded QR: its text and its four corners in the frame (the symbol's own top-left,
    top-right, bottom-right, bottom-left)."""

    text: str
    corners: tuple[Point, ...]
    decoder: str  # "zxing" or "opencv"

    @property
    def center(self) -> Point:
        xs, ys = zip(*self.corners, strict=True)
        return sum(xs) / 4, sum(ys) / 4

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """Axis-aligned x, y, w, h around the corners."""
        xs, ys = zip(*self.corners, strict=True)
        x0, y0 = int(np.floor(min(xs))), int(np.floor(min(ys)))
        return x0, y0, int(np.ceil(max(xs))) - x0, int(np.ceil(max(ys))) - y0

    def shifted(self, dx: float, dy: float, scale: float = 1.0) -> QrCode:
        """The same code with corners mapped back from a crop (offset) or a resized copy."""
        corners = tuple((x / scale + dx, y / scale + dy) for x, y in self.corners)
        return QrCode(self.text, corners, self.decoder)

    def __repr__(self) -> str:
        # The text may be a citizen's CCCD payload; keep it out of logs and tracebacks.
        return f"QrCode(<{len(self.text)} chars>, center={self.center!r}, decoder={self.decoder!r})"


def to_gray(frame: np.ndarray) -> np.ndarray:
    """A uint8 single-channel view of a BGR, BGRA or grey frame; BadInput for anything else."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.size == 0:
        raise BadInput("expected a non-empty uint8 image array")
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    raise BadInput(f"expected a grey, BGR or BGRA image, got shape {frame.shape}")


def decode_qr(frame: np.ndarray, *, thorough: bool = True) -> list[QrCode]:
    """Every QR code in the frame, by the first pass that finds any (see the module docstring).

    thorough=False runs only the two fast zxing passes (about 3 ms per 1280x960 frame on a miss
    here): for live frames, where the next frame is another chance.
    """
    gray = to_gray(frame)
    codes = _zxing(gray) or _zxing(_unsharp(gray, *_SHARPEN))
    if codes or not thorough:
        return codes
    if max(gray.shape) <= 2048:
        upscaled = cv2.resize(gray, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        codes = [c.shifted(0, 0, 2.0) for c in _zxing(_unsharp(upscaled, *_UPSCALED_SHARPEN))]
        if codes:
            return codes
    return _opencv(_unsharp(gray, *_SHARPEN))


def read_image(path: str | Path) -> np.ndarray:
    """An image file as a BGR array; BadInput when it is missing or not an image."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as err:
        raise BadInput(f"cannot read image file {path}: {err.strerror}") from err
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise BadInput(f"{path} is not an image OpenCV can read")
    return image


def decode_qr_file(path: str | Path) -> list[QrCode]:
    """Every QR code in an image file (thorough pipeline)."""
    return decode_qr(read_image(path))


def _unsharp(gray: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    blurred = cv2.GaussianBlur(gray, (0, 0), sigma)
    return cv2.addWeighted(gray, 1 + amount, blurred, -amount, 0)


def _zxing(gray: np.ndarray) -> list[QrCode]:
    codes = []
    for barcode in zxingcpp.read_barcodes(gray, **_ZXING_OPTIONS):
        p = barcode.position
        corners = tuple(
            (float(pt.x), float(pt.y))
            for pt in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)
        )
        codes.append(QrCode(_text(barcode), corners, "zxing"))
    return codes


def _text(barcode: Any) -> str:
    """The CCCD QR carries UTF-8 without an ECI header; zxing would guess the charset from the
    bytes, so take strict UTF-8 first and zxing's own decoding only when that fails."""
    try:
        return bytes(barcode.bytes).decode("utf-8")
    except UnicodeDecodeError:
        return barcode.text


def _opencv(gray: np.ndarray) -> list[QrCode]:
    detector = getattr(_local, "aruco", None)
    if detector is None:
        detector = _local.aruco = cv2.QRCodeDetectorAruco()
    try:
        ok, texts, points, _ = detector.detectAndDecodeMulti(gray)
    except cv2.error as err:  # OpenCV raises on some degenerate inputs instead of returning
        logger.debug("OpenCV QR fallback failed: %s", err.msg if hasattr(err, "msg") else err)
        return []
    if not ok or points is None:
        return []
    codes = []
    for text, quad in zip(texts, points, strict=False):
        if text:
            corners = tuple((float(x), float(y)) for x, y in quad)
            codes.append(QrCode(text, corners, "opencv"))
    return codes


@dataclass(frozen=True, slots=True)
class ScanStats:
    """Counters of a QrScanner since it was made."""

    frames: int  # every call to scan()
    skipped: int  # calls that came while a decode was still running
    full_scans: int
    thorough_full_scans: int  # the whole-frame scans that ran the thorough pipeline
    roi_scans: int
    hits: int  # scans that found at least one code
    last_ms: float | None
    mean_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "skipped": self.skipped,
            "full_scans": self.full_scans,
            "thorough_full_scans": self.thorough_full_scans,
            "roi_scans": self.roi_scans,
            "hits": self.hits,
            "last_ms": self.last_ms,
            "mean_ms": self.mean_ms,
        }


Decoder = Callable[..., list[QrCode]]


class QrScanner:
    """QR codes from a live feed at 10-15 fps, called from the camera thread.

    After a hit, the next frames are searched only in a region of interest around the codes
    (grown by `margin` times their size on each side): about a tenth of the frame, with the
    thorough pipeline. A miss there, or no earlier hit, means the next frame is searched whole
    with the fast pipeline; so is every `full_every`-th scan, so that a second code is not missed
    for long. Every `thorough_every`-th whole-frame miss in a row, the whole frame gets the
    thorough pipeline once, so a card the fast passes cannot read is still read within a second
    while an empty platen costs little. A frame that arrives while a decode is still running
    (another thread called scan) is not queued: scan returns None at once and counts as skipped.
    """

    def __init__(
        self,
        *,
        full_every: int = 10,
        margin: float = 0.5,
        min_pad: int = 48,
        thorough_every: int = 5,
        decode: Decoder = decode_qr,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if full_every < 1 or thorough_every < 1:
            raise ValueError("full_every and thorough_every must be at least 1")
        self.full_every = full_every
        self.thorough_every = thorough_every
        self.margin = margin
        self.min_pad = min_pad
        self._decode = decode
        self._clock = clock
        self._busy = threading.Lock()
        self._stats_lock = threading.Lock()
        self._roi: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1
        self._since_full = 0
        self._misses = 0  # whole-frame scans in a row that found nothing
        self._frames = self._skipped = self._full = self._roi_scans = self._hits = 0
        self._thorough_full = 0
        self._last_ms: float | None = None
        self._total_ms = 0.0

    def scan(self, frame: np.ndarray) -> list[QrCode] | None:
        """The codes in this frame ([] when none), or None when the frame was skipped."""
        with self._stats_lock:
            self._frames += 1
        if not self._busy.acquire(blocking=False):
            with self._stats_lock:
                self._skipped += 1
            return None
        try:
            return self._scan(frame)
        finally:
            self._busy.release()

    def reset(self) -> None:
        """Forget the last position (a new session); the counters stay."""
        with self._busy:
            self._roi = None
            self._since_full = 0
            self._misses = 0

    @property
    def stats(self) -> ScanStats:
        with self._stats_lock:
            scans = self._full + self._roi_scans
            return ScanStats(
                frames=self._frames,
                skipped=self._skipped,
                full_scans=self._full,
                thorough_full_scans=self._thorough_full,
                roi_scans=self._roi_scans,
                hits=self._hits,
                last_ms=self._last_ms,
                mean_ms=self._total_ms / scans if scans else None,
            )

    def _scan(self, frame: np.ndarray) -> list[QrCode]:
        started = self._clock()
        roi = self._next_roi(frame.shape)
        thorough_full = False
        if roi is None:
            thorough_full = (self._misses + 1) % self.thorough_every == 0
            codes = self._decode(frame, thorough=thorough_full)
            self._misses = 0 if codes else self._misses + 1
            self._since_full = 0
        else:
            x0, y0, x1, y1 = roi
            crop = frame[y0:y1, x0:x1]
            codes = [c.shifted(x0, y0) for c in self._decode(crop, thorough=True)]
            self._since_full += 1
        self._roi = self._region(codes, frame.shape) if codes else None
        elapsed = (self._clock() - started) * 1000
        with self._stats_lock:
            if roi is None:
                self._full += 1
                self._thorough_full += thorough_full
            else:
                self._roi_scans += 1
            self._hits += bool(codes)
            self._last_ms = elapsed
            self._total_ms += elapsed
        return codes

    def _region(self, codes: list[QrCode], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        xs = [x for code in codes for x, _ in code.corners]
        ys = [y for code in codes for _, y in code.corners]
        pad_x = max(self.min_pad, self.margin * (max(xs) - min(xs)))
        pad_y = max(self.min_pad, self.margin * (max(ys) - min(ys)))
        h, w = shape[:2]
        x0 = int(max(0, min(xs) - pad_x))
        y0 = int(max(0, min(ys) - pad_y))
        x1 = int(min(w, max(xs) + pad_x))
        y1 = int(min(h, max(ys) + pad_y))
        return x0, y0, x1, y1

    def _next_roi(self, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
        """The region (x0, y0, x1, y1) the next scan searches, or None for the whole frame."""
        if self._roi is None or self._since_full >= self.full_every - 1:
            return None
        x1, y1 = self._roi[2:]
        if len(shape) < 2 or x1 > shape[1] or y1 > shape[0]:  # the frame size changed
            return None
        return self._roi
