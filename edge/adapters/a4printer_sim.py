"""A simulated A4 printer: each job is a PDF file in a folder (for development and tests)."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

from edge.ports.a4printer import A4PrintFailed


class FolderA4Printer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.connected = True
        self._n = itertools.count(1)
        self._lock = threading.Lock()

    def print_pdf(self, title: str, pdf: bytes) -> str:
        if not self.connected:
            raise A4PrintFailed("simulated A4 printer unplugged")
        if not pdf.startswith(b"%PDF"):
            raise A4PrintFailed("not a PDF")
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            job = f"a4-{next(self._n):04d}"
            path = self.folder / f"{job}.pdf"
            path.write_bytes(pdf)
        return job
