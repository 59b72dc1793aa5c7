"""The kiosk's checks on an original before a certification request leaves (issue 16).

`capture_quality(page)` says whether a captured page can be read (else the citizen takes it
again); `check_original(pages, ocr_text)` gathers what the officer should know about the
original: a mark forbidding copies (Decree 23/2015 Art. 22 cl. 3), photocopy or screen cues,
alteration or damage, and the QR codes printed on it. Measured rates and what each check does
not catch: docs/page-checks.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edge.texts import Text
from edge.vision.checks.common import DPI, MESSAGES, WORK_DPI, Flag, Quality
from edge.vision.checks.cues import damage, original_cues
from edge.vision.checks.marks import forbidden_marks, stamp_text
from edge.vision.checks.quality import capture_quality
from edge.vision.qr import decode_qr


def printed_qr(pages: Sequence[np.ndarray]) -> list[str]:
    """The texts of every QR code printed on the original, in page order, each once."""
    return [text for _, text in _qr_by_page(pages)]


def _qr_by_page(pages: Sequence[np.ndarray]) -> list[tuple[int, str]]:
    seen: set[str] = set()
    found = []
    for n, page in enumerate(pages, 1):
        for code in decode_qr(page):
            if code.text not in seen:
                seen.add(code.text)
                found.append((n, code.text))
    return found


def qr_flags(
    found: Sequence[tuple[int, str]], verify_qr: Callable[[str], Any] | None = None
) -> list[Flag]:
    """One flag per QR: our signed copy QR (KC1) checked with verify_qr when given (a printed
    e-copy is a copy, not an original); any other QR reported as kind "unknown", not verified."""
    flags = []
    for page_no, text in found:
        if "KC1:" in text.upper():
            verdict = "not_verified" if verify_qr is None else _status(verify_qr(text))
            key = {"valid": "qr_copy", "not_verified": "qr_unknown"}.get(verdict, "qr_invalid")
            score = 1.0 if verdict == "valid" else 0.0
            flags.append(
                Flag("qr", page_no, score, {"kind": "kc1", "verdict": verdict}, Text(MESSAGES[key]))
            )
        else:
            flags.append(
                Flag(
                    "qr",
                    page_no,
                    0.0,
                    {"kind": "unknown", "verdict": "not_verified"},
                    Text(MESSAGES["qr_unknown"]),
                )
            )
    return flags


def _status(verdict: Any) -> str:
    status = getattr(verdict, "status", verdict)
    return status if isinstance(status, str) else "invalid"


def check_original(
    pages: Sequence[np.ndarray],
    ocr_text: str,
    *,
    verify_qr: Callable[[str], Any] | None = None,
    dpi: float = DPI,
    read_stamps: bool = True,
) -> list[Flag]:
    """Everything but capture_quality for one original: its pages as scan() flattened them,
    before enhancement (ScannedPage.flat, BGR, at dpi: enhancement whitens correction fluid
    into the paper and smooths a screen's colour pattern away), and the OCR text of all of
    them. Forbidden marks, photocopy and screen cues, damage, printed QR.
    read_stamps: also read each page's coloured ink alone (stamp_text), as the page's OCR text
    leaves red stamps out."""
    stamps = [stamp_text(page, dpi=dpi) for page in pages] if read_stamps else []
    flags = forbidden_marks("\n".join([ocr_text, *stamps]))
    for n, page in enumerate(pages, 1):
        flags += original_cues(page, page_no=n, dpi=dpi)
        flags += damage(page, page_no=n, dpi=dpi)
    flags += qr_flags(_qr_by_page(pages), verify_qr)
    return flags


__all__ = [
    "DPI",
    "WORK_DPI",
    "Flag",
    "Quality",
    "capture_quality",
    "check_original",
    "damage",
    "forbidden_marks",
    "original_cues",
    "printed_qr",
    "qr_flags",
    "stamp_text",
]
