"""Revoked e-copy codes and signing-certificate serials."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fleet.store.base import StoreBase, _inserted
from fleet.store.schema import revocations


class Revocations(StoreBase):
    def revoke_copy(
        self,
        code: str,
        *,
        reason: str,
        operator: str,
        now: float,
        kind: str = "code",
        effective_from: float | None = None,
    ) -> bool:
        stmt = self._insert(revocations).values(
            code=code,
            kind=kind,
            reason=reason[:200],
            operator=operator,
            revoked_at=now,
            effective_from=effective_from,
        )
        with self.begin() as conn:
            return _inserted(
                conn, stmt.on_conflict_do_nothing(index_elements=["code"]), revocations.c.code
            )

    def revocations(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(revocations).order_by(revocations.c.revoked_at))
            return [dict(r._mapping) for r in rows]
