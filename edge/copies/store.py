"""Issued copies at rest: PDF and citizen data sealed (AES-GCM), listed by code, purged later.

A copy is purged once central has stored it (central's record-ack/1 named its record id
`copy-<code>`, docs/fleet.md) and `retention_days` have passed since then. The broker's PUBACK,
which deletes the outbox row, is not enough: it only says the broker has the message.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edge.copies.code import CopyRefused
from edge.store import DataKey, Store
from edge.texts import N_, Text

logger = logging.getLogger(__name__)

RECORD_ID_PREFIX = "copy-"  # a copy's record (outbox message) id is copy-<code>


@dataclass(frozen=True, slots=True)
class CopyRow:
    code: str
    seq: int
    issued_at: float
    pages: int
    fee_vnd: int
    payable_vnd: int
    content_hash: str
    qr: str
    outbox_id: str
    acked_at: float | None
    receipt_job: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "seq": self.seq,
            "issued_at": self.issued_at,
            "pages": self.pages,
            "fee_vnd": self.fee_vnd,
            "payable_vnd": self.payable_vnd,
            "qr": self.qr,
            "sent_to_central": self.acked_at is not None,
            "receipt_job": self.receipt_job,
        }


_COLUMNS = (
    "code, seq, issued_at, pages, fee_vnd, payable_vnd, content_hash, qr, outbox_id, acked_at, "
    "receipt_job"
)


class CopyStore:
    def __init__(self, store: Store, key: DataKey) -> None:
        self.store = store
        self.key = key

    def insert_in(
        self,
        conn: sqlite3.Connection,
        row: CopyRow,
        *,
        pdf: bytes,
        citizen: dict[str, Any],
    ) -> None:
        """Inside the issuing transaction (with the outbox row and the sequence)."""
        aad = row.code.encode()
        conn.execute(
            f"INSERT INTO copies({_COLUMNS}, pdf, citizen) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.code,
                row.seq,
                row.issued_at,
                row.pages,
                row.fee_vnd,
                row.payable_vnd,
                row.content_hash,
                row.qr,
                row.outbox_id,
                row.acked_at,
                row.receipt_job,
                self.key.encrypt(pdf, aad=b"pdf:" + aad),
                self.key.encrypt(
                    json.dumps(citizen, ensure_ascii=False).encode(), aad=b"cit:" + aad
                ),
            ),
        )

    def list(self, *, limit: int = 100) -> list[CopyRow]:
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM copies ORDER BY seq DESC LIMIT ?", (limit,)
        )
        return [CopyRow(**dict(r)) for r in rows]

    def get(self, code: str) -> CopyRow:
        rows = self.store.query(f"SELECT {_COLUMNS} FROM copies WHERE code = ?", (code,))
        if not rows:
            raise _no_such_copy(code)
        return CopyRow(**dict(rows[0]))

    def pdf(self, code: str) -> bytes:
        rows = self.store.query("SELECT pdf FROM copies WHERE code = ?", (code,))
        if not rows:
            raise _no_such_copy(code)
        return self.key.decrypt(rows[0][0], aad=b"pdf:" + code.encode())

    def citizen(self, code: str) -> dict[str, Any]:
        rows = self.store.query("SELECT citizen FROM copies WHERE code = ?", (code,))
        if not rows:
            raise _no_such_copy(code)
        return json.loads(self.key.decrypt(rows[0][0], aad=b"cit:" + code.encode()))

    def set_receipt_job(self, code: str, job_id: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("UPDATE copies SET receipt_job = ? WHERE code = ?", (job_id, code))

    def acknowledge(self, record_ids: Iterable[str], *, now: float | None = None) -> int:
        """Central has stored these records: their copies get acked_at (the first ack counts;
        a redelivered ack, or ids of other records or of purged copies, change nothing)."""
        now = time.time() if now is None else now
        codes = [
            i.removeprefix(RECORD_ID_PREFIX)
            for i in dict.fromkeys(record_ids)
            if i.startswith(RECORD_ID_PREFIX)
        ]
        changed = 0
        with self.store.transaction() as conn:
            for start in range(0, len(codes), 500):
                chunk = codes[start : start + 500]
                changed += conn.execute(
                    "UPDATE copies SET acked_at = ? WHERE acked_at IS NULL "
                    f"AND code IN ({', '.join('?' * len(chunk))}) AND outbox_id = 'copy-' || code",
                    (now, *chunk),
                ).rowcount
        return changed

    def purge(self, retention_days: float, *, now: float | None = None) -> int:
        """Delete copies central acknowledged longer than the retention window ago."""
        now = time.time() if now is None else now
        with self.store.transaction() as conn:
            purged = conn.execute(
                "DELETE FROM copies WHERE acked_at IS NOT NULL AND acked_at <= ?",
                (now - retention_days * 86400,),
            ).rowcount
        if purged:
            logger.info("purged issued copies past retention", extra={"count": purged})
        return purged


def _no_such_copy(code: str) -> CopyRefused:
    return CopyRefused(
        Text(N_("There is no copy %(code)s on this kiosk"), {"code": code}), "no such copy here"
    )
