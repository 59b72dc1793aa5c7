"""Print jobs: committed (sealed) before printing, kept when the printer fails, reprintable for a
while (audited, by name); then the bytes of slips with personal data are erased."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from edge.config import Config
from edge.errors import BadInput, PrinterError
from edge.events import Event, EventBus
from edge.ports.printer import PrinterStatus, PrinterTransport
from edge.receipts import selftest_page
from edge.store import DataKey, Store
from edge.store import staff as audit

logger = logging.getLogger(__name__)

# Slips that carry no personal data: a queue number, a list of papers to bring, the test page.
# Every other kind (post confirmation: name and address; copy receipt: the copy's code) is
# personal and erased keep_personal_min after it printed.
IMPERSONAL_KINDS = frozenset({"test", "ticket", "checklist"})


def personal(kind: str) -> bool:
    return kind not in IMPERSONAL_KINDS


class JobPurged(BadInput):
    """The slip's bytes were erased (kept only a short while): it cannot be printed again."""

    code = "job_purged"


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
        self,
        transport: PrinterTransport,
        *,
        store: Store,
        key: DataKey,
        bus: EventBus,
        keep_personal_s: float = 600.0,
        keep_unprinted_s: float = 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.transport = transport
        self.store = store
        self.key = key
        self.bus = bus
        self.keep_personal_s = keep_personal_s
        self.keep_unprinted_s = keep_unprinted_s
        self.clock = clock
        self._lock = threading.Lock()
        self._last_status: PrinterStatus | None = None

    @classmethod
    def from_config(cls, transport: PrinterTransport, config: Config, **parts: Any) -> PrintQueue:
        """store, key and bus in parts; how long slips are kept from [printer]."""
        return cls(
            transport,
            keep_personal_s=config.printer.keep_personal_min * 60,
            keep_unprinted_s=config.printer.keep_unprinted_h * 3600,
            **parts,
        )

    def submit(self, kind: str, title: str, data: bytes) -> PrintOutcome:
        job_id = uuid.uuid4().hex[:12]
        sealed = self.key.encrypt(data, aad=job_id.encode())
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO print_jobs(id, kind, title, payload, status, created_at) "
                "VALUES (?, ?, ?, ?, 'pending', ?)",
                (job_id, kind, title, sealed, self.clock()),
            )
        return self._attempt(job_id, data)

    def reprint(self, job_id: str, *, actor: str) -> PrintOutcome:
        """Print a kept job again for `actor` (a staff name, "technician" or "cli"): audited.

        Raises BadInput for an unknown job, JobPurged once its bytes are (due to be) erased."""
        rows = self.store.query(
            "SELECT kind, payload, status, created_at, printed_at, purged_at "
            "FROM print_jobs WHERE id = ?",
            (job_id,),
        )
        if not rows:
            raise BadInput(f"no print job {job_id!r}")
        job = rows[0]
        now = self.clock()
        if job["purged_at"] is not None or self._due(job, now):
            raise JobPurged(
                "phiếu này không còn được lưu để in lại (this slip is no longer kept: "
                f"slips with personal data are kept {self.keep_personal_s / 60:g} minutes "
                f"after printing, others {self.keep_unprinted_s / 3600:g} hours)"
            )
        with self.store.transaction() as conn:
            audit.record(
                conn, at=now, actor=actor, action="print.reprint", subject=job_id, kind=job["kind"]
            )
        logger.info(
            "print job reprint requested",
            extra={"job": job_id, "kind": job["kind"], "by": audit.actor_class(actor)},
        )
        return self._attempt(job_id, self.key.decrypt(job["payload"], aad=job_id.encode()))

    def purge(self, *, now: float | None = None) -> int:
        """Erase the bytes of jobs past their window (see _due); their rows stay, titled only."""
        now = self.clock() if now is None else now
        with self.store.transaction() as conn:
            rows = conn.execute(
                "SELECT id, kind, status, created_at, printed_at FROM print_jobs "
                "WHERE purged_at IS NULL"
            ).fetchall()
            due = [r["id"] for r in rows if self._due(r, now)]
            conn.executemany(
                "UPDATE print_jobs SET payload = X'', purged_at = ? WHERE id = ?",
                [(now, job_id) for job_id in due],
            )
        if due:
            # secure_delete zeroes the freed pages; the WAL still holds the old ones until now.
            self.store.query("PRAGMA wal_checkpoint(TRUNCATE)")
            logger.info("print jobs erased after their window", extra={"count": len(due)})
        return len(due)

    def _due(self, job: Any, now: float) -> bool:
        if now - job["created_at"] >= self.keep_unprinted_s:
            return True
        return (
            personal(job["kind"])
            and job["status"] == "printed"
            and now - job["printed_at"] >= self.keep_personal_s
        )

    def jobs(self, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Recent jobs, newest first; `kept`: its bytes are still there to reprint."""
        if status:
            return self._rows("WHERE status = ? ORDER BY created_at DESC LIMIT ?", (status, limit))
        return self._rows("ORDER BY created_at DESC LIMIT ?", (limit,))

    def job(self, job_id: str) -> dict[str, Any] | None:
        rows = self._rows("WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    def _rows(self, where: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, kind, title, status, attempts, last_error, created_at, printed_at, "
            "purged_at IS NULL AS kept FROM print_jobs "
        )
        rows = [dict(r) for r in self.store.query(sql + where, params)]
        now = self.clock()
        for row in rows:
            row["kept"] = bool(row["kept"]) and not self._due(row, now)
            row["personal"] = personal(row["kind"])
        return rows

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
                        (self.clock(), job_id),
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
