"""Dossiers the kiosks look up by code."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from fleet.store.base import StoreBase
from fleet.store.schema import dossiers


class Dossiers(StoreBase):
    def put_dossier(self, code: str, data: dict[str, Any], *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        stmt = self._insert(dossiers).values(code=code, data=data, updated_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["code"], set_={"data": data, "updated_at": now}
        )
        with self.begin() as conn:
            conn.execute(stmt)

    def dossier(self, code: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(dossiers).where(dossiers.c.code == code)).first()
        return dict(row._mapping) if row else None

    def dossiers(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(dossiers).order_by(dossiers.c.code))
            return [dict(r._mapping) for r in rows]
