"""Prometheus exposition of the fleet: one collector reading the store at scrape time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from fleet.store import FleetStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class FleetCollector(Collector):
    def __init__(self, store: FleetStore, ingest: Any = None) -> None:
        self.store = store
        self.ingest = ingest

    def collect(self) -> Iterator[Any]:
        now = time.time()
        rows = self.store.kiosks()
        labels = ["kiosk", "site"]
        up = GaugeMetricFamily(
            "kiosk_online", "1 if the kiosk's retained state is online", labels=labels
        )
        seen = GaugeMetricFamily(
            "kiosk_last_seen_seconds", "Seconds since the last message", labels=labels
        )
        temp = GaugeMetricFamily("kiosk_cpu_temperature_celsius", "CPU temperature", labels=labels)
        disk = GaugeMetricFamily("kiosk_disk_used_ratio", "Disk used (0-1)", labels=labels)
        depth = GaugeMetricFamily(
            "kiosk_outbox_depth", "Messages waiting in the outbox", labels=labels
        )
        paper = GaugeMetricFamily(
            "kiosk_paper_ok", "1 paper ok, 0.5 near end, 0 out", labels=labels
        )
        gaps = GaugeMetricFamily(
            "kiosk_seq_gaps", "Outbox sequence numbers never received", labels=labels
        )
        cert = GaugeMetricFamily(
            "kiosk_certificate_expiry_seconds",
            "Seconds until the client certificate expires",
            labels=labels,
        )
        for k in rows:
            lv = [k["kiosk_id"], k["site"]]
            up.add_metric(lv, 1.0 if k["state"] == "online" else 0.0)
            seen.add_metric(lv, max(0.0, now - k["last_seen"]))
            if k["cpu_temp_c"] is not None:
                temp.add_metric(lv, k["cpu_temp_c"])
            if k["disk_used_pct"] is not None:
                disk.add_metric(lv, k["disk_used_pct"] / 100)
            if k["outbox_depth"] is not None:
                depth.add_metric(lv, k["outbox_depth"])
            if k["paper"] in ("ok", "near-end", "out"):
                paper.add_metric(lv, {"ok": 1.0, "near-end": 0.5, "out": 0.0}[k["paper"]])
            gaps.add_metric(lv, k["seq_gaps"])
            if k["cert_not_after"]:
                cert.add_metric(lv, k["cert_not_after"] - now)
        yield from (up, seen, temp, disk, depth, paper, gaps, cert)
        alert = GaugeMetricFamily(
            "fleet_alert",
            "Open alerts (1 per kiosk and rule)",
            labels=["kiosk", "rule", "severity"],
        )
        for a in self.store.open_alerts():
            alert.add_metric([a["kiosk_id"], a["rule"], a["severity"]], 1.0)
        yield alert
        count = GaugeMetricFamily("fleet_kiosks", "Kiosks known, by state", labels=["state"])
        states: dict[str, int] = {}
        for k in rows:
            states[k["state"]] = states.get(k["state"], 0) + 1
        for state, n in sorted(states.items()):
            count.add_metric([state], n)
        yield count
        if self.ingest is not None:
            s = self.ingest.stats
            received = CounterMetricFamily(
                "fleet_ingest_messages", "MQTT messages taken from the broker", labels=["outcome"]
            )
            received.add_metric(["received"], s.received)
            received.add_metric(["stored"], s.stored)
            received.add_metric(["duplicate"], s.duplicates)
            received.add_metric(["rejected"], s.rejected)
            yield received
            connected = GaugeMetricFamily("fleet_broker_connected", "1 if connected to the broker")
            connected.add_metric([], 1.0 if self.ingest.connected else 0.0)
            yield connected


def exposition(store: FleetStore, ingest: Any = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(store, ingest))
    return generate_latest(registry)
