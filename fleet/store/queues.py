"""Queue figures the counters report, per site and area."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fleet.store.base import StoreBase
from fleet.store.schema import queue_stats


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
