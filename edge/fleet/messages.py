"""The kiosk's side of the fleet contract: queueing events and records, stamping outbox rows."""

from __future__ import annotations

import re
from typing import Any

from edge.store.outbox import Outbox, OutboxMessage
from protocol.messages import EVENT, RECORD, Severity, event_payload, iso_time

# A record kind is one topic level: no wildcards, no separators.
_RECORD_KIND = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def queue_event(
    outbox: Outbox,
    kiosk_id: str,
    kind: str,
    severity: Severity,
    detail: dict[str, Any] | None = None,
) -> OutboxMessage:
    """Queue an event for central on the 'events' topic."""
    return outbox.add("event", "events", event_payload(kiosk_id, kind, severity, detail))


def queue_record(
    outbox: Outbox,
    kiosk_id: str,
    kind: str,
    data: dict[str, Any],
    *,
    message_id: str | None = None,
) -> OutboxMessage:
    """Queue a record (issued copy, ticket, delivery request ...) for records/<kind>.

    message_id: pass the record's own id (e.g. the copy's code) so a retry after a crash
    between "record written" and "queued" cannot queue it twice under two ids.
    """
    return outbox.add(
        "record", f"records/{kind}", record_payload(kiosk_id, kind, data), message_id=message_id
    )


def record_payload(kiosk_id: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The record/1 envelope around data (for Outbox.add_in inside a caller's transaction)."""
    if not _RECORD_KIND.match(kind):
        raise ValueError(f"record kind {kind!r} must match {_RECORD_KIND.pattern}")
    return {
        "schema": RECORD,
        "kiosk_id": kiosk_id,
        "kind": kind,
        "time": iso_time(),
        "data": data,
    }


def wire_payload(message: OutboxMessage, kiosk_id: str) -> dict[str, Any]:
    """What goes on the wire for an outbox row: its payload stamped with id, seq and queue time.

    id is stable across retries (central deduplicates on it); seq is the kiosk's outbox
    sequence, shared by all kinds, so central can see gaps; queued_at is the kiosk's wall clock
    when the row was committed. A payload queued without a schema (a producer that did not use
    queue_record) is wrapped as a record rather than sent in an unknown shape.
    """
    payload = dict(message.payload)
    if "schema" not in payload:
        when = iso_time(message.created_at)
        if message.kind == "event":
            payload = {
                "schema": EVENT,
                "kind": "unspecified",
                "severity": "info",
                "time": when,
                "detail": payload,
            }
        else:
            kind = message.topic.rsplit("/", 1)[-1]
            payload = {"schema": RECORD, "kind": kind, "time": when, "data": payload}
    payload.update(
        id=message.id,
        seq=message.seq,
        kiosk_id=kiosk_id,
        queued_at=iso_time(message.created_at),
    )
    return payload
