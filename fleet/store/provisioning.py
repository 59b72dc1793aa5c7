"""Enrolment: claims and the certificates issued for them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fleet.store.base import StoreBase
from fleet.store.schema import certificates, claims, kiosks


class Provisioning(StoreBase):
    def add_claim(self, row: dict[str, Any]) -> None:
        with self.begin() as conn:
            conn.execute(claims.insert().values(row))

    def claim(self, claim_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(claims).where(claims.c.claim_id == claim_id)).first()
        return dict(row._mapping) if row else None

    def claims(self, *, limit: int = 100) -> list[dict[str, Any]]:
        query = sa.select(claims).order_by(claims.c.created_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def bind_claim(self, claim_id: str, used_by: str, *, now: float) -> bool:
        """Mark the claim used by this key, unless another key took it first.

        One conditional UPDATE: two requests racing with different keys cannot both win, on
        SQLite or PostgreSQL. True also when the claim is already bound to this very key.
        """
        with self.begin() as conn:
            conn.execute(
                claims.update()
                .where(claims.c.claim_id == claim_id, claims.c.used_by.is_(None))
                .values(used_by=used_by, used_at=now)
            )
            row = conn.execute(
                sa.select(claims.c.used_by).where(claims.c.claim_id == claim_id)
            ).first()
            return row is not None and row.used_by == used_by

    def claim_certificate(self, claim_id: str, certificate: str, serial: str) -> None:
        with self.begin() as conn:
            conn.execute(
                claims.update()
                .where(claims.c.claim_id == claim_id)
                .values(certificate=certificate, cert_serial=serial)
            )

    def claims_to_close(self, *, now: float) -> list[str]:
        """Claims whose broker account should go (docs/provisioning.md, 6): the kiosk has
        been heard on the mutual-TLS listener since it was enrolled, or the claim expired."""
        heard = (
            sa.select(kiosks.c.kiosk_id)
            .where(
                kiosks.c.kiosk_id == claims.c.kiosk_id,
                kiosks.c.last_seen > claims.c.used_at,
                kiosks.c.messages > 0,
            )
            .exists()
        )
        query = sa.select(claims.c.claim_id).where(
            claims.c.account_removed.is_(False),
            sa.or_(sa.and_(claims.c.certificate.is_not(None), heard), claims.c.expires_at <= now),
        )
        with self.engine.connect() as conn:
            return [r.claim_id for r in conn.execute(query)]

    def claim_account_removed(self, claim_id: str) -> None:
        with self.begin() as conn:
            conn.execute(
                claims.update().where(claims.c.claim_id == claim_id).values(account_removed=True)
            )

    def certificate_issued(
        self, *, serial: str, kiosk_id: str, site: str, not_after: float, now: float
    ) -> None:
        with self.begin() as conn:
            conn.execute(
                certificates.insert().values(
                    serial=serial, kiosk_id=kiosk_id, not_after=not_after, issued_at=now
                )
            )
            self._ensure_kiosk(conn, kiosk_id, now)
            values: dict[str, Any] = {"cert_not_after": not_after}
            if site:
                values.update(site=site[:128], site_fixed=True)
            conn.execute(kiosks.update().where(kiosks.c.kiosk_id == kiosk_id).values(values))
