"""Fleet reporting over MQTT: state, telemetry, the outbox drain and signed commands."""

from edge.fleet.client import FleetClient
from edge.fleet.commands import (
    BadArgs,
    Command,
    CommandProcessor,
    OperatorKeys,
    Outcome,
    SeenCommands,
)
from edge.fleet.messages import queue_event, queue_record
from edge.fleet.metrics import disk_free_mb, system_metrics

# The contract's parts the kiosk's callers use, from the shared package.
from protocol.commands import canonical_bytes, sign_command
from protocol.messages import Topics
from protocol.mqtt import Backoff

__all__ = [
    "Backoff",
    "BadArgs",
    "Command",
    "CommandProcessor",
    "FleetClient",
    "OperatorKeys",
    "Outcome",
    "SeenCommands",
    "Topics",
    "canonical_bytes",
    "disk_free_mb",
    "queue_event",
    "queue_record",
    "sign_command",
    "system_metrics",
]
