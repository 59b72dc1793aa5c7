"""The kiosk's payment ledger (docs/payments.md, "At the kiosk").

One row per payment reference: the fee asked under it, the payer's name sealed (AES-GCM, the
kiosk's data key) until a receipt is queued or the request expired, and how the payment was
confirmed: central's bank confirmation (edge/adapters/payment_central.py), cash confirmed by a
named staff account at the counter, or a waiver by a support rule. Each confirmation queues its
fee receipt (records/fee-receipt, protocol/schemas/fee-receipt-record.json) in the same store
transaction, so a duplicate confirmation, a crash or a restart can never make two receipts or
none. Receipt numbers are <kiosk id>-<yyyymmdd>-<sequence of the day>, the sequence kept in the
store (receipt_days).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from edge.fee_rules import COPY_FROM_ORIGINAL
from edge.fees import Fee
from edge.fleet.messages import record_payload
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from protocol.schemas import validator

logger = logging.getLogger(__name__)

REQUEST_TTL_S = 30 * 60.0  # a payment request lives as long as a citizen's session may
METHODS = ("bank_transfer", "cash", "waived")


@dataclass(frozen=True, slots=True)
class Confirmation:
    """How the payment under a reference was confirmed (no personal data)."""

    reference: str
    amount_vnd: int
    method: str  # bank_transfer | cash | waived
    bank_reference: str
    staff: str
    paid_at: str
    confirmed_at: str
    receipt: str  # the fee receipt's number, "" when none could be made (no payer known)


@dataclass(frozen=True, slots=True)
class Asked:
    """A payment the kiosk asked for under a reference."""

    reference: str
    amount_vnd: int
    fee: dict[str, Any]
    created_at: float
    expires_at: float
    requested: bool


def now_iso(at: float | None = None) -> str:
    when = dt.datetime.fromtimestamp(time.time() if at is None else at, dt.UTC)
    return when.replace(microsecond=0).isoformat()


def fee_data(fee: Fee, procedure: str = COPY_FROM_ORIGINAL) -> dict[str, Any]:
    """What a receipt needs of the fee (no personal data)."""
    return {
        "pages": fee.pages,
        "fee_vnd": fee.fee_vnd,
        "payable_vnd": fee.payable_vnd,
        "name": fee.name_vi,
        "kind": fee.kind,
        "rule_id": fee.rule_id,
        "basis": fee.basis_vi,
        "support_id": fee.support_id,
        "support_basis": fee.support_basis_vi,
        "procedure": procedure,
    }


class Payments:
    """The ledger. Thread-safe (the store's lock): the web UI and the fleet thread use it."""

    def __init__(
        self,
        store: Store,
        key: DataKey,
        outbox: Outbox,
        kiosk_id: str,
        *,
        timezone: str = "Asia/Ho_Chi_Minh",
        on_queued: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        ttl_s: float = REQUEST_TTL_S,
    ) -> None:
        self.store = store
        self.key = key
        self.outbox = outbox
        self.kiosk_id = kiosk_id
        self.zone = ZoneInfo(timezone)
        self.on_queued = on_queued
        self.clock = clock
        self.ttl_s = ttl_s
        self._receipt = validator("fee-receipt-record")

    # --- asking ---------------------------------------------------------------------------

    def open(self, reference: str, fee: Fee, payer_name: str) -> bool:
        """A payable fee under this reference for this citizen, remembered so that its
        confirmation, whenever it comes, makes the receipt. False when the reference was asked
        for another amount: one reference, one amount (the caller takes a new reference)."""
        now = self.clock()
        payer = self._seal(reference, payer_name)
        with self.store.transaction() as conn:
            self._purge(conn, now)
            row = conn.execute(
                "SELECT amount_vnd FROM payments WHERE reference = ?", (reference,)
            ).fetchone()
            if row is not None:
                return bool(row[0] == fee.payable_vnd)
            conn.execute(
                "INSERT INTO payments(reference, amount_vnd, fee, payer, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    reference,
                    fee.payable_vnd,
                    json.dumps(fee_data(fee)),
                    payer,
                    now,
                    now + self.ttl_s,
                ),
            )
        return True

    def asked(self, reference: str) -> Asked | None:
        rows = self.store.query(
            "SELECT amount_vnd, fee, created_at, expires_at, requested FROM payments "
            "WHERE reference = ?",
            (reference,),
        )
        if not rows:
            return None
        r = rows[0]
        return Asked(
            reference,
            r["amount_vnd"],
            json.loads(r["fee"]),
            r["created_at"],
            r["expires_at"],
            bool(r["requested"]),
        )

    def queue_request(self, reference: str, data: dict[str, Any]) -> bool:
        """Queue the payment-request record for this reference, once: whether it was queued now."""
        with self.store.transaction() as conn:
            done = conn.execute(
                "UPDATE payments SET requested = 1 WHERE reference = ? AND requested = 0",
                (reference,),
            ).rowcount
            if not done:
                return False
            payload = record_payload(self.kiosk_id, "payment-request", data)
            self.outbox.add_in(
                conn, "record", "records/payment-request", payload, message_id=f"payreq-{reference}"
            )
        logger.info("payment request queued", extra={"reference": reference})
        self._queued()
        return True

    # --- confirming -----------------------------------------------------------------------

    def confirm(
        self,
        reference: str,
        *,
        method: str,
        amount_vnd: int,
        bank_reference: str = "",
        staff: str = "",
        paid_at: str = "",
        confirmed_at: str = "",
    ) -> bool:
        """Record how the payment under reference was confirmed and queue its receipt, once.
        False (and one log line) for an unknown reference, another amount, or a reference
        already confirmed (a duplicate)."""
        if method not in ("bank_transfer", "cash"):
            raise ValueError(method)
        now = self.clock()
        confirmed_at = confirmed_at or now_iso(now)
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT amount_vnd, fee, payer, method FROM payments WHERE reference = ?",
                (reference,),
            ).fetchone()
            why = (
                "unknown reference"
                if row is None
                else "other amount"
                if row["amount_vnd"] != amount_vnd
                else "already confirmed"
                if row["method"] is not None
                else ""
            )
            if why:
                logger.warning(
                    "payment confirmation ignored: %s",
                    why,
                    extra={"reference": reference[:8], "method": method},
                )
                return False
            conn.execute(
                "UPDATE payments SET method = ?, bank_reference = ?, staff = ?, paid_at = ?, "
                "confirmed_at = ? WHERE reference = ?",
                (method, bank_reference or None, staff or None, paid_at or None, confirmed_at,
                 reference),
            )  # fmt: skip
            extra = {"bank_reference": bank_reference} if bank_reference else {"staff": staff}
            number = self._receipt_in(
                conn,
                reference,
                fee=json.loads(row["fee"]),
                payer=row["payer"],
                method=method,
                amount_vnd=amount_vnd,
                collected_at=paid_at or confirmed_at,
                extra=extra,
            )
        logger.info(
            "payment confirmed",
            extra={"reference": reference, "method": method, "receipt": number or "none"},
        )
        self._queued()
        return True

    def waive(self, reference: str, fee: Fee, payer_name: str, *, copy_code: str = "") -> str:
        """A fee the rules waived: its receipt (method waived, amount 0), queued once per
        reference; the receipt's number ("" when none could be made)."""
        now = self.clock()
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT receipt, method FROM payments WHERE reference = ?", (reference,)
            ).fetchone()
            if row is not None:
                return str(row["receipt"] or "")
            data = fee_data(fee)
            conn.execute(
                "INSERT INTO payments(reference, amount_vnd, fee, created_at, expires_at, method, "
                "confirmed_at) VALUES (?, 0, ?, ?, ?, 'waived', ?)",
                (reference, json.dumps(data), now, now, now_iso(now)),
            )
            extra = {"copy_code": copy_code[:80]} if copy_code else {}
            number = self._receipt_in(
                conn,
                reference,
                fee=data,
                payer=self._seal(reference, payer_name),
                method="waived",
                amount_vnd=0,
                collected_at=now_iso(now),
                extra=extra,
            )
        logger.info("fee waived", extra={"reference": reference, "receipt": number or "none"})
        self._queued()
        return number

    def confirmation(self, reference: str) -> Confirmation | None:
        rows = self.store.query(
            "SELECT amount_vnd, method, bank_reference, staff, paid_at, confirmed_at, receipt "
            "FROM payments WHERE reference = ? AND method IS NOT NULL",
            (reference,),
        )
        if not rows:
            return None
        r = rows[0]
        return Confirmation(
            reference,
            r["amount_vnd"],
            r["method"],
            r["bank_reference"] or "",
            r["staff"] or "",
            r["paid_at"] or "",
            r["confirmed_at"] or "",
            r["receipt"] or "",
        )

    # --- inside ---------------------------------------------------------------------------

    def _receipt_in(
        self,
        conn: sqlite3.Connection,
        reference: str,
        *,
        fee: dict[str, Any],
        payer: bytes | None,
        method: str,
        amount_vnd: int,
        collected_at: str,
        extra: dict[str, str],
    ) -> str:
        """Number and queue the receipt inside the caller's transaction; the payer's sealed
        name goes from the ledger. "" when no payer is known (one log line: central still has
        the payment request and, for a transfer, the bank's notification)."""
        name = self.key.decrypt(payer, aad=reference.encode()).decode() if payer else ""
        if not name.strip():
            logger.warning("no payer known: no fee receipt", extra={"reference": reference})
            return ""
        day = dt.datetime.fromtimestamp(self.clock(), self.zone).strftime("%Y%m%d")
        seq = conn.execute(
            "INSERT INTO receipt_days(day, seq) VALUES (?, 1) "
            "ON CONFLICT(day) DO UPDATE SET seq = seq + 1 RETURNING seq",
            (day,),
        ).fetchone()[0]
        number = f"{self.kiosk_id.upper()}-{day}-{seq:04d}"
        data: dict[str, Any] = {
            "number": number,
            "reference": reference,
            "method": method,
            "amount_vnd": amount_vnd,
            "fee_vnd": fee["fee_vnd"],
            "fee_name": fee["name"],
            "kind": fee["kind"],
            "rule_id": fee["rule_id"],
            "legal_basis": fee["basis"],
            "payer_name": name.strip()[:100],
            "procedure": fee["procedure"],
            "pages": min(max(1, fee["pages"]), 200),
            "collected_at": collected_at,
            **extra,
        }
        if fee.get("support_id"):
            data["support_id"] = fee["support_id"]
            data["support_basis"] = fee["support_basis"][:300]
        errors = sorted(self._receipt.iter_errors(data), key=str)
        if errors:  # a bug or a bad fee rule: nothing half-made is queued
            raise ValueError(f"fee receipt breaks its schema: {errors[0].message[:200]}")
        payload = record_payload(self.kiosk_id, "fee-receipt", data)
        self.outbox.add_in(
            conn, "record", "records/fee-receipt", payload, message_id=f"receipt-{number}"
        )
        conn.execute(
            "UPDATE payments SET receipt = ?, payer = NULL WHERE reference = ?", (number, reference)
        )
        return number

    def _seal(self, reference: str, name: str) -> bytes | None:
        if not name.strip():
            return None
        return self.key.encrypt(name.strip().encode(), aad=reference.encode())

    def _purge(self, conn: sqlite3.Connection, now: float) -> None:
        """Payers of requests that expired unpaid go (personal data kept no longer)."""
        conn.execute(
            "UPDATE payments SET payer = NULL WHERE payer IS NOT NULL AND method IS NULL "
            "AND expires_at < ?",
            (now - self.ttl_s,),  # a transfer made at the last minute may still be confirmed
        )

    def _queued(self) -> None:
        if self.on_queued is not None:
            self.on_queued()
