"""The A4 printer port: a certified copy (a PDF) on paper, for the citizen who wants one."""

from __future__ import annotations

from typing import Protocol


class A4PrintFailed(RuntimeError):
    """The A4 printer did not take the job (not connected, out of paper, refused)."""


class A4Printer(Protocol):
    def print_pdf(self, title: str, pdf: bytes) -> str:
        """Send one PDF; the job's id. A4PrintFailed when the printer did not take it."""
        ...
