"""Signed commands sent to kiosks, and their results."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fleet.store.base import StoreBase
from fleet.store.ingest import parse_time
from fleet.store.schema import commands


class Commands(StoreBase):
    def log_command(self, envelope: dict[str, Any], *, kiosk_id: str, now: float) -> None:
        with self.begin() as conn:
            conn.execute(
                commands.insert().values(
                    id=envelope["id"],
                    kiosk_id=kiosk_id,
                    name=envelope["name"],
                    args=envelope["args"],
                    operator=envelope["operator"],
                    sent_at=now,
                    expires_at=parse_time(envelope["expires_at"], now),
                    status="sent",
                )
            )

    def command(self, command_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(commands).where(commands.c.id == command_id)).first()
        return dict(row._mapping) if row else None

    def commands(self, *, kiosk_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query = sa.select(commands)
        if kiosk_id:
            query = query.where(commands.c.kiosk_id == kiosk_id)
        query = query.order_by(commands.c.sent_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
