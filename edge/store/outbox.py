"""The durable outbox: records for central are committed here first, deleted only on ack."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from edge.store.db import Store
from protocol.crypto import DataKey

logger = logging.getLogger(__name__)

Kind = Literal["record", "event", "telemetry"]
KINDS: tuple[Kind, ...] = ("record", "event", "telemetry")


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    seq: int
    id: str
    kind: Kind
    topic: str
    payload: dict[str, Any]
    created_at: float
    attempts: int


class Outbox:
    """FIFO by seq. Payloads are sealed with the data key (they can carry personal data)."""

    def __init__(self, store: Store, key: DataKey) -> None:
        self.store = store
        self.key = key

    def add(
        self, kind: Kind, topic: str, payload: dict[str, Any], *, message_id: str | None = None
    ) -> OutboxMessage:
        with self.store.transaction() as conn:
            return self.add_in(conn, kind, topic, payload, message_id=message_id)

    def add_in(
        self,
        conn: sqlite3.Connection,
        kind: Kind,
        topic: str,
        payload: dict[str, Any],
        *,
        message_id: str | None = None,
    ) -> OutboxMessage:
        """add() inside the caller's transaction, so a record and its own rows commit together."""
        if kind not in KINDS:
            raise ValueError(f"unknown outbox kind {kind!r}")
        message_id = message_id or str(uuid.uuid4())
        now = time.time()
        blob = self.key.encrypt(
            json.dumps(payload, ensure_ascii=False).encode(), aad=message_id.encode()
        )
        cur = conn.execute(
            "INSERT INTO outbox(id, kind, topic, payload, created_at) VALUES (?, ?, ?, ?, ?)",
            (message_id, kind, topic, blob, now),
        )
        return OutboxMessage(cur.lastrowid, message_id, kind, topic, payload, now, 0)

    def pending(self, limit: int = 100, *, after_seq: int = 0) -> list[OutboxMessage]:
        rows = self.store.query(
            "SELECT seq, id, kind, topic, payload, created_at, attempts FROM outbox "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [
            OutboxMessage(
                r["seq"],
                r["id"],
                r["kind"],
                r["topic"],
                json.loads(self.key.decrypt(r["payload"], aad=r["id"].encode())),
                r["created_at"],
                r["attempts"],
            )
            for r in rows
        ]

    def acknowledge(self, message_id: str) -> bool:
        """Central has it (PUBACK): forget it. True if it was still here."""
        with self.store.transaction() as conn:
            return conn.execute("DELETE FROM outbox WHERE id = ?", (message_id,)).rowcount == 1

    def depth(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for row in self.store.query("SELECT kind, COUNT(*) FROM outbox GROUP BY kind"):
            counts[row[0]] = row[1]
        return counts

    def shed_telemetry(self) -> int:
        """Disk nearly full: drop telemetry (oldest first goes too); records are never dropped."""
        with self.store.transaction() as conn:
            dropped = conn.execute("DELETE FROM outbox WHERE kind = 'telemetry'").rowcount
        if dropped:
            logger.warning("disk low: dropped queued telemetry", extra={"dropped": dropped})
        return dropped
