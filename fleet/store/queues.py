"""Queue figures per site and area: the counters' override, and the tickets the kiosks report."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fleet.store.base import StoreBase
from fleet.store.schema import kiosks, queue_stats, queue_tickets

CALLS_AVERAGED = 10


class Queues(StoreBase):
    def put_queue_stats(self, row: dict[str, Any]) -> None:
        keys = (
            "day",
            "serving",
            "avg_service_s",
            "counters_open",
            "priority_serving",
            "updated_by",
            "updated_at",
        )
        stmt = self._insert(queue_stats).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["site", "area"], set_={k: row[k] for k in keys}
        )
        with self.begin() as conn:
            conn.execute(stmt)

    def queue_stats(self, *, site: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(queue_stats).order_by(queue_stats.c.site, queue_stats.c.area)
        if site is not None:
            query = query.where(queue_stats.c.site == site)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def ticket_figures(self, day: str, *, site: str | None = None) -> list[dict[str, Any]]:
        """Per site and area, the day's tickets the kiosks reported: issued, called and
        waiting, each also for the priority series; the last call's time."""
        qt = queue_tickets
        query = (
            sa.select(
                kiosks.c.site,
                qt.c.area,
                qt.c.series,
                sa.func.count().label("issued"),
                sa.func.count(qt.c.called_at).label("called"),
                sa.func.max(qt.c.called_at).label("last_call"),
            )
            .select_from(qt.join(kiosks, kiosks.c.kiosk_id == qt.c.kiosk_id))
            .where(qt.c.day == day)
            .group_by(kiosks.c.site, qt.c.area, qt.c.series)
            .order_by(kiosks.c.site, qt.c.area)
        )
        if site is not None:
            query = query.where(kiosks.c.site == site)
        out: dict[tuple[str, str], dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(query):
                row = out.setdefault(
                    (r.site, r.area),
                    {
                        "site": r.site,
                        "area": r.area,
                        "day": day,
                        "issued": 0,
                        "called": 0,
                        "priority_issued": 0,
                        "priority_called": 0,
                        "last_call": None,
                    },
                )
                prefix = "priority_" if r.series == "UT" else ""
                row[prefix + "issued"] += r.issued
                row[prefix + "called"] += r.called
                if r.last_call is not None:
                    row["last_call"] = max(row["last_call"] or 0.0, r.last_call)
            intervals = self._call_intervals(conn, day, site)
            for row in out.values():
                row["waiting"] = (
                    row["issued"] + row["priority_issued"] - row["called"] - row["priority_called"]
                )
                row["call_interval_s"] = intervals.get((row["site"], row["area"]))
        return list(out.values())

    def _call_intervals(
        self, conn: Any, day: str, site: str | None
    ) -> dict[tuple[str, str], float]:
        """Per (site, area): the mean time between the last CALLS_AVERAGED calls, the wait one
        more ticket ahead adds, whatever the number of counters open. One query (a window
        function, SQLite 3.25+ and PostgreSQL) for every area of the day."""
        qt = queue_tickets
        rank = (
            sa.func.row_number()
            .over(partition_by=(kiosks.c.site, qt.c.area), order_by=qt.c.called_at.desc())
            .label("rank")
        )
        recent = (
            sa.select(kiosks.c.site, qt.c.area, qt.c.called_at, rank)
            .select_from(qt.join(kiosks, kiosks.c.kiosk_id == qt.c.kiosk_id))
            .where(qt.c.day == day, qt.c.called_at.is_not(None))
        )
        if site is not None:
            recent = recent.where(kiosks.c.site == site)
        last = recent.subquery("recent")
        query = (
            sa.select(
                last.c.site,
                last.c.area,
                sa.func.max(last.c.called_at).label("newest"),
                sa.func.min(last.c.called_at).label("oldest"),
                sa.func.count().label("n"),
            )
            .where(last.c.rank <= CALLS_AVERAGED + 1)
            .group_by(last.c.site, last.c.area)
        )
        return {
            (r.site, r.area): round((r.newest - r.oldest) / (r.n - 1), 1)
            for r in conn.execute(query)
            if r.n >= 2
        }

    def serving_by_kiosk(self, day: str, site: str) -> dict[str, dict[str, dict[str, int]]]:
        """kiosk -> area -> {"serving", "priority_serving"}: the highest number called of each
        series, in the kiosk's own numbering (each kiosk numbers its tickets itself)."""
        qt = queue_tickets
        query = (
            sa.select(qt.c.kiosk_id, qt.c.area, qt.c.series, sa.func.max(qt.c.seq).label("top"))
            .select_from(qt.join(kiosks, kiosks.c.kiosk_id == qt.c.kiosk_id))
            .where(qt.c.day == day, kiosks.c.site == site, qt.c.called_at.is_not(None))
            .group_by(qt.c.kiosk_id, qt.c.area, qt.c.series)
        )
        out: dict[str, dict[str, dict[str, int]]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(query):
                key = "priority_serving" if r.series == "UT" else "serving"
                out.setdefault(r.kiosk_id, {}).setdefault(r.area, {})[key] = r.top
        return out

    def call_next(
        self, day: str, site: str, area: str, *, by: str, now: float
    ) -> dict[str, Any] | None:
        """Mark the next ticket of a site's area called: the priority series first, then in
        the order issued. Returns it (kiosk_id, series, seq), or None when nobody waits."""
        qt = queue_tickets
        pick = (
            sa.select(qt.c.kiosk_id, qt.c.series, qt.c.seq)
            .select_from(qt.join(kiosks, kiosks.c.kiosk_id == qt.c.kiosk_id))
            .where(
                qt.c.day == day, qt.c.area == area, kiosks.c.site == site, qt.c.called_at.is_(None)
            )
            .order_by(
                sa.case((qt.c.series == "UT", 0), else_=1), qt.c.issued_at, qt.c.kiosk_id, qt.c.seq
            )
            .limit(1)
        )
        for _ in range(5):  # another counter may call the same ticket at the same moment
            with self.begin() as conn:
                found = conn.execute(pick).first()
                if found is None:
                    return None
                done = conn.execute(
                    qt.update()
                    .where(
                        qt.c.kiosk_id == found.kiosk_id,
                        qt.c.day == day,
                        qt.c.area == area,
                        qt.c.series == found.series,
                        qt.c.seq == found.seq,
                        qt.c.called_at.is_(None),
                    )
                    .values(called_at=now, called_by=by)
                )
                if done.rowcount == 1:
                    return {"kiosk_id": found.kiosk_id, "series": found.series, "seq": found.seq}
        return None
