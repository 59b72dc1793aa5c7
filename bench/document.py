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
