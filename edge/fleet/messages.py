"""Topic names and payload builders of the fleet contract (schemas/ describes each payload)."""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from edge.store.outbox import Outbox, OutboxMessage

STATE = "state/1"
TELEMETRY = "telemetry/1"
EVENT = "event/1"
RECORD = "record/1"
COMMAND = "command/1"
COMMAND_RESULT = "command-result/1"

DEFAULT_PREFIX = "kiosk/v1"
CENTRAL_STATUS_TOPIC = "fleet/v1/status"

Severity = Literal["info", "warning", "error", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error", "critical")

# A record kind is one topic level: no wildcards, no separators.
_RECORD_KIND = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def iso_time(at: float | None = None) -> str:
    """Wall-clock time as ISO 8601 in UTC, the same form edge/app.py gives events."""
    return dt.datetime.fromtimestamp(time.time() if at is None else at, dt.UTC).isoformat()


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic one kiosk uses, under <prefix>/<kiosk_id>/."""

    prefix: str
    kiosk_id: str
    central_status: str = CENTRAL_STATUS_TOPIC

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.kiosk_id}"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def commands(self) -> str:
        """Subscription filter: one level per command name, so results never loop back."""
        return f"{self.base}/cmd/+"

    def command_result(self, name: str) -> str:
        return f"{self.base}/cmd/{name}/result"

    def under(self, suffix: str) -> str:
        """The full topic of an outbox row (its topic column is the suffix, e.g. 'events')."""
        return f"{self.base}/{suffix}"


def state_payload(
    *,
    kiosk_id: str,
    online: bool,
    version: str = "",
    capabilities: list[str] | None = None,
    config_hash: str = "",
    protocol: str = "",
    status: dict[str, Any] | None = None,
    reason: str = "",
    with_time: bool = True,
) -> dict[str, Any]:
    """Birth ('online', the full state) or death ('offline', the Last Will or a clean stop)."""
    payload: dict[str, Any] = {
        "schema": STATE,
        "kiosk_id": kiosk_id,
        "state": "online" if online else "offline",
    }
    if with_time:  # the Last Will is fixed at connect time, so it carries no time of its own
        payload["time"] = iso_time()
    if online:
        payload.update(
            version=version,
            capabilities=sorted(capabilities or []),
            config_hash=config_hash,
            protocol=protocol,
            status=status or {},
        )
    else:
        payload["reason"] = reason
    return payload


def event_payload(
    kiosk_id: str, kind: str, severity: Severity, detail: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The same shape edge/app.py queues for hardware events."""
    return {
        "schema": EVENT,
        "kiosk_id": kiosk_id,
        "kind": kind,
        "severity": severity,
        "time": iso_time(),
        "detail": detail or {},
    }


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
    if not _RECORD_KIND.match(kind):
        raise ValueError(f"record kind {kind!r} must match {_RECORD_KIND.pattern}")
    payload = {
        "schema": RECORD,
        "kiosk_id": kiosk_id,
        "kind": kind,
        "time": iso_time(),
        "data": data,
    }
    return outbox.add("record", f"records/{kind}", payload, message_id=message_id)


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
