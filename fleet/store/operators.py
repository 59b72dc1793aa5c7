"""Operators who log in and sign commands, and login throttling."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fleet.store.base import StoreBase
from fleet.store.schema import login_throttle, operators


class Operators(StoreBase):
    def add_operator(self, row: dict[str, Any]) -> None:
        with self.begin() as conn:
            conn.execute(operators.insert().values(row))

    def update_operator(self, operator_id: str, **values: Any) -> None:
        with self.begin() as conn:
            conn.execute(operators.update().where(operators.c.id == operator_id).values(values))

    def operator(self, operator_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(operators).where(operators.c.id == operator_id)).first()
        return dict(row._mapping) if row else None

    def operators(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(operators).order_by(operators.c.id))
            return [dict(r._mapping) for r in rows]

    def take_login_attempt(
        self, limits: list[tuple[str, int]], *, now: float, window_s: float
    ) -> bool:
        """Count one attempt against every (key, limit), all or none: False (nothing counted)
        when any key has had `limit` attempts in its window already.

        Check and count are one statement per key (INSERT .. ON CONFLICT DO UPDATE ..
        RETURNING): PostgreSQL holds the row lock to the commit and SQLite has one writer, so
        simultaneous logins, in one console process or several, cannot all pass the check
        before one is counted. Keys are locked in the caller's order (no deadlock).
        """
        t = login_throttle
        expired = t.c.since <= now - window_s
        stale = sa.select(t.c.key).where(expired).limit(100).with_for_update(skip_locked=True)
        try:
            with self.begin() as conn:
                conn.execute(t.delete().where(t.c.key.in_(stale.scalar_subquery())))
                for key, limit in limits:
                    stmt = self._insert(t).values(key=key, count=1, since=now)
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["key"],
                        set_={
                            "count": sa.case((expired, 1), else_=t.c.count + 1),
                            "since": sa.case((expired, now), else_=t.c.since),
                        },
                    ).returning(t.c.count)
                    if conn.execute(stmt).scalar_one() > limit:
                        raise _Refused
        except _Refused:
            return False
        return True

    def login_succeeded(self, *, refund: str, clear: str) -> None:
        """A good password: its attempt does not count against `refund` (the address) and
        the failures of `clear` (this operator from this address) are forgotten."""
        t = login_throttle
        with self.begin() as conn:
            conn.execute(
                t.update().where(t.c.key == refund, t.c.count > 0).values(count=t.c.count - 1)
            )
            conn.execute(t.delete().where(t.c.key == clear))


class _Refused(Exception):
    """Rolls back take_login_attempt's transaction."""
