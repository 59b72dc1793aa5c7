"""Dossiers the kiosks look up by code."""

from __future__ import annotations

import re
import time
from typing import Any

import sqlalchemy as sa

from fleet.store.base import StoreBase
from fleet.store.schema import cert_audit, dossiers, records


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

    # --- results by post: the requests kiosks sent, the shipments operators recorded ---------

    def post_request(self, code: str) -> dict[str, Any] | None:
        """The records/post-request received for a request id (32 hex), or for the 8 characters
        the citizen's confirmation prints when only one request starts so; its data unsealed
        (personal data: not for a listing). None when there is none, or more than one."""
        code = code.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{8}|[0-9a-f]{32}", code):
            return None
        query = (
            sa.select(records)
            .where(records.c.kind == "post-request", records.c.id.like(f"post-{code}%"))
            .limit(2)
        )
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        if len(rows) != 1:
            return None
        row = rows[0]
        row["data"] = self._unseal(row["id"], row.pop("sealed"))
        return row

    def shipment_log(self, *, since: float = 0.0, limit: int = 500) -> list[dict[str, Any]]:
        """The audit lines of post shipments, newest first: `post_shipment` (an operator recorded
        one: who, the request, detail {kiosk, reference, status, dossier}) and
        `post_shipment_sent` (central published it: detail {"row": that line's row})."""
        a = cert_audit
        query = (
            sa.select(a)
            .where(a.c.action.in_(("post_shipment", "post_shipment_sent")), a.c.at >= since)
            .order_by(a.c.at.desc(), a.c.row.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
