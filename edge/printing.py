"""Print jobs: committed (sealed) before printing, kept when the printer fails, reprintable."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from edge.config import Config
from edge.errors import BadInput, PrinterError
from edge.events import Event, EventBus
from edge.ports.printer import PrinterStatus, PrinterTransport
from edge.receipts import selftest_page
from edge.store import DataKey, Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PrintOutcome:
    job_id: str
    printed: bool
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "printed": self.printed, "error": self.error}


class PrintQueue:
    """One job at a time. A job is in the database before a byte goes to the printer,
    so a pulled cable or a power cut never loses a slip: it can be reprinted from the screen.
    """

    def __init__(
        self, transport: PrinterTransport, *, store: Store, key: DataKey, bus: EventBus
    ) -> None:
        self.transport = transport
        self.store = store
        self.key = key
        self.bus = bus
        self._lock = threading.Lock()
        self._last_status: PrinterStatus | None = None

    def submit(self, kind: str, title: str, data: bytes) -> PrintOutcome:
        job_id = uuid.uuid4().hex[:12]
        sealed = self.key.encrypt(data, aad=job_id.encode())
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO print_jobs(id, kind, title, payload, status, created_at) "
                "VALUES (?, ?, ?, ?, 'pending', ?)",
                (job_id, kind, title, sealed, time.time()),
            )
        return self._attempt(job_id, data)

    def reprint(self, job_id: str) -> PrintOutcome:
        rows = self.store.query("SELECT payload FROM print_jobs WHERE id = ?", (job_id,))
        if not rows:
            raise BadInput(f"no print job {job_id!r}")
        return self._attempt(job_id, self.key.decrypt(rows[0][0], aad=job_id.encode()))

    def jobs(self, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, kind, title, status, attempts, last_error, created_at, printed_at "
            "FROM print_jobs"
        )
        params: tuple[Any, ...] = ()
        if status:
            sql += " WHERE status = ?"
            params = (status,)
        sql += " ORDER BY created_at DESC LIMIT ?"
        return [dict(r) for r in self.store.query(sql, (*params, limit))]

    def status(self) -> PrinterStatus:
        status = self.transport.status()
        self._note_status(status)
        return status

    def _attempt(self, job_id: str, data: bytes) -> PrintOutcome:
        with self._lock:
            status = self.status()
            error: str | None = None
            if not status.can_print:
                error = _why_not(status)
            else:
                try:
                    self.transport.send(data, job_id=job_id)
                except PrinterError as err:
                    error = str(err)
            with self.store.transaction() as conn:
                if error is None:
                    conn.execute(
                        "UPDATE print_jobs SET status = 'printed', attempts = attempts + 1, "
                        "last_error = NULL, printed_at = ? WHERE id = ?",
                        (time.time(), job_id),
                    )
                else:
                    conn.execute(
                        "UPDATE print_jobs SET status = 'failed', attempts = attempts + 1, "
                        "last_error = ? WHERE id = ?",
                        (error, job_id),
                    )
        if error is None:
            logger.info("print job printed", extra={"job": job_id})
            self.bus.post(Event("printer.job_printed", "printer", {"job": job_id}))
        else:
            logger.warning("print job failed, kept for reprint: %s", error, extra={"job": job_id})
            self.bus.post(Event("printer.job_failed", "printer", {"job": job_id, "reason": error}))
        return PrintOutcome(job_id, error is None, error)

    def _note_status(self, status: PrinterStatus) -> None:
        """Post an event when the printer's condition changes (paper low/out, offline)."""
        previous, self._last_status = self._last_status, status
        if previous is None or previous == status:
            return
        if previous.online and not status.online:
            self.bus.post(Event("printer.offline", "printer", {"reason": status.detail}))
        elif status.online and not previous.online:
            self.bus.post(Event("printer.online", "printer"))
        if status.paper != previous.paper and status.paper in ("near-end", "out"):
            self.bus.post(Event(f"printer.paper_{status.paper.replace('-', '_')}", "printer"))
        if status.cover_open and not previous.cover_open:
            self.bus.post(Event("printer.cover_open", "printer"))


def print_test_page(queue: PrintQueue, config: Config) -> PrintOutcome:
    """The technician's test page through the normal job path (kept for reprint if it fails)."""
    data = selftest_page(
        kiosk_id=config.kiosk.id,
        site=config.kiosk.site,
        printer=queue.transport.describe(),
        paper_width_mm=config.printer.paper_width_mm,
        profile=config.printer.profile,
        now=dt.datetime.now(ZoneInfo(config.kiosk.timezone)),
    )
    return queue.submit("test", "Trang in thử", data)


def _why_not(status: PrinterStatus) -> str:
    if not status.online:
        return f"printer offline: {status.detail}" if status.detail else "printer offline"
    if status.paper == "out":
        return "printer is out of paper"
    if status.cover_open:
        return "printer cover is open"
    return "printer not ready"
