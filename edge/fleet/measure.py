"""Bench helpers: outbox throughput to a broker, and how fast a backlog drains when it returns."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from edge.fleet.client import FleetClient
from edge.fleet.messages import queue_record
from edge.store.outbox import Outbox


@dataclass(frozen=True, slots=True)
class DrainFigures:
    records: int
    records_per_s: float  # live: N records queued one by one (each committed) until all PUBACKed
    after_outage_s: float | None  # broker started -> the N records queued meanwhile all PUBACKed
    reconnect_s: float | None  # broker started -> client connected (includes the backoff wait)
    backlog_per_s: float | None  # N / (after_outage_s - reconnect_s): the drain alone

    def __str__(self) -> str:
        text = f"{self.records} records: {self.records_per_s:.0f} records/s live"
        if self.after_outage_s is not None:
            text += (
                f"; after an outage {self.after_outage_s:.2f} s from broker start to drained"
                f" (reconnect {self.reconnect_s:.2f} s, backlog {self.backlog_per_s:.0f} records/s)"
            )
        return text


def measure_drain(
    client: FleetClient,
    outbox: Outbox,
    *,
    records: int = 1000,
    broker_stop: Callable[[], None] | None = None,
    broker_start: Callable[[], None] | None = None,
    timeout_s: float = 60.0,
) -> DrainFigures:
    """Measure with a started, connected client and an empty outbox.

    Live throughput: queue `records` records (as services do, one committed row each) and time
    from the first until the outbox has no record rows left. With broker_stop/broker_start,
    also stop the broker, queue `records` more, start it and time until they are all drained.
    Records go to records/bench; a central consumer should ignore that kind.
    """
    _wait(lambda: client.connected, timeout_s, "client connected")
    started = time.monotonic()
    for i in range(records):
        queue_record(outbox, client.kiosk_id, "bench", {"n": i})
        if i % 50 == 0:
            client.kick()
    client.kick()
    _wait(lambda: outbox.depth()["record"] == 0, timeout_s, "outbox drained")
    live = records / (time.monotonic() - started)
    if broker_stop is None or broker_start is None:
        return DrainFigures(records, live, None, None, None)

    broker_stop()
    _wait(lambda: not client.connected, timeout_s, "client noticed the broker left")
    for i in range(records):
        queue_record(outbox, client.kiosk_id, "bench", {"n": i})
    back = time.monotonic()
    broker_start()
    _wait(lambda: client.connected, timeout_s, "client reconnected")
    reconnect = time.monotonic() - back
    _wait(lambda: outbox.depth()["record"] == 0, timeout_s, "backlog drained")
    after = time.monotonic() - back
    return DrainFigures(records, live, after, reconnect, records / max(after - reconnect, 1e-6))


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s} s")
        time.sleep(0.005)
