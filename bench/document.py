"""Document figures (issue 4): page capture to rectified page, live check, OCR, CER, memory."""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

import cv2

from bench.registry import BenchError, figure

REPO = Path(__file__).resolve().parent.parent
INNER = 5  # timed calls per sample; the sample is their median
FLAT_BATCH = 4  # pages per CER sample; each sample takes the next seeds of the corpus
PHOTO_BATCH = 3

_flat_seeds = itertools.count(100)  # apart from the seeds the tests use
_photo_seeds = itertools.count(100)


def _ms(call: Callable[[], object], inner: int = INNER) -> float:
    times = []
    for _ in range(inner):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@cache
def _capture():
    from tests import pages  # the seeded generator the tests use: same scenes, same sizes

    return pages.cached_shot(2)  # a birth certificate on the platen, 2592 x 1944


@cache
def _ocr():
    from edge.vision.ocr import Ocr, OcrUnavailable

    ocr = Ocr()
    try:
        ocr.load()
    except OcrUnavailable as err:
        raise BenchError(str(err)) from err
    return ocr


@figure(
    "document: page capture to rectified page (find, flatten, enhance), 2592x1944",
    unit="ms",
    below=500.0,
)
def page_scan() -> float:
    from edge.vision.page import scan

    frame = _capture().image
    scan(frame)
    return _ms(lambda: scan(frame))


@figure("document: page live check (find + quality), 1280x960 preview", unit="ms")
def page_check() -> float:
    from edge.vision.page import QUALITY_WIDTH, check_page

    frame = _capture().image
    preview = cv2.resize(
        frame, (QUALITY_WIDTH, QUALITY_WIDTH * 3 // 4), interpolation=cv2.INTER_AREA
    )
    if not check_page(preview).usable:
        raise BenchError("the bench preview frame is not a usable page")
    return _ms(lambda: check_page(preview), inner=10)


@figure(
    "document: OCR of one A4 page (orientation + Vietnamese read), 200 dpi", unit="ms", below=3000.0
)
def ocr_page() -> float:
    from edge.vision.page import scan

    page = scan(_capture().image)
    ocr = _ocr()
    return _ms(lambda: ocr.read_page(page), inner=3)


def _corpus_cer(seeds: list[int], *, photo: bool) -> float:
    from edge.vision.page import PageRejected
    from tests import pages

    try:
        readings = [pages.reading(seed, photo=photo) for seed in seeds]
    except PageRejected as err:
        raise BenchError(f"a generated page was refused: {err}") from err
    return 100 * pages.corpus_cer(readings)


@figure(f"document: CER, flat pages ({FLAT_BATCH} per sample, all types)", unit="%", below=2.0)
def cer_flat() -> float:
    _ocr()
    return _corpus_cer([next(_flat_seeds) for _ in range(FLAT_BATCH)], photo=False)


@figure(
    f"document: CER, photographed pages ({PHOTO_BATCH} per sample, all types)", unit="%", below=5.0
)
def cer_photo() -> float:
    _ocr()
    return _corpus_cer([next(_photo_seeds) for _ in range(PHOTO_BATCH)], photo=True)


_PEAK = """
import resource, sys
from edge.vision.qr import read_image
from edge.vision.page import scan
from edge.vision.ocr import Ocr
from edge.documents.doctype import recognise
ocr = Ocr()
for path in sys.argv[1:]:
    page, result = ocr.read_page(scan(read_image(path)))
    recognise(result.text, lines=result.lines, page_size_mm=page.size_mm)
# VmHWM is this process's own peak: ru_maxrss would also count the bench process it was
# forked from (Linux keeps the larger of the two across exec).
status = open("/proc/self/status").read().split("VmHWM:")
print(int(status[1].split()[0]) / 1024 if len(status) > 1 else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


@figure("document: scan + OCR of 3 pages, peak RSS (own process)", unit="MB", below=400.0)
def document_peak_rss() -> float:
    from tests import pages

    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for seed in (2, 3, 4):  # portrait sheet, landscape diploma, land-use certificate
            path = Path(folder) / f"shot{seed}.jpg"
            cv2.imwrite(str(path), pages.cached_shot(seed).image)
            paths.append(str(path))
        done = subprocess.run(
            [sys.executable, "-c", _PEAK, *paths],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
    if done.returncode != 0:
        raise BenchError(f"scan + OCR failed: {done.stderr.strip()[-300:]}")
    return float(done.stdout.strip().splitlines()[-1])


# --- the tables behind the choices (python -m bench.document) -----------------------------


def _prepared(page, how: str):
    """The image handed to Tesseract for one choice of OCR copy."""
    from edge.vision.page import deskew

    if how == "ocr copy":
        return page.gray
    if how == "enhanced grey":
        return cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY)
    if how == "camera grey":
        return deskew(cv2.cvtColor(page.flat, cv2.COLOR_BGR2GRAY), page.skew_deg)
    if how == "ocr copy, Otsu":
        return cv2.threshold(page.gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]
    raise ValueError(how)


def _pages(seeds: list[int], *, photo: bool, dpi: int | None = None):
    """(doc, upright page, seconds to scan) for each seed: a flatbed scan, or the photographed
    page cut out, at dpi (default DPI)."""
    from edge.vision.page import DPI, flat_page, scan
    from tests import pages

    ocr = _ocr()
    for seed in seeds:
        if photo:
            shot = pages.cached_shot(seed)
            started = time.perf_counter()
            page = scan(shot.image, dpi=dpi or DPI)
        else:
            image = pages.flat(pages.cached_document(seed), dpi or DPI)
            started = time.perf_counter()
            page = flat_page(image, dpi=dpi or DPI)
        took = time.perf_counter() - started
        yield pages.document(seed, render=False), ocr.upright(page), took


def _row(label: str, readings: list[tuple[object, object, float, object]]) -> str:
    """A table row: corpus CER, worst page, median OCR and scan ms, over (doc, page, s, ocr)."""
    from tests import pages

    edits = chars = 0
    worst = 0.0
    for doc, _, _, result in readings:
        ref = pages.normalise_text(doc.text)
        e = pages.edit_distance(ref, pages.normalise_text(result.text))
        edits, chars = edits + e, chars + len(ref)
        worst = max(worst, e / len(ref))
    ocr_ms = statistics.median(r[3].ms for r in readings)
    scan_ms = 1000 * statistics.median(r[2] for r in readings)
    return f"| {label} | {100 * edits / chars:.2f} | {100 * worst:.1f} | {ocr_ms:.0f} | {scan_ms:.0f} |"


def choices_table(seeds: list[int]) -> str:
    """CER and time for each OCR copy and page segmentation mode, flat and photographed."""
    ocr = _ocr()
    plans = [(3, how) for how in ("ocr copy", "enhanced grey", "camera grey", "ocr copy, Otsu")]
    plans += [(4, "ocr copy"), (6, "ocr copy")]
    rows = []
    for photo in (False, True):
        got = list(_pages(seeds, photo=photo))
        for psm, how in plans:
            readings = [
                (doc, page, took, ocr.read(_prepared(page, how), psm=psm, dpi=page.dpi))
                for doc, page, took in got
            ]
            rows.append(_row(f"{'photographed' if photo else 'flat'} | {psm} | {how}", readings))
    head = "| pages | psm | OCR copy | CER % | worst page % | OCR ms | scan ms |\n"
    return head + "|---|---|---|---|---|---|---|\n" + "\n".join(rows)


def dpi_table(sheets: list[int], cards: list[int]) -> str:
    """CER and time at 200 and 300 dpi, of sheets and of cards, flat and photographed."""
    ocr = _ocr()
    rows = []
    for what, chosen, dpis in (("sheets", sheets, (200, 300)), ("cards", cards, (200, 300))):
        for photo in (False, True):
            for dpi in dpis:
                readings = [
                    (doc, page, took, ocr.read(page.gray, dpi=dpi))
                    for doc, page, took in _pages(chosen, photo=photo, dpi=dpi)
                ]
                kind = "photographed" if photo else "flat"
                rows.append(_row(f"{what}, {kind} ({len(chosen)}) | {dpi}", readings))
    head = "| pages | dpi | CER % | worst page % | OCR ms | scan ms |\n"
    return head + "|---|---|---|---|---|---|\n" + "\n".join(rows)


def blur_table(seeds: list[int], sigmas: tuple[float, ...] = (0, 1, 1.5, 2, 2.5, 3, 4)) -> str:
    """CER against extra blur on the captured frame, and the sharpness the live check sees."""
    from edge.vision.page import check_page, scan
    from tests import pages

    ocr = _ocr()
    rows = []
    for sigma in sigmas:
        cers, sharp = [], []
        for seed in seeds:
            shot = pages.cached_shot(seed)
            frame = shot.image if sigma == 0 else cv2.GaussianBlur(shot.image, (0, 0), sigma)
            check = check_page(frame)
            _, result = ocr.read_page(scan(frame, check=check))
            cers.append(100 * pages.cer(shot.doc.text, result.text))
            sharp.append(check.quality.sharpness or 0.0)
        rows.append(
            f"| {sigma} | {sigma * 1280 / frame.shape[1]:.2f} | {statistics.mean(cers):.2f} "
            f"| {max(cers):.1f} | {min(sharp):.2f} | {statistics.median(sharp):.2f} "
            f"| {max(sharp):.2f} |"
        )
    head = (
        "| extra blur sigma, capture px | same at 1280 px | CER % mean | CER % worst "
        "| sharpness min | median | max |\n|---|---|---|---|---|---|---|\n"
    )
    return head + "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m bench.document", description="the measurements behind docs/document-ocr.md"
    )
    parser.add_argument("--pages", type=int, default=16, help="corpus pages per table (default 16)")
    parser.add_argument("--blur", action="store_true", help="only the blur table")
    args = parser.parse_args(argv)
    seeds = list(range(args.pages))
    if not args.blur:
        print(choices_table(seeds), end="\n\n", flush=True)
        sheets = [seed for seed in range(args.pages + 8) if seed % 8 >= 2]
        cards = [seed for seed in range(args.pages * 6) if seed % 8 < 2]
        print(dpi_table(sheets, cards), end="\n\n", flush=True)
    # Sheets only: a card's small print blurs sooner, and cards are not captured at A4 scale.
    print(blur_table([seed for seed in seeds if seed % 8 >= 2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
