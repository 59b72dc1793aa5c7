"""The kiosks and what they sent (telemetry, events, sealed records), for the dashboard."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from fleet.store.base import StoreBase
from fleet.store.partitions import Partition, is_partitioned, maintain
from fleet.store.partitions import partitions as day_partitions
from fleet.store.schema import events, kiosks, records, telemetry


class Kiosks(StoreBase):
    def kiosks(self, *, site: str | None = None, full: bool = False) -> list[dict[str, Any]]:
        """Every kiosk (of a site); without `full`, the last telemetry sample is left out."""
        columns = list(kiosks.c) if full else [c for c in kiosks.c if c.name != "telemetry"]
        query = sa.select(*columns).order_by(kiosks.c.site, kiosks.c.kiosk_id)
        if site:
            query = query.where(kiosks.c.site == site)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def kiosk(self, kiosk_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(kiosks).where(kiosks.c.kiosk_id == kiosk_id)).first()
        return dict(row._mapping) if row else None

    def state_counts(self) -> dict[str, int]:
        query = sa.select(kiosks.c.state, sa.func.count().label("n")).group_by(kiosks.c.state)
        with self.engine.connect() as conn:
            return {r.state: r.n for r in conn.execute(query)}

    def sites(self) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(kiosks.c.site).distinct().order_by(kiosks.c.site))
            return [r.site for r in rows]

    def set_site(self, kiosk_id: str, site: str, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.begin() as conn:
            self._ensure_kiosk(conn, kiosk_id, now)
            conn.execute(
                kiosks.update()
                .where(kiosks.c.kiosk_id == kiosk_id)
                .values(site=site[:128], site_fixed=True)
            )

    def telemetry_series(self, kiosk_id: str, since: float) -> list[dict[str, Any]]:
        query = (
            sa.select(telemetry)
            .where(telemetry.c.kiosk_id == kiosk_id, telemetry.c.at >= since)
            .order_by(telemetry.c.at)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def events(
        self, *, kiosk_id: str | None = None, kind: str | None = None, since: float = 0, limit=100
    ) -> list[dict[str, Any]]:
        query = sa.select(events).where(events.c.at >= since)
        if kiosk_id:
            query = query.where(events.c.kiosk_id == kiosk_id)
        if kind:
            query = query.where(events.c.kind == kind)
        query = query.order_by(events.c.at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def count_events(self, kiosk_id: str, kind: str, since: float) -> int:
        query = sa.select(sa.func.count()).where(
            events.c.kiosk_id == kiosk_id, events.c.kind == kind, events.c.at >= since
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def event_counts(self, kind: str, since: float) -> dict[str, int]:
        """Events of one kind since a time, per kiosk."""
        query = (
            sa.select(events.c.kiosk_id, sa.func.count().label("n"))
            .where(events.c.kind == kind, events.c.at >= since)
            .group_by(events.c.kiosk_id)
        )
        with self.engine.connect() as conn:
            return {r.kiosk_id: r.n for r in conn.execute(query)}

    def records(
        self, *, kiosk_id: str | None = None, limit: int = 100, with_data: bool = False
    ) -> list[dict[str, Any]]:
        """Newest first; `with_data` unseals each record's data (personal data: only for
        whoever needs it, never for a listing)."""
        query = sa.select(records)
        if kiosk_id:
            query = query.where(records.c.kiosk_id == kiosk_id)
        query = query.order_by(records.c.received_at.desc(), records.c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            sealed = row.pop("sealed")
            if with_data:
                row["data"] = self._unseal(row["id"], sealed)
        return rows

    def count_records(self) -> int:
        return self.count(records)

    def count(self, table: sa.Table) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()

    def prune(self, *, now: float, telemetry_keep_s: float, events_keep_s: float) -> int:
        """Telemetry and events past their keep time; returns the rows deleted. On PostgreSQL
        telemetry's day partitions are made ahead and whole days past are dropped, not deleted
        (fleet/store/partitions.py; not counted here: telemetry_partitions() lists them)."""
        with self.begin() as conn:
            if is_partitioned(conn):
                _, _, n = maintain(conn, now=now, keep_s=telemetry_keep_s)
            else:
                cutoff = now - telemetry_keep_s
                n = conn.execute(telemetry.delete().where(telemetry.c.at < cutoff)).rowcount
            m = conn.execute(events.delete().where(events.c.at < now - events_keep_s))
            return n + m.rowcount

    def telemetry_partitions(self) -> list[Partition]:
        """Telemetry's day partitions, oldest first ([] where it is one table: SQLite)."""
        with self.engine.connect() as conn:
            return day_partitions(conn) if is_partitioned(conn) else []
