"""Satisfaction ratings: one optional tap at the end of a flow, kept only as counters.

Nothing ties a tap to a person, a session or a ticket: the kiosk adds one to the counter of
(local hour, flow, rating) and keeps nothing else. Central gets the counters of today's hours
already over, in telemetry (docs/fleet.md, "Satisfaction ratings").
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from edge.services.errors import ServiceError
from edge.store import Store
from edge.texts import N_, Text

logger = logging.getLogger(__name__)

FLOWS = ("ticket", "ecopy", "dossier", "post", "verify", "guide")
# The answers, best first, with the words the citizen taps.
RATINGS: dict[str, str] = {
    "very_satisfied": N_("Very satisfied"),
    "satisfied": N_("Satisfied"),
    "not_satisfied": N_("Not satisfied"),
}


class UnknownRating(ServiceError):
    code = "unknown_rating"

    def __init__(self, what: str) -> None:
        super().__init__(Text(N_("Please choose one of the answers.")), f"no rating {what!r}")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RatingService:
    """Counts taps per local hour, flow and rating (table rating_counts, no other trace)."""

    def __init__(
        self,
        *,
        store: Store,
        timezone: str = "Asia/Ho_Chi_Minh",
        clock: Callable[[], dt.datetime] = _utc_now,
        keep_days: int = 400,
    ) -> None:
        self.store = store
        self.tz = ZoneInfo(timezone)
        self.clock = clock
        self.keep_days = keep_days

    def record(self, flow: str, rating: str) -> None:
        """One tap: +1 on the counter of this hour. Raises UnknownRating."""
        if flow not in FLOWS or rating not in RATINGS:
            raise UnknownRating(f"{flow[:16]}/{rating[:16]}")
        hour = self.clock().astimezone(self.tz).strftime("%Y-%m-%dT%H")
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO rating_counts(hour, flow, rating, n) VALUES (?, ?, ?, 1) "
                "ON CONFLICT(hour, flow, rating) DO UPDATE SET n = n + 1",
                (hour, flow, rating),
            )
        # No log line: its time to the second, next to "ticket issued B-UT001" or a flow's
        # end, would tie the answer to a visit. The counter is the only trace.

    def counts(self, day: str, *, before_hour: int = 24) -> dict[str, dict[str, int]]:
        """{flow: {rating: n}} of a local day (YYYY-MM-DD), hours [0, before_hour)."""
        rows = self.store.query(
            "SELECT flow, rating, SUM(n) FROM rating_counts WHERE hour >= ? AND hour < ? "
            "GROUP BY flow, rating ORDER BY flow, rating",
            (f"{day}T00", f"{day}T{before_hour:02d}"),
        )
        out: dict[str, dict[str, int]] = {}
        for flow, rating, n in rows:
            out.setdefault(flow, {})[rating] = n
        return out

    def telemetry(self) -> dict[str, Any]:
        """Telemetry's `ratings`: today's counters of the hours over (never the current one,
        so that two samples cannot tell when a citizen tapped)."""
        now = self.clock().astimezone(self.tz)
        day = now.date().isoformat()
        return {
            "day": day,
            "through_hour": now.hour,
            "counts": self.counts(day, before_hour=now.hour),
        }

    def purge(self) -> int:
        """Drop counters older than keep_days; returns how many rows went."""
        cutoff = (self.clock().astimezone(self.tz) - dt.timedelta(days=self.keep_days)).strftime(
            "%Y-%m-%dT%H"
        )
        with self.store.transaction() as conn:
            return conn.execute("DELETE FROM rating_counts WHERE hour < ?", (cutoff,)).rowcount
