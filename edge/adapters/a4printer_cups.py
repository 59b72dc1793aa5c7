"""The A4 printer through CUPS: `lp` reads the PDF on standard input."""

from __future__ import annotations

import re
import subprocess

from edge.ports.a4printer import A4PrintFailed

_JOB = re.compile(r"request id is (\S+)")


class CupsA4Printer:
    def __init__(self, queue: str = "", *, lp: str = "lp", timeout_s: float = 30.0) -> None:
        self.queue = queue
        self.lp = lp
        self.timeout_s = timeout_s

    def print_pdf(self, title: str, pdf: bytes) -> str:
        args = [self.lp, "-t", title, "-o", "media=A4"]
        if self.queue:
            args += ["-d", self.queue]
        try:
            done = subprocess.run(
                [*args, "-"], input=pdf, capture_output=True, timeout=self.timeout_s, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise A4PrintFailed(f"lp: {type(err).__name__}") from None
        if done.returncode != 0:
            raise A4PrintFailed(f"lp exited {done.returncode}: {done.stderr.decode()[:200]}")
        found = _JOB.search(done.stdout.decode(errors="replace"))
        return found.group(1) if found else "lp"
