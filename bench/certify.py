"""Certification figures (issue 16): the officer's and the agency's signatures on a copy through
PKCS#11 (SoftHSM2 tokens), the officer's request screen, and the whole loop from the citizen's
last page to the printed receipt with a scripted officer."""

from __future__ import annotations

import atexit
import datetime as dt
import shutil
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

from bench.registry import BenchError, figure


@cache
def _signing() -> tuple[Any, Any, Any, list[Any]]:
    """The development token set (fleet/certify/devpki.py) and two A4 pages as JPEG."""
    import cv2

    from fleet.certify.copy import CopyPage, TokenKey
    from fleet.certify.devpki import make_pki
    from fleet.certify.statement import Certification
    from tests.copies_helpers import page_image

    root = Path(tempfile.mkdtemp(prefix="bench-certify-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    pki = make_pki(root, development=True)
    officer = TokenKey(pki.module, pki.officer_token, pki.key_label, pki.pin)
    agency = TokenKey(pki.module, pki.agency_token, pki.key_label, pki.pin)
    pages = []
    for n in (1, 2):
        ok, data = cv2.imencode(".jpg", page_image(n), [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise BenchError("could not encode a bench page")
        pages.append(CopyPage(jpeg=data.tobytes(), dpi=200))
    certification = Certification(
        agency="Ủy ban nhân dân phường Tây Hồ",
        place="phường Tây Hồ, thành phố Hà Nội",
        on=dt.date.today(),
        officer_name="Nguyễn Văn An",
        officer_title="PHÓ CHỦ TỊCH",
        number=1,
        year=dt.date.today().year,
        pages=len(pages),
    )
    return officer, agency, certification, pages


@figure("certify: render + officer and agency PAdES signatures via PKCS#11, 2 pages", unit="ms")
def certify_sign() -> float:
    from fleet.certify.copy import make_copy

    officer, agency, certification, pages = _signing()
    started = time.perf_counter()
    made = make_copy(
        pages,
        code="HN-TAYHO-01-261205-000001-7",
        certification=certification,
        officer=officer,
        agency=agency,
        verify_base="https://xacthuc.example.vn",
    )
    elapsed = (time.perf_counter() - started) * 1000
    if not made.pdf.startswith(b"%PDF"):
        raise BenchError("make_copy gave no PDF")
    return elapsed
