"""Topic names and payload builders of the fleet contract (protocol/schemas/ describes each payload)."""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

STATE = "state/1"
TELEMETRY = "telemetry/1"
EVENT = "event/1"
RECORD = "record/1"
COMMAND = "command/1"
COMMAND_RESULT = "command-result/1"

DEFAULT_PREFIX = "kiosk/v1"
CENTRAL_STATUS_TOPIC = "fleet/v1/status"

# What central sends a kiosk besides commands (edge/fleet/inbox.py checks them).
RECORD_ACK = "record-ack/1"
COPY_REVOCATIONS = "copy-revocations/1"
REVOCATIONS_TOPIC = "fleet/v1/revocations"
ACK_SUFFIX = "ack"  # <prefix>/<kiosk_id>/ack

KIOSK_ID_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")  # schemas/state.json

Severity = Literal["info", "warning", "error", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error", "critical")


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
