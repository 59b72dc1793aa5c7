"""The outbox drain: rows published in seq order, a window of them in flight, removed on PUBACK."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.fleet.connection import Counters, Report, dumps
from edge.fleet.messages import wire_payload
from edge.store.db import Store
from edge.store.outbox import Outbox, OutboxMessage
from protocol.messages import Topics

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Inflight:
    seq: int
    id: str
    handed_at: float


class OutboxDrain:
    """Hands outbox rows to the paho client; owned by the fleet thread only."""

    def __init__(
        self,
        *,
        kiosk_id: str,
        store: Store,
        outbox: Outbox,
        topics: Topics,
        inflight_window: int,
        counters: Counters,
        report: Report,
    ) -> None:
        self.kiosk_id = kiosk_id
        self.store = store
        self.outbox = outbox
        self.topics = topics
        self.inflight_window = inflight_window
        self.counters = counters
        self.report = report
        self.inflight: dict[int, Inflight] = {}
        self.cursor = 0  # highest outbox seq handed to the current paho client
        self.window = inflight_window
        self.poisoned: set[str] = set()

    @property
    def has_room(self) -> bool:
        return len(self.inflight) < self.window

    def reset(self) -> None:
        """A new paho client: rows handed to a previous one go again (none was acknowledged)."""
        self.inflight.clear()
        self.cursor = 0

    def set_window(self, receive_maximum: int | None) -> None:
        # MQTT 5: the broker says how many unacknowledged QoS 1 messages it takes at once.
        self.window = min(self.inflight_window, receive_maximum or self.inflight_window)

    def fill(self, client: mqtt.Client, properties: Callable[[], Properties | None]) -> None:
        """Hand the next outbox rows (in seq order) to paho, at most `window` unacked.

        paho keeps every handed QoS 1 message until its PUBACK and sends it again after a
        reconnect; the row leaves the outbox only on that PUBACK. After a restart the cursor is
        0 again, so whatever was not acknowledged goes again, with the same id and seq.
        """
        free = self.window - len(self.inflight)
        if free <= 0:
            return
        for message in self._pending(free):
            self.cursor = message.seq
            if message.id in self.poisoned:
                continue
            body = dumps(wire_payload(message, self.kiosk_id))
            try:
                info = client.publish(
                    self.topics.under(message.topic), body, qos=1, properties=properties()
                )
            except ValueError as err:  # a topic paho refuses (wildcard, empty ...)
                self._poison(message, str(err))
                continue
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                self.cursor = message.seq - 1  # try again on the next pass
                logger.warning("paho refused a publish", extra={"rc": int(info.rc)})
                break
            self.inflight[info.mid] = Inflight(message.seq, message.id, time.monotonic())
            self.counters.add("published")

    def puback(self, mid: int, reason: ReasonCode) -> str | None:
        """The id of the outbox row the broker now has, or None (refused, or not a row)."""
        entry = self.inflight.pop(mid, None)
        if entry is None:
            return None  # state, results and live telemetry are not outbox rows
        if reason.is_failure:
            self._rejected(entry, str(reason))
            return None
        return entry.id

    def acknowledge(self, ids: list[str]) -> None:
        for message_id in ids:
            self.outbox.acknowledge(message_id)
        if ids:
            self.counters.add("acknowledged", len(ids))

    def _pending(self, limit: int) -> list[OutboxMessage]:
        try:
            return self.outbox.pending(limit, after_seq=self.cursor)
        except Exception:
            # One unreadable row (e.g. sealed with another key) must not stall every row after
            # it: find it, report it, step over it. It stays in the outbox for a technician.
            logger.exception("outbox batch unreadable; reading row by row")
        rows = self.store.query(
            "SELECT seq, id FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (self.cursor, limit)
        )
        good: list[OutboxMessage] = []
        for row in rows:
            try:
                good.extend(self.outbox.pending(1, after_seq=row["seq"] - 1))
            except Exception as err:
                self.cursor = row["seq"]
                if row["id"] not in self.poisoned:
                    self.poisoned.add(row["id"])
                    self.report(
                        "fleet.outbox_unreadable",
                        "error",
                        {"id": row["id"], "seq": row["seq"], "error": type(err).__name__},
                    )
                if good:
                    break
        return good

    def _poison(self, message: OutboxMessage, problem: str) -> None:
        self.poisoned.add(message.id)
        logger.error("outbox row cannot be published", extra={"id": message.id, "problem": problem})
        self.report(
            "fleet.publish_rejected",
            "error",
            {
                "id": message.id,
                "seq": message.seq,
                "topic": message.topic,
                "problem": problem[:200],
            },
        )

    def _rejected(self, entry: Inflight, reason: str) -> None:
        # The broker refused it (MQTT 5 PUBACK >= 0x80, e.g. not authorised): keep the row,
        # it goes again after the next restart; central sees the gap in seq meanwhile.
        self.counters.add("rejected")
        if entry.id not in self.poisoned:
            self.poisoned.add(entry.id)
            logger.error(
                "broker rejected an outbox message", extra={"id": entry.id, "reason": reason}
            )
            self.report(
                "fleet.publish_rejected",
                "error",
                {"id": entry.id, "seq": entry.seq, "problem": reason},
            )
