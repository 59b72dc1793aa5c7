"""Queue tickets: a number per area per local day, durable (no duplicate, no gap), printed, reported.

Priority tickets (docs/services.md, "Priority tickets"): a separate series per area and day
(B-UT001 ...), self-declared by one group code, served first. Nothing personal is asked."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema

from edge.config import ServicesSection
from edge.fleet.messages import queue_record
from edge.printing import PrintOutcome, PrintQueue
from edge.services.errors import ServiceError
from edge.store import Store
from edge.store.outbox import Outbox
from edge.texts import N_, Text
from protocol.schemas import load_schema

logger = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UnknownArea(ServiceError):
    code = "unknown_area"

    def __init__(self, area: str, known: list[str]) -> None:
        super().__init__(
            Text(N_("This service area is not available here. Please choose again.")),
            f"no service area {area!r} (configured: {', '.join(known)})",
            areas=known,
        )


# The groups served first at the one-stop counters (docs/services.md cites the law): the code
# that goes to central and the words the citizen taps and the slip prints.
PRIORITY_GROUPS: dict[str, str] = {
    "elderly": N_("Older person (60 or over)"),
    "disabled": N_("Person with a disability"),
    "pregnant": N_("Pregnant woman"),
    "child": N_("With a small child"),
    "merit": N_("War invalid or person with meritorious services"),
}
PRIORITY_SERIES = "UT"  # "ưu tiên": B-UT001, ASCII so that QR readers and counters agree


class UnknownPriorityGroup(ServiceError):
    code = "unknown_priority_group"

    def __init__(self, group: str) -> None:
        super().__init__(
            Text(N_("This priority group is not available here. Please choose again.")),
            f"no priority group {group!r} here",
        )


@dataclass(frozen=True, slots=True)
class Ticket:
    """One issued ticket; `number` is what the citizen sees (e.g. B-027)."""

    number: str
    area: str
    area_name: str
    day: str  # YYYY-MM-DD, kiosk time
    seq: int
    issued_at: dt.datetime  # aware, kiosk time zone
    waiting_ahead: int | None
    estimated_wait_min: int | None
    follow: str  # the QR's content
    printed: PrintOutcome | None = None
    priority: str | None = None  # a PRIORITY_GROUPS code: the priority series, served first

    @property
    def priority_label(self) -> Text | None:
        return Text(PRIORITY_GROUPS[self.priority]) if self.priority else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "area": self.area,
            "area_name": self.area_name,
            "day": self.day,
            "seq": self.seq,
            "issued_at": self.issued_at.isoformat(),
            "waiting_ahead": self.waiting_ahead,
            "estimated_wait_min": self.estimated_wait_min,
            "follow": self.follow,
            "printed": self.printed.as_dict() if self.printed else None,
            "priority": self.priority,
        }


class TicketService:
    """Issues tickets. The number is taken and committed in one SQLite write transaction
    (BEGIN IMMEDIATE, synchronous=FULL), so a power cut never gives the same number twice
    and never skips one; the record for central follows through the outbox.

    slip: builds the printed bytes for a ticket (edge.services.printouts.ticket_slip with the
    site's paper); printer: the PrintQueue (a failed print is kept for reprint).
    """

    def __init__(
        self,
        *,
        store: Store,
        outbox: Outbox,
        kiosk_id: str,
        settings: ServicesSection,
        timezone: str = "Asia/Ho_Chi_Minh",
        printer: PrintQueue | None = None,
        slip: Callable[..., bytes] | None = None,
        clock: Clock = utc_now,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.kiosk_id = kiosk_id
        self.settings = settings
        self.tz = ZoneInfo(timezone)
        self.printer = printer
        self.slip = slip
        self.clock = clock
        self.on_queued = on_queued
        self._stats: tuple[dict[str, Any], dt.datetime] | None = None
        self._stats_dirty = False  # newer than the copy in kv (other processes read that)
        self._stats_lock = threading.Lock()

    # --- what the UI calls -----------------------------------------------------------

    def areas(self) -> list[dict[str, Any]]:
        """The areas to choose from, with today's last number and people waiting."""
        day = self._today()
        last = self._last(self.store.query, day)
        return [
            {
                "code": a.code,
                "name": a.name,
                "name_en": a.name_en,
                "issued_today": last.get((a.code, ""), 0),
                "waiting": self._ahead(a.code, last.get((a.code, ""), 0) + 1, day, last),
                "priority_waiting": self._ahead(
                    a.code, last.get((a.code, PRIORITY_SERIES), 0) + 1, day, last, priority=True
                ),
            }
            for a in self.settings.areas
        ]

    def priority_groups(self) -> list[dict[str, Any]]:
        """The groups this site gives priority to (services.priority_groups), in order."""
        return [
            {"code": g, "label": Text(PRIORITY_GROUPS[g])} for g in self.settings.priority_groups
        ]

    def take(
        self,
        area: str,
        *,
        print_ticket: bool = True,
        priority: str | None = None,
        lang: str = "vi",
    ) -> Ticket:
        """Issue the next number of `area` today; print it (if asked) and report it. `lang`:
        the citizen's language on the screen (English lines on the slip only for "en").

        priority: a group code of services.priority_groups (self-declared by the citizen):
        the number comes from the area's priority series (B-UT001 ...), served first.
        Raises UnknownArea, UnknownPriorityGroup. A failed print does not undo the ticket:
        `printed` says so and the job waits in the print queue for a reprint.
        """
        code = area.strip().upper()
        spec = self.settings.area(code)
        if spec is None:
            raise UnknownArea(area[:8], [a.code for a in self.settings.areas])
        if priority is not None and priority not in self.settings.priority_groups:
            raise UnknownPriorityGroup(priority[:16])
        series = PRIORITY_SERIES if priority else ""
        now = self.clock().astimezone(self.tz)
        day = now.date().isoformat()
        with self.store.transaction() as conn:
            self._persist_stats(conn)
            last = self._last(conn.execute, day)
            seq = last.get((code, series), 0) + 1
            ahead = self._ahead(code, seq, day, last, priority=bool(priority))
            wait = self._wait_minutes(code, ahead, now)
            number = f"{code}-{series}{seq:03d}"
            conn.execute(
                "INSERT INTO tickets(day, area, series, seq, number, priority, issued_at, "
                "waiting_ahead, estimated_wait_min) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (day, code, series, seq, number, priority, now.timestamp(), ahead, wait),
            )
        ticket = Ticket(
            number=number,
            area=code,
            area_name=spec.name,
            day=day,
            seq=seq,
            issued_at=now,
            waiting_ahead=ahead,
            estimated_wait_min=wait,
            follow=self._follow(day, number),
            priority=priority,
        )
        logger.info("ticket issued", extra={"ticket": number, "day": day})
        self._queue(ticket)
        if print_ticket and self.printer is not None and self.slip is not None:
            outcome = self.printer.submit(
                "ticket", f"Số thứ tự {number}", self.slip(ticket, lang=lang)
            )
            ticket = _with_print(ticket, outcome)
        return ticket

    def count_today(self) -> int:
        return self.store.query("SELECT COUNT(*) FROM tickets WHERE day = ?", (self._today(),))[0][
            0
        ]

    # --- central's queue figures (res/queue-stats) -------------------------------------

    def set_queue_stats(self, payload: dict[str, Any]) -> bool:
        """Central's queue-stats/1 (retained); False (and logged) if it is not valid."""
        try:
            jsonschema.validate(payload, load_schema("queue-stats"))
        except jsonschema.ValidationError as err:
            logger.warning("queue stats refused: %s", err.message)
            return False
        with self._stats_lock:
            self._stats = (payload, self.clock())
            self._stats_dirty = True
        return True

    def on_queue_stats(self, suffix: str, payload: bytes, properties: Any) -> None:
        """FleetClient.listen handler (paho's thread): parse and keep, nothing slow."""
        try:
            self.set_queue_stats(json.loads(payload))
        except ValueError:
            logger.warning("queue stats not JSON")

    # --- inside ------------------------------------------------------------------------

    def _today(self) -> str:
        return self.clock().astimezone(self.tz).date().isoformat()

    def _persist_stats(self, conn: sqlite3.Connection) -> None:
        """Keep central's latest figures in kv, so the CLI (another process) sees them too."""
        with self._stats_lock:
            if not self._stats_dirty or self._stats is None:
                return
            payload, received = self._stats
            self._stats_dirty = False
        conn.execute(
            "INSERT INTO kv(key, value) VALUES ('queue_stats', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (json.dumps({"payload": payload, "received": received.isoformat()}),),
        )

    def _current_stats(self, day: str) -> tuple[dict[str, Any], dt.datetime] | None:
        with self._stats_lock:
            stats = self._stats
        if stats is None:
            stored = self.store.get_kv("queue_stats")
            if stored:
                kept = json.loads(stored)
                stats = (kept["payload"], dt.datetime.fromisoformat(kept["received"]))
        if stats is None or stats[0]["day"] != day:
            return None
        return stats

    @staticmethod
    def _last(execute: Callable[..., Any], day: str) -> dict[tuple[str, str], int]:
        """Today's last number per (area, series); series "" or PRIORITY_SERIES."""
        rows = execute(
            "SELECT area, series, MAX(seq) AS last FROM tickets WHERE day = ? "
            "GROUP BY area, series",
            (day,),
        )
        return {(r[0], r[1]): r[2] for r in rows}

    def _ahead(
        self,
        area: str,
        seq: int,
        day: str,
        last: dict[tuple[str, str], int],
        *,
        priority: bool = False,
    ) -> int:
        """Tickets of the area called before number `seq` of its series: priority tickets are
        served first, so a priority ticket waits only for earlier priority tickets, and an
        ordinary one also for the priority tickets not yet called. Central's figures say
        which numbers are called ("serving", "priority_serving"); without them, all of
        today's earlier tickets count."""
        stats = self._current_stats(day)
        figures = stats[0]["areas"].get(area, {}) if stats is not None else {}
        issued_priority = last.get((area, PRIORITY_SERIES), 0)
        # Central's figures without "priority_serving": it does not count the priority
        # series apart, so its "serving" already covers the priority tickets called.
        priority_serving = figures.get(
            "priority_serving", issued_priority if stats is not None else 0
        )
        if priority:
            return max(0, seq - 1 - priority_serving)
        serving = figures.get("serving", 0)
        return max(0, seq - 1 - serving) + max(0, issued_priority - priority_serving)

    def _wait_minutes(self, area: str, ahead: int, now: dt.datetime) -> int | None:
        stats = self._current_stats(now.date().isoformat())
        if stats is None:
            return None
        payload, received = stats
        age = (self.clock() - received).total_seconds()
        figures = payload["areas"].get(area)
        if age > self.settings.queue_stats_max_age_s or not figures:
            return None
        avg = figures.get("avg_service_s")
        if avg is None:
            return None
        counters = max(1, figures.get("counters_open") or 1)
        return math.ceil(ahead * avg / counters / 60)

    def _follow(self, day: str, number: str) -> str:
        template = self.settings.ticket_follow_url
        if template:
            return template.format(kiosk_id=self.kiosk_id, day=day, number=number)
        return f"KIOSK-QUEUE|{self.kiosk_id}|{day}|{number}"

    def _queue(self, ticket: Ticket) -> None:
        data = {
            "number": ticket.number,
            "area": ticket.area,
            "area_name": ticket.area_name,
            "day": ticket.day,
            "seq": ticket.seq,
            "issued_at": ticket.issued_at.isoformat(),
            "waiting_ahead": ticket.waiting_ahead,
            "estimated_wait_min": ticket.estimated_wait_min,
            # Only the self-declared group: nothing that says who the citizen is.
            "priority": ticket.priority is not None,
            **({"priority_group": ticket.priority} if ticket.priority else {}),
        }
        series = PRIORITY_SERIES if ticket.priority else ""
        message_id = f"ticket-{self.kiosk_id}-{ticket.day}-{ticket.area}{series}-{ticket.seq}"
        try:
            queue_record(self.outbox, self.kiosk_id, "ticket", data, message_id=message_id)
        except sqlite3.IntegrityError:
            pass  # already queued before a crash; same id, central deduplicates
        except Exception:
            # The ticket stands; requeue_unreported() sends the record at the next start.
            logger.exception("ticket record not queued", extra={"ticket": ticket.number})
            return
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE tickets SET queued = 1 WHERE day = ? AND area = ? AND series = ? "
                "AND seq = ?",
                (ticket.day, ticket.area, series, ticket.seq),
            )
        if self.on_queued is not None:
            self.on_queued()

    def requeue_unreported(self) -> int:
        """Tickets committed but not yet in the outbox (a power cut in between): queue them.
        Called once at start; returns how many."""
        rows = self.store.query(
            "SELECT day, area, seq, number, priority, issued_at, waiting_ahead, "
            "estimated_wait_min FROM tickets WHERE queued = 0 ORDER BY issued_at"
        )
        for r in rows:
            spec = self.settings.area(r["area"])
            ticket = Ticket(
                number=r["number"],
                area=r["area"],
                area_name=spec.name if spec else r["area"],
                day=r["day"],
                seq=r["seq"],
                issued_at=dt.datetime.fromtimestamp(r["issued_at"], self.tz),
                waiting_ahead=r["waiting_ahead"],
                estimated_wait_min=r["estimated_wait_min"],
                follow=self._follow(r["day"], r["number"]),
                priority=r["priority"],
            )
            self._queue(ticket)
        if rows:
            logger.warning("queued ticket records left over from a crash", extra={"n": len(rows)})
        return len(rows)


def _with_print(ticket: Ticket, outcome: PrintOutcome) -> Ticket:
    return replace(ticket, printed=outcome)
