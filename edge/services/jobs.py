"""Long work off the web request: one worker thread per kiosk (the OCR of a citizen's pages,
issuing the certification requests), so that no request waits for it and the screen shows its
progress instead of freezing (docs/web-ui.md, "No stalls").

One kiosk has one screen, so one worker is enough and keeps the 2-4 cores free for the camera
and the page the citizen sees; the queue is bounded (past `max_queued` a job is refused, the
caller says the kiosk is busy). A job's result stays in the citizen's session (RAM), never on
disk; the job itself only calls back into the session.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class Job:
    """What one long piece of work has done so far, read by the progress screen's poll."""

    kind: str  # "read" (the pages' OCR) or "issue" (the certification requests)
    total: int = 0  # steps to do (pages to read)
    done: int = 0  # steps done so far
    finished: bool = False
    dropped: bool = False  # the session ended (cancel, idle) while the job ran: result dropped
    next: str | None = None  # where the citizen goes once it is finished (a flow step)
    problem: Any = None  # a citizen-facing text (edge.texts.Text or ecopy.Message)
    error: str | None = None  # an error screen's code ("part_down", "internal")

    @property
    def running(self) -> bool:
        return not self.finished


class Worker:
    """One thread for the kiosk's long work, its queue bounded."""

    def __init__(self, *, max_queued: int = 4) -> None:
        self.max_queued = max_queued
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kiosk-work")
        self._queued = 0
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], object]) -> bool:
        """Run work on the worker thread; False (nothing done) when too much is queued."""
        with self._lock:
            if self._queued >= self.max_queued:
                return False
            self._queued += 1

        def run() -> None:
            try:
                work()
            except Exception:  # the job records its own errors; this is a bug, not the citizen's
                logger.exception("background job failed")
            finally:
                with self._lock:
                    self._queued -= 1

        self._pool.submit(run)
        return True

    def queued(self) -> int:
        with self._lock:
            return self._queued

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
