"""Certification: requests, the gap-free book and its counters, decisions and their audit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fleet.store.base import StoreBase, _inserted
from fleet.store.schema import (
    cert_audit,
    cert_book,
    cert_counters,
    cert_deliveries,
    cert_requests,
    officers,
    revocations,
)

# Every column of a request but its (large, sealed) package: what queues and views read.
_REQUEST_HEAD = [c for c in cert_requests.c if c.name != "package"]
_BOOK_HEAD = [c for c in cert_book.c if c.name not in ("pdf", "thumbnail", "requester")]


# Channels that get a cert_deliveries row at approval ("kiosk": the kiosk prints the copy).
DELIVERY_CHANNELS = ("email", "ewallet", "post")


class DecisionError(ValueError):
    """A decision on a request that is not waiting (decided already, or unknown)."""


@dataclass(frozen=True)
class Signed:
    """What the signer made of an approved request, inside the book's transaction."""

    pdf: bytes
    sha256: str
    thumbnail: bytes | None = None


class Certify(StoreBase):
    # --- requests -------------------------------------------------------------------------

    def cert_add_request(self, row: dict[str, Any], *, package: bytes) -> bool:
        """Store a request once (its id is the kiosk's request code); False for a duplicate."""
        sealed = self.data_key.encrypt(package, aad=_aad("package", row["id"]))
        stmt = (
            self._insert(cert_requests)
            .values(**row, package=sealed, status="queued")
            .on_conflict_do_nothing(index_elements=["id"])
        )
        with self.begin() as conn:
            return _inserted(conn, stmt, cert_requests.c.id)

    def cert_waiting(self, agency: str) -> list[dict[str, Any]]:
        """Queued requests of an agency, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(*_REQUEST_HEAD)
                .where(cert_requests.c.agency == agency, cert_requests.c.status == "queued")
                .order_by(cert_requests.c.received_at, cert_requests.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def cert_position(self, request_id: str) -> int:
        """1 for the oldest waiting request of its agency; 0 when it is not waiting."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(cert_requests.c.agency, cert_requests.c.received_at).where(
                    cert_requests.c.id == request_id, cert_requests.c.status == "queued"
                )
            ).first()
            if row is None:
                return 0
            ahead = conn.execute(
                sa.select(sa.func.count()).where(
                    cert_requests.c.agency == row.agency,
                    cert_requests.c.status == "queued",
                    cert_requests.c.received_at <= row.received_at,
                )
            ).scalar_one()
            return int(ahead)

    def cert_request(self, request_id: str) -> dict[str, Any] | None:
        """The request's row with its package unsealed (bytes)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(cert_requests).where(cert_requests.c.id == request_id)
            ).first()
        if row is None:
            return None
        out = dict(row._mapping)
        out["package"] = self.data_key.decrypt(out["package"], aad=_aad("package", request_id))
        return out

    def cert_officer(self, username: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(officers).where(officers.c.username == username)).first()
            return dict(row._mapping) if row is not None else None

    # --- decisions ------------------------------------------------------------------------

    def cert_approve(
        self,
        request_id: str,
        *,
        year: int,
        book: Callable[[int], str],
        officer: dict[str, Any],
        fee_vnd: int,
        requester: str,
        now: float,
        remote_addr: str,
        sign: Callable[[int, str], Signed],
        delivery: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Approve: the next number of the agency's book for `year`, the signed copy, the book
        row, the request's status, the audit line and the delivery (the package's
        {channel, address}: email is queued "pending", ewallet and post "unsupported", kiosk
        nothing) in one transaction. `sign(number, book)`
        runs inside it: if it raises, or the process dies, nothing of this is committed.

        The counter row is locked first (its INSERT .. ON CONFLICT DO NOTHING is the first
        statement: on SQLite that takes the database's write lock, on PostgreSQL it makes the
        row that SELECT .. FOR UPDATE then locks), so approvals of one agency queue behind
        each other and each sees the number the one before committed."""
        with self.engine.connect() as conn:  # an agency never changes: read before the lock
            agency = conn.execute(
                sa.select(cert_requests.c.agency).where(cert_requests.c.id == request_id)
            ).scalar()
        if agency is None:
            raise DecisionError("no such request")
        with self.begin() as conn:
            conn.execute(
                self._insert(cert_counters)
                .values(agency=agency, year=year, last_number=0)
                .on_conflict_do_nothing(index_elements=["agency", "year"])
            )
            last = conn.execute(
                sa.select(cert_counters.c.last_number)
                .where(cert_counters.c.agency == agency, cert_counters.c.year == year)
                .with_for_update()
            ).scalar_one()
            req = self._locked_request(conn, request_id)  # again, now that we hold the book
            number = int(last) + 1
            label = book(number)
            made = sign(number, label)
            entry = dict(
                agency=agency,
                year=year,
                number=number,
                book=label,
                request_id=request_id,
                copy_code=request_id,  # the kiosk's request code, unique already
                certified_at=now,
                officer=officer["username"],
                officer_name=officer["full_name"],
                officer_title=officer["title"],
                doc_type=req["doc_type"],
                pages=req["pages"],
                fee_vnd=fee_vnd,
                pdf_sha256=made.sha256,
            )
            conn.execute(
                cert_book.insert().values(
                    **entry,
                    requester=self.data_key.encrypt(
                        requester.encode(), aad=_aad("requester", request_id)
                    ),
                    pdf=self.data_key.encrypt(made.pdf, aad=_aad("pdf", request_id)),
                    thumbnail=made.thumbnail,
                )
            )
            conn.execute(
                cert_counters.update()
                .where(cert_counters.c.agency == agency, cert_counters.c.year == year)
                .values(last_number=number)
            )
            done = conn.execute(
                cert_requests.update()
                .where(cert_requests.c.id == request_id, cert_requests.c.status == "queued")
                .values(
                    status="approved",
                    decided_at=now,
                    officer=officer["username"],
                    copy_code=request_id,
                )
            )
            if done.rowcount != 1:
                raise DecisionError("request decided meanwhile")
            self._audit(
                conn,
                at=now,
                officer=officer["username"],
                action="approve",
                request_id=request_id,
                remote_addr=remote_addr,
                detail={"number": number, "book": label, "year": year},
            )
            channel = (delivery or {}).get("channel")
            if channel in DELIVERY_CHANNELS:
                address = str((delivery or {}).get("address") or "")
                conn.execute(
                    cert_deliveries.insert().values(
                        request_id=request_id,
                        channel=channel,
                        address=self.data_key.encrypt(
                            address.encode(), aad=_aad("address", request_id)
                        ),
                        status="pending" if channel == "email" else "unsupported",
                        tries=0,
                        next_try_at=now,
                    )
                )
        return entry

    # --- deliveries -----------------------------------------------------------------------

    def cert_deliveries_due(self, now: float, limit: int = 20) -> list[dict[str, Any]]:
        """Pending deliveries whose time has come, oldest first, with the address unsealed."""
        with self.engine.connect() as conn:
            rows = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.select(cert_deliveries)
                    .where(
                        cert_deliveries.c.status == "pending",
                        cert_deliveries.c.next_try_at <= now,
                    )
                    .order_by(cert_deliveries.c.next_try_at)
                    .limit(limit)
                )
            ]
        for r in rows:
            r["address"] = self.data_key.decrypt(
                r["address"], aad=_aad("address", r["request_id"])
            ).decode()
        return rows

    def cert_delivery(self, request_id: str) -> dict[str, Any] | None:
        """A delivery's row without its address (staff lists, tests)."""
        cols = [c for c in cert_deliveries.c if c.name != "address"]
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(*cols).where(cert_deliveries.c.request_id == request_id)
            ).first()
        return dict(row._mapping) if row is not None else None

    def cert_delivery_done(
        self,
        request_id: str,
        *,
        status: str,
        tries: int,
        next_try_at: float,
        error: str | None = None,
        sent_at: float | None = None,
    ) -> None:
        """Record one try of a pending delivery: sent, retried later (pending) or failed."""
        with self.begin() as conn:
            conn.execute(
                cert_deliveries.update()
                .where(
                    cert_deliveries.c.request_id == request_id,
                    cert_deliveries.c.status == "pending",
                )
                .values(
                    status=status,
                    tries=tries,
                    next_try_at=next_try_at,
                    last_error=error and error[:200],
                    sent_at=sent_at,
                )
            )

    def cert_decide(
        self,
        request_id: str,
        *,
        status: str,
        officer: str,
        now: float,
        remote_addr: str,
        reason_code: str | None = None,
        reason_text: str | None = None,
    ) -> dict[str, Any]:
        """Refuse or send to staff: no number is taken. Returns the request's head row."""
        if status not in ("refused", "see_staff"):
            raise ValueError(f"not a decision without a number: {status}")
        with self.begin() as conn:
            done = conn.execute(  # a write first: SQLite's write lock before any read
                cert_requests.update()
                .where(cert_requests.c.id == request_id, cert_requests.c.status == "queued")
                .values(
                    status=status,
                    decided_at=now,
                    officer=officer,
                    reason_code=reason_code,
                    reason_text=(reason_text or None) and reason_text[:500],
                )
            )
            if done.rowcount != 1:
                raise DecisionError("no such request, or decided already")
            self._audit(
                conn,
                at=now,
                officer=officer,
                action="refuse" if status == "refused" else "see_staff",
                request_id=request_id,
                remote_addr=remote_addr,
                detail={"reason_code": reason_code} if reason_code else {},
            )
            row = conn.execute(
                sa.select(*_REQUEST_HEAD).where(cert_requests.c.id == request_id)
            ).one()
        return dict(row._mapping)

    def _locked_request(self, conn: Connection, request_id: str) -> dict[str, Any]:
        row = conn.execute(
            sa.select(*_REQUEST_HEAD).where(cert_requests.c.id == request_id).with_for_update()
        ).first()
        if row is None:
            raise DecisionError("no such request")
        if row.status != "queued":
            raise DecisionError(f"request is {row.status} already")
        return dict(row._mapping)

    def _audit(self, conn: Connection, **values: Any) -> None:
        conn.execute(cert_audit.insert().values(**values))

    def cert_audit_add(
        self,
        *,
        officer: str,
        action: str,
        now: float,
        remote_addr: str = "",
        request_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        with self.begin() as conn:
            self._audit(
                conn,
                at=now,
                officer=officer,
                action=action,
                request_id=request_id,
                remote_addr=remote_addr,
                detail=detail or {},
            )

    def cert_audit(self, *, request_id: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(cert_audit).order_by(cert_audit.c.row)
        if request_id is not None:
            q = q.where(cert_audit.c.request_id == request_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    # --- the book -------------------------------------------------------------------------

    def cert_book(
        self,
        agency: str,
        year: int,
        *,
        since: float | None = None,
        until: float | None = None,
        requesters: bool = False,
    ) -> list[dict[str, Any]]:
        """Book rows by number (certified_at in [since, until)); with `requesters`, each
        with its citizen's name unsealed as "requester"."""
        cols = [*_BOOK_HEAD, cert_book.c.requester] if requesters else _BOOK_HEAD
        q = (
            sa.select(*cols)
            .where(cert_book.c.agency == agency, cert_book.c.year == year)
            .order_by(cert_book.c.number)
        )
        if since is not None:
            q = q.where(cert_book.c.certified_at >= since)
        if until is not None:
            q = q.where(cert_book.c.certified_at < until)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        if requesters:
            for r in rows:
                sealed = r["requester"]
                r["requester"] = (
                    self.data_key.decrypt(sealed, aad=_aad("requester", r["request_id"])).decode()
                    if sealed
                    else ""
                )
        return rows

    def cert_counter(self, agency: str, year: int) -> int:
        with self.engine.connect() as conn:
            last = conn.execute(
                sa.select(cert_counters.c.last_number).where(
                    cert_counters.c.agency == agency, cert_counters.c.year == year
                )
            ).scalar()
            return int(last or 0)

    def cert_copy(self, code: str) -> dict[str, Any] | None:
        """What /v/<code> shows: the book row (with thumbnail and the signed PDF) or, for a
        request not approved, its head row; "revoked" when the code is on the revocation list."""
        with self.engine.connect() as conn:
            book = conn.execute(sa.select(cert_book).where(cert_book.c.copy_code == code)).first()
            req = conn.execute(sa.select(*_REQUEST_HEAD).where(cert_requests.c.id == code)).first()
            revoked = conn.execute(
                sa.select(revocations.c.revoked_at).where(revocations.c.code == code)
            ).first()
        if book is None and req is None:
            return None
        out: dict[str, Any] = {"request": dict(req._mapping) if req is not None else None}
        if book is not None:
            b = dict(book._mapping)
            b["pdf"] = self.data_key.decrypt(b["pdf"], aad=_aad("pdf", b["request_id"]))
            b.pop("requester", None)
            out["book"] = b
        out["revoked_at"] = (
            revoked.revoked_at if revoked is not None else (out.get("book") or {}).get("revoked_at")
        )
        return out


def _aad(what: str, request_id: str) -> bytes:
    return f"cert-{what}:{request_id}".encode()
