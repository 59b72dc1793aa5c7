"""Certifying officers and centre admins of the workstation, and its audit log (issue 16)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fleet.store.base import StoreBase
from fleet.store.schema import cert_audit, officers


def _totp_aad(username: str) -> bytes:
    return f"officer-totp:{username}".encode()


class Officers(StoreBase):
    def add_officer(self, row: dict[str, Any], *, totp_secret: str) -> None:
        """A new officer; the TOTP secret is sealed with the store's data key."""
        sealed = self.data_key.encrypt(totp_secret.encode(), aad=_totp_aad(row["username"]))
        with self.begin() as conn:
            conn.execute(officers.insert().values({**row, "totp_secret": sealed}))

    def officer(self, username: str) -> dict[str, Any] | None:
        """The officer's row without the sealed TOTP secret (totp_secret() reads that)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(officers).where(officers.c.username == username)).first()
        if row is None:
            return None
        data = dict(row._mapping)
        data.pop("totp_secret")
        return data

    def officers(self, agency: str | None = None) -> list[dict[str, Any]]:
        cols = [c for c in officers.c if c.name != "totp_secret"]
        query = sa.select(*cols).order_by(officers.c.agency, officers.c.username)
        if agency is not None:
            query = query.where(officers.c.agency == agency)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def totp_secret(self, username: str) -> str | None:
        with self.engine.connect() as conn:
            sealed = conn.execute(
                sa.select(officers.c.totp_secret).where(officers.c.username == username)
            ).scalar_one_or_none()
        if sealed is None:
            return None
        return self.data_key.decrypt(sealed, aad=_totp_aad(username)).decode()

    def update_officer(self, username: str, **values: Any) -> bool:
        with self.begin() as conn:
            done = conn.execute(
                officers.update().where(officers.c.username == username).values(values)
            )
        return bool(done.rowcount)

    def officer_failed_login(
        self, username: str, *, now: float, limit: int, lockout_s: float
    ) -> int:
        """Count a failed login (one statement, so simultaneous failures all count); the
        `limit`-th failure in a row locks the account for lockout_s. Returns the count."""
        o = officers
        with self.begin() as conn:
            count = conn.execute(
                o.update()
                .where(o.c.username == username)
                .values(failed_logins=o.c.failed_logins + 1)
                .returning(o.c.failed_logins)
            ).scalar_one_or_none()
            if count is not None and count >= limit:
                conn.execute(
                    o.update()
                    .where(o.c.username == username)
                    .values(locked_until=now + lockout_s, failed_logins=0)
                )
        return count or 0

    def officer_logged_in(self, username: str, *, step: int) -> bool:
        """Take TOTP time step `step` for this officer and clear the failures: False (nothing
        changed) when this or a later step was used already, so a code is good once
        (RFC 6238 5.2) even for two logins at the same instant."""
        o = officers
        with self.begin() as conn:
            taken = conn.execute(
                o.update()
                .where(
                    o.c.username == username,
                    sa.or_(o.c.last_totp_step.is_(None), o.c.last_totp_step < step),
                )
                .values(last_totp_step=step, failed_logins=0, locked_until=None)
                .returning(o.c.username)
            ).first()
        return taken is not None

    def audit(
        self,
        officer: str,
        action: str,
        *,
        at: float,
        remote_addr: str = "",
        request_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """One line of the workstation's audit log. `detail` holds no personal data."""
        with self.begin() as conn:
            conn.execute(
                cert_audit.insert().values(
                    at=at,
                    officer=officer,
                    action=action,
                    request_id=request_id,
                    remote_addr=remote_addr[:64],
                    detail=detail or {},
                )
            )

    def audit_log(
        self, *, agency: str | None = None, limit: int = 500, since: float | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; with `agency`, the lines of that agency's officers (and of attempts
        at their usernames)."""
        a = cert_audit
        query = sa.select(a).order_by(a.c.at.desc(), a.c.row.desc()).limit(limit)
        if agency is not None:
            members = sa.select(officers.c.username).where(officers.c.agency == agency)
            query = query.where(a.c.officer.in_(members.scalar_subquery()))
        if since is not None:
            query = query.where(a.c.at >= since)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
