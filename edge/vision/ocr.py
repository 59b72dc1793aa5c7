"""Vietnamese OCR with Tesseract through tesserocr: one API kept open and reused, never a process
per page; which end of the page is up (Tesseract's OSD); text, lines with boxes and confidences,
all Unicode NFC.

Page segmentation mode and the OCR copy of the page were chosen on the generated corpus
(tests/pages.py): see docs/document-ocr.md for the table. Thread safety: an Ocr serialises its
calls with a lock; for parallel reading make one Ocr per thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.errors import KioskError
from edge.vision.qr import to_gray

if TYPE_CHECKING:
    from edge.vision.page import ScannedPage

logger = logging.getLogger(__name__)

LANG = "vie"
PSM = 3  # automatic layout: best of 3 / 4 / 6 on the corpus, see the docs
TESSDATA_DIRS = (
    Path("/usr/share/tesseract-ocr/5/tessdata"),
    Path("/usr/share/tesseract-ocr/4.00/tessdata"),
)
# OSD's confidence: below MIN the page is left as it is; below SURE, read_page() reads it both
# ways up. Measured on the corpus: sheets 4-13 (all right), cards 0.1-2.8 (some wrong).
MIN_ORIENTATION_CONFIDENCE = 1.0
SURE_ORIENTATION = 3.0


class OcrUnavailable(KioskError, RuntimeError):
    """Tesseract or its Vietnamese model cannot be used; the message says what to install."""

    code = "ocr_unavailable"


@dataclass(frozen=True, slots=True)
class OcrLine:
    text: str
    box: tuple[int, int, int, int]  # x, y, w, h in the image read
    confidence: float  # 0-100

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "box": list(self.box), "confidence": round(self.confidence, 1)}


@dataclass(frozen=True, slots=True)
class OcrResult:
    text: str  # the lines joined by newlines, NFC
    lines: tuple[OcrLine, ...]
    mean_confidence: float  # Tesseract's mean word confidence, 0-100
    psm: int
    ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "lines": [line.as_dict() for line in self.lines],
            "mean_confidence": round(self.mean_confidence, 1),
            "psm": self.psm,
            "ms": round(self.ms, 1),
        }

    def __repr__(self) -> str:
        # The text is a citizen's document: keep it out of logs and tracebacks.
        return f"OcrResult(<{len(self.text)} chars>, lines={len(self.lines)}, conf={self.mean_confidence:.0f})"


def find_tessdata(
    lang: str = LANG, *, env: Mapping[str, str] | None = None, dirs: Iterable[Path] | None = None
) -> Path:
    """The tessdata folder holding `lang`. As in Tesseract itself, $TESSDATA_PREFIX, when set, is
    the only place looked; otherwise Debian's folders (`dirs`, default TESSDATA_DIRS)."""
    env = os.environ if env is None else env
    if env.get("TESSDATA_PREFIX"):
        candidates = [Path(env["TESSDATA_PREFIX"])]
    else:
        candidates = list(TESSDATA_DIRS if dirs is None else dirs)
    for folder in candidates:
        if (folder / f"{lang}.traineddata").is_file():
            return folder
    looked = ", ".join(str(c) for c in candidates) or "nowhere"
    raise OcrUnavailable(
        f"the Tesseract model '{lang}' is not installed (looked in {looked}): "
        f"run '{install_command(lang)}' (or set TESSDATA_PREFIX to a folder holding {lang}.traineddata)"
    )


def install_command(lang: str) -> str:
    """The command that installs Tesseract's `lang` model on Debian / Raspberry Pi OS."""
    return f"sudo apt install tesseract-ocr-{lang}"


class Ocr:
    """A Tesseract reader kept open between pages. No I/O until the first read or load()."""

    def __init__(self, *, tessdata: Path | None = None, lang: str = LANG, psm: int = PSM) -> None:
        self.tessdata = tessdata
        self.lang = lang
        self.psm = psm
        self._api: Any = None
        self._osd: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Open the Vietnamese model (about 0.1 s); OcrUnavailable if it cannot be."""
        with self._lock:
            self._ensure()

    def _ensure(self) -> Any:
        if self._api is None:
            try:
                import tesserocr
            except ImportError as err:  # pragma: no cover - a dependency of the package
                raise OcrUnavailable(f"tesserocr is not installed: {err}") from err
            folder = self.tessdata or find_tessdata(self.lang)
            # Leptonica writes its own complaints (a box clipped at the border...) to stderr.
            tesserocr.set_leptonica_log_level(tesserocr.LeptLogLevel.NONE)
            try:
                self._api = tesserocr.PyTessBaseAPI(
                    path=f"{folder}/", lang=self.lang, psm=self.psm, oem=tesserocr.OEM.LSTM_ONLY
                )
            except RuntimeError as err:
                raise OcrUnavailable(
                    f"Tesseract could not open '{self.lang}' from {folder}: {err}"
                ) from err
            self.tessdata = folder
            logger.info(
                "Tesseract %s ready (%s)", self.lang, tesserocr.tesseract_version().split()[1]
            )
        return self._api

    def close(self) -> None:
        with self._lock:
            for api in (self._api, self._osd):
                if api is not None:
                    api.End()
            self._api = self._osd = None

    def __enter__(self) -> Ocr:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(
        self, image: np.ndarray, *, psm: int | None = None, dpi: int | None = None
    ) -> OcrResult:
        """Text, lines with boxes and confidences of a page image (grey or BGR, uint8)."""
        import tesserocr

        gray = np.ascontiguousarray(to_gray(image))
        started = time.perf_counter()
        with self._lock:
            api = self._ensure()
            mode = self.psm if psm is None else psm
            api.SetPageSegMode(mode)
            h, w = gray.shape
            api.SetImageBytes(gray.tobytes(), w, h, 1, w)
            if dpi:
                api.SetSourceResolution(int(dpi))
            api.Recognize()
            lines = []
            iterator = api.GetIterator()
            level = tesserocr.RIL.TEXTLINE
            for item in tesserocr.iterate_level(iterator, level):
                try:
                    text = item.GetUTF8Text(level)
                except RuntimeError:  # tesserocr's way of saying the line is empty
                    continue
                box = item.BoundingBox(level)
                if not text or not text.strip() or box is None:
                    continue
                x0, y0, x1, y1 = box
                lines.append(
                    OcrLine(
                        unicodedata.normalize("NFC", " ".join(text.split())),
                        (x0, y0, x1 - x0, y1 - y0),
                        float(item.Confidence(level)),
                    )
                )
            confidence = float(api.MeanTextConf())
            api.Clear()
        return OcrResult(
            text="\n".join(line.text for line in lines),
            lines=tuple(lines),
            mean_confidence=confidence,
            psm=mode,
            ms=(time.perf_counter() - started) * 1000,
        )

    def orientation(self, image: np.ndarray) -> tuple[int, float]:
        """(quarter turns counter-clockwise that make the page upright, confidence), by
        Tesseract's orientation detection; (0, 0.0) when it cannot tell. OcrUnavailable without
        the osd model."""
        import tesserocr

        gray = np.ascontiguousarray(to_gray(image))
        with self._lock:
            if self._osd is None:
                here = self.tessdata and Path(self.tessdata) / "osd.traineddata"
                folder = self.tessdata if here and here.is_file() else find_tessdata("osd")
                try:
                    self._osd = tesserocr.PyTessBaseAPI(
                        path=f"{folder}/", lang="osd", psm=tesserocr.PSM.OSD_ONLY
                    )
                except RuntimeError as err:
                    raise OcrUnavailable(
                        f"Tesseract could not open 'osd' from {folder}: {err}"
                    ) from err
            h, w = gray.shape
            self._osd.SetImageBytes(gray.tobytes(), w, h, 1, w)
            try:
                found = self._osd.DetectOrientationScript()
            except RuntimeError:
                found = None
            self._osd.Clear()
        if not found:
            return 0, 0.0
        return int(found["orient_deg"]) // 90 % 4, float(found["orient_conf"])

    def upright(self, page: ScannedPage) -> ScannedPage:
        """The page turned so that its print reads upright: a sheet put down upside down, a
        diploma lying across, a card either way round."""
        return self._orient(page)[0]

    def read_page(self, page: ScannedPage) -> tuple[ScannedPage, OcrResult]:
        """The page turned upright, and its text."""
        page, reading = self._orient(page)
        return page, reading or self.read(page.gray, dpi=page.dpi)

    def _orient(self, page: ScannedPage) -> tuple[ScannedPage, OcrResult | None]:
        """OSD's answer when it is sure. A card lies one of two ways, and so does a sheet whose
        OSD answer is unsure: both are read and the more confident reading wins (OSD takes the
        CCCD's machine-readable zone for upside-down print); that reading is returned too."""
        if page.paper != "ID-1":
            try:
                turns, confidence = self.orientation(_for_orientation(page.gray, page.dpi))
            except OcrUnavailable as err:  # no OSD model: fall back to reading both ways
                logger.warning("page orientation by reading only: %s", err)
                turns, confidence = 0, 0.0
            if confidence >= MIN_ORIENTATION_CONFIDENCE:
                page = page.rotated(turns)
            if confidence >= SURE_ORIENTATION:
                return page, None
        readings = [(p, self.read(p.gray, dpi=p.dpi)) for p in (page, page.rotated(2))]
        return max(readings, key=lambda pr: pr[1].mean_confidence)


def _for_orientation(gray: np.ndarray, dpi: int) -> np.ndarray:
    """OSD is as sure at 150 dpi as at 300 on a sheet and no slower: give it no more (a card
    is small: it keeps its resolution)."""
    import cv2

    if dpi <= 150 or max(gray.shape) < 1800:
        return gray
    scale = 150 / dpi
    return cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


_shared: Ocr | None = None
_shared_lock = threading.Lock()


def shared_ocr() -> Ocr:
    """One process-wide reader (its model loads on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Ocr()
        return _shared
