"""Payments at central: the kiosks' payment requests, the bank's notifications matched against
them, and the fee receipts (docs/payments.md).

A request and a notification meet in one transaction whichever arrives first: the notification's
transaction looks for its request, the request's transaction looks for notifications that came
before it. On PostgreSQL both take the same advisory lock, so neither misses the other; SQLite
has one writer anyway (StoreBase.begin)."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fleet.store.base import StoreBase
from fleet.store.schema import bank_notifications, fee_receipts, payment_requests

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
_LOCK_KEY = 0x7061796D74  # "paymt": serialises matching on PostgreSQL
_HEX8 = re.compile(r"(?=([0-9A-F]{8}))")

# What a notification that is not confirmed is kept as (docs/payments.md, "Needing attention").
ATTENTION = ("unmatched", "wrong_amount", "wrong_account", "late", "already_paid", "not_paid")


@dataclass(frozen=True)
class Notification:
    """A verified bank notification, as far as matching goes; `data` is sealed as it came."""

    bank_reference: str
    amount_vnd: int
    account: str
    content: str  # the transfer text the bank passed on
    paid_at: float | None  # the bank's transaction time
    paid: bool  # the bank says the transfer succeeded
    data: dict[str, Any]
    provider: str = "payos"


@dataclass(frozen=True)
class Outcome:
    """What storing a notification or a request came to: `send` is the payment-confirmation
    to publish to `kiosk_id` (None: nothing to send)."""

    status: str  # a notification's status, "duplicate", or for a request "stored"/"conflict"
    kiosk_id: str | None = None
    send: dict[str, Any] | None = None


def candidates(content: str) -> set[str]:
    """Every 8-hex-digit run in the transfer text, upper-cased and without spaces or marks (banks
    upper-case, strip spaces and add their own text)."""
    squeezed = re.sub(r"[^0-9A-Z]", "", content.upper())
    return set(_HEX8.findall(squeezed))


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def vn_day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, ZONE).date().isoformat()


def verdict(request: dict[str, Any], n: Notification, now: float) -> str:
    """A notification against the request whose reference its text carries."""
    if not n.paid:
        return "not_paid"
    if request["status"] == "confirmed":
        return "already_paid"  # a second transfer for one reference: to refund
    if n.account != request["account"]:
        return "wrong_account"
    if n.amount_vnd != request["amount_vnd"]:
        return "wrong_amount"
    if (n.paid_at if n.paid_at is not None else now) > request["expires_at"]:
        return "late"
    return "confirmed"


class Payments(StoreBase):
    # --- the matching -------------------------------------------------------------------------

    def _serialise(self, conn: Connection) -> None:
        if self.dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})

    def _confirm(
        self, conn: Connection, request: dict[str, Any], n: Notification, now: float
    ) -> dict[str, Any]:
        message = {
            "schema": "payment-confirmation/1",
            "reference": request["reference"],
            "amount_vnd": request["amount_vnd"],
            "method": "bank_transfer",
            "bank_reference": n.bank_reference,
            "paid_at": iso(n.paid_at if n.paid_at is not None else now),
            "confirmed_at": iso(now),
        }
        conn.execute(
            payment_requests.update()
            .where(payment_requests.c.reference == request["reference"])
            .values(
                status="confirmed",
                bank_reference=n.bank_reference,
                confirmation=message,
                confirmed_at=now,
            )
        )
        request.update(status="confirmed")
        return message

    def add_bank_notification(self, n: Notification, *, now: float) -> Outcome:
        """Store a verified notification once (its bank reference) and match it; a duplicate
        changes nothing."""
        sealed = self.data_key.encrypt(
            json.dumps(n.data, ensure_ascii=False, sort_keys=True).encode(),
            aad=f"bank-notification|{n.bank_reference}".encode(),
        )
        with self.begin() as conn:
            self._serialise(conn)
            stmt = (
                self._insert(bank_notifications)
                .values(
                    bank_reference=n.bank_reference,
                    provider=n.provider,
                    received_at=now,
                    paid_at=n.paid_at,
                    amount_vnd=n.amount_vnd,
                    account=n.account[:32],
                    status="unmatched",
                    sealed=sealed,
                )
                .on_conflict_do_nothing(index_elements=["bank_reference"])
                .returning(bank_notifications.c.bank_reference)
            )
            if conn.execute(stmt).first() is None:
                return Outcome("duplicate")
            refs = candidates(n.content)
            rows = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.select(payment_requests).where(payment_requests.c.reference.in_(refs))
                )
            ]
            if not rows or not n.paid:
                status = "unmatched" if n.paid else "not_paid"
                if status != "unmatched":
                    conn.execute(
                        bank_notifications.update()
                        .where(bank_notifications.c.bank_reference == n.bank_reference)
                        .values(status=status)
                    )
                return Outcome(status)
            # Several requests in one text (unlikely): the one it pays, else the first.
            rows.sort(key=lambda r: (verdict(r, n, now) != "confirmed", r["reference"]))
            request = rows[0]
            status = verdict(request, n, now)
            send = self._confirm(conn, request, n, now) if status == "confirmed" else None
            conn.execute(
                bank_notifications.update()
                .where(bank_notifications.c.bank_reference == n.bank_reference)
                .values(status=status, reference=request["reference"], kiosk_id=request["kiosk_id"])
            )
            return Outcome(status, request["kiosk_id"], send)

    def add_payment_request(
        self, kiosk_id: str, record_id: str, data: dict[str, Any], *, now: float
    ) -> Outcome:
        """Keep a kiosk's payment request (once: its reference); match notifications that came
        before it. A request already confirmed answers with the same confirmation again (the
        kiosk replays its record when it did not get it)."""
        reference = data["reference"]
        row = dict(
            reference=reference,
            kiosk_id=kiosk_id,
            record_id=record_id,
            amount_vnd=data["amount_vnd"],
            bank_bin=data["bank_bin"],
            account=data["account"],
            fee_name=data["fee_name"],
            procedure=data["procedure"],
            created_at=_time(data["created_at"]),
            expires_at=_time(data["expires_at"]),
            received_at=now,
            status="pending",
        )
        with self.begin() as conn:
            self._serialise(conn)
            conn.execute(
                self._insert(payment_requests)
                .values(**row)
                .on_conflict_do_nothing(index_elements=["reference"])
            )
            found = conn.execute(
                sa.select(payment_requests).where(payment_requests.c.reference == reference)
            ).first()
            assert found is not None
            request = dict(found._mapping)
            if request["kiosk_id"] != kiosk_id or request["record_id"] != record_id:
                return Outcome("conflict", request["kiosk_id"])  # one reference, one request
            if request["status"] == "confirmed":
                return Outcome("confirmed", kiosk_id, request["confirmation"])
            send = None
            waiting = conn.execute(
                sa.select(bank_notifications)
                .where(bank_notifications.c.status == "unmatched")
                .order_by(bank_notifications.c.received_at)
            ).all()
            for w in waiting:
                n = self._unseal_notification(w._mapping)
                if reference not in candidates(n.content):
                    continue
                status = verdict(request, n, now)
                if status == "confirmed":
                    send = self._confirm(conn, request, n, now)
                conn.execute(
                    bank_notifications.update()
                    .where(bank_notifications.c.bank_reference == n.bank_reference)
                    .values(status=status, reference=reference, kiosk_id=kiosk_id)
                )
            return Outcome("confirmed" if send else "stored", kiosk_id, send)

    def _unseal_notification(self, row: Any) -> Notification:
        data = json.loads(
            self.data_key.decrypt(
                row["sealed"], aad=f"bank-notification|{row['bank_reference']}".encode()
            )
        )
        return Notification(
            bank_reference=row["bank_reference"],
            amount_vnd=row["amount_vnd"],
            account=row["account"],
            content=str(data.get("description") or ""),
            paid_at=row["paid_at"],
            paid=True,  # only a notification the bank says succeeded waits as unmatched
            data=data,
            provider=row["provider"],
        )

    # --- what the console shows ---------------------------------------------------------------

    def payment_request(self, reference: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(payment_requests).where(payment_requests.c.reference == reference)
            ).first()
        return dict(row._mapping) if row else None

    def bank_notifications(
        self, *, attention: bool = False, limit: int = 300
    ) -> list[dict[str, Any]]:
        """Newest first, without the sealed data (payer's account and name)."""
        columns = [c for c in bank_notifications.c if c.name != "sealed"]
        query = sa.select(*columns).order_by(bank_notifications.c.received_at.desc()).limit(limit)
        if attention:
            query = query.where(bank_notifications.c.status.in_(ATTENTION))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def bank_notification_data(self, bank_reference: str) -> dict[str, Any] | None:
        """The notification's sealed data (for a refund: the payer's account)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(bank_notifications).where(
                    bank_notifications.c.bank_reference == bank_reference
                )
            ).first()
        return self._unseal_notification(row._mapping).data if row else None

    # --- fee receipts ---------------------------------------------------------------------------

    def add_fee_receipt(
        self, kiosk_id: str, record_id: str, data: dict[str, Any], *, now: float
    ) -> bool:
        """Keep one receipt (once: its number); the payer's name sealed. True if new."""
        number = data["number"]
        collected = _time(data["collected_at"])
        payer = self.data_key.encrypt(
            data["payer_name"].encode(), aad=f"fee-receipt|{number}".encode()
        )
        stmt = (
            self._insert(fee_receipts)
            .values(
                number=number,
                kiosk_id=kiosk_id,
                record_id=record_id,
                day=vn_day(collected),
                collected_at=collected,
                received_at=now,
                reference=data["reference"],
                method=data["method"],
                amount_vnd=data["amount_vnd"],
                fee_vnd=data["fee_vnd"],
                fee_name=data["fee_name"],
                kind=data["kind"],
                rule_id=data["rule_id"],
                legal_basis=data["legal_basis"],
                support_id=data.get("support_id"),
                procedure=data["procedure"],
                pages=data.get("pages"),
                bank_reference=data.get("bank_reference"),
                staff=data.get("staff"),
                copy_code=data.get("copy_code"),
                payer=payer,
            )
            .on_conflict_do_nothing(index_elements=["number"])
            .returning(fee_receipts.c.number)
        )
        with self.begin() as conn:
            return conn.execute(stmt).first() is not None

    def fee_receipts(
        self, *, day: str | None = None, kiosk_id: str | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Newest first, without the payer's name."""
        columns = [c for c in fee_receipts.c if c.name != "payer"]
        query = sa.select(*columns).order_by(fee_receipts.c.collected_at.desc()).limit(limit)
        if day:
            query = query.where(fee_receipts.c.day == day)
        if kiosk_id:
            query = query.where(fee_receipts.c.kiosk_id == kiosk_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def fee_receipt_payer(self, number: str) -> str | None:
        with self.engine.connect() as conn:
            sealed = conn.execute(
                sa.select(fee_receipts.c.payer).where(fee_receipts.c.number == number)
            ).scalar()
        if sealed is None:
            return None
        return self.data_key.decrypt(sealed, aad=f"fee-receipt|{number}".encode()).decode()

    def fee_receipt_totals(self, *, day: str | None = None) -> list[dict[str, Any]]:
        """Per day and kiosk: receipts and the amount collected by method."""
        t = fee_receipts.c
        query = (
            sa.select(
                t.day,
                t.kiosk_id,
                t.method,
                sa.func.count().label("receipts"),
                sa.func.sum(t.amount_vnd).label("amount_vnd"),
            )
            .group_by(t.day, t.kiosk_id, t.method)
            .order_by(t.day.desc(), t.kiosk_id)
        )
        if day:
            query = query.where(t.day == day)
        out: dict[tuple[str, str], dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(query):
                row = out.setdefault(
                    (r.day, r.kiosk_id),
                    {
                        "day": r.day,
                        "kiosk_id": r.kiosk_id,
                        "receipts": 0,
                        "amount_vnd": 0,
                        "bank_transfer": 0,
                        "cash": 0,
                        "waived": 0,
                    },
                )
                row["receipts"] += int(r.receipts)
                row["amount_vnd"] += int(r.amount_vnd or 0)
                if r.method in ("bank_transfer", "cash"):
                    row[r.method] += int(r.amount_vnd or 0)
                else:
                    row["waived"] += int(r.receipts)
        return list(out.values())


def _time(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
