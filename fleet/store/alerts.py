"""Alerts the rules raise and clear."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fleet.store.base import StoreBase
from fleet.store.schema import alerts


class Alerts(StoreBase):
    def open_alerts(self, *, kiosk_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(alerts).where(alerts.c.cleared_at.is_(None))
        if kiosk_id:
            query = query.where(alerts.c.kiosk_id == kiosk_id)
        query = query.order_by(alerts.c.raised_at.desc())
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def alert_history(self, *, limit: int = 200) -> list[dict[str, Any]]:
        query = sa.select(alerts).order_by(alerts.c.raised_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def sync_alerts(
        self, wanted: dict[tuple[str, str], tuple[str, str]], *, now: float
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Make the open alerts equal `wanted` ((kiosk, rule) -> (severity, message)).

        Returns (raised, cleared) rows, for the webhook.
        """
        raised: list[dict[str, Any]] = []
        cleared: list[dict[str, Any]] = []
        with self.begin() as conn:
            open_rows = {
                (r.kiosk_id, r.rule): dict(r._mapping)
                for r in conn.execute(sa.select(alerts).where(alerts.c.cleared_at.is_(None)))
            }
            for key, row in open_rows.items():
                if key not in wanted:
                    conn.execute(
                        alerts.update().where(alerts.c.row == row["row"]).values(cleared_at=now)
                    )
                    cleared.append({**row, "cleared_at": now})
            for (kiosk_id, rule), (severity, message) in wanted.items():
                if (kiosk_id, rule) in open_rows:
                    continue
                values = {
                    "kiosk_id": kiosk_id,
                    "rule": rule,
                    "severity": severity,
                    "message": message,
                    "raised_at": now,
                }
                conn.execute(alerts.insert().values(values))
                raised.append(values)
        return raised, cleared
