"""Fleet reporting against a real Mosquitto (config/mosquitto): birth and will, telemetry,
the outbox drain through outages and kills, the ACL, TLS, the 3.1.1 fallback, disk low."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.fleet import Backoff, FleetClient, queue_event, queue_record, system_metrics
from edge.fleet.measure import measure_drain
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from tests.fleet_kiosk import KioskProcess, settings_for
from tests.mqtt_broker import (
    CENTRAL,
    Broker,
    FleetPki,
    Peer,
    V311OnlyFront,
    assert_valid,
    wait_until,
)

KIOSK = "KIOSK-A"
OTHER = "KIOSK-B"


class Kiosk:
    """An in-process kiosk: its own Store, Outbox and FleetClient."""

    def __init__(self, root: Path, broker: Broker, pki: FleetPki, kiosk_id: str, **kw: Any):
        self.store = Store(root / kiosk_id / "kiosk.db")
        self.store.open()
        self.outbox = Outbox(self.store, DataKey.load_or_create(root / kiosk_id / "keys" / "k"))
        identity = pki.client(kiosk_id)
        options: dict[str, Any] = {
            "host": "localhost",
            "port": broker.port,
            "ca_file": pki.ca_file,
            "cert_file": identity.cert,
            "key_file": identity.key,
            "reconnect_min_s": 0.05,
            "reconnect_max_s": 0.5,
            "telemetry_interval_s": 3600,
            **kw,
        }
        self.client = FleetClient(
            kiosk_id=kiosk_id, store=self.store, outbox=self.outbox, **options
        )

    def close(self) -> None:
        self.client.stop()
        self.store.close()


@pytest.fixture
def make_kiosk(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki
) -> Iterator[Callable[..., Kiosk]]:
    made: list[Kiosk] = []

    def make(kiosk_id: str = KIOSK, *, start: bool = True, **kw: Any) -> Kiosk:
        kiosk = Kiosk(tmp_path / "kiosks", broker, fleet_pki, kiosk_id, **kw)
        made.append(kiosk)
        if start:
            kiosk.client.start()
        return kiosk

    yield make
    for kiosk in made:
        kiosk.close()


def state_of(message: Any) -> str:
    return json.loads(message.payload)["state"]


# --- birth, telemetry, events, will -----------------------------------------------------------


def test_birth_telemetry_events_and_records_arrive_with_valid_schemas(
    make_kiosk: Callable[..., Kiosk], central: Peer
) -> None:
    def provider() -> dict[str, Any]:
        return {
            "system": system_metrics(),
            "printer": {"state": "ready", "paper": "ok"},
            "camera": {"state": "streaming", "fps": 20.0},
            "models": {"face": "loaded"},
            "counts": {"sessions": 3, "copies": 2, "tickets": 1, "failures": 0},
            "versions": {"software": "0.1.0", "catalog": "2026.11"},
        }

    kiosk = make_kiosk(
        telemetry_provider=provider,
        capabilities=["print", "camera", "ecopy"],
        config_hash="abc123",
        status_provider=lambda: {"locked": False},
    )
    base = f"kiosk/v1/{KIOSK}"
    birth = central.wait_for(f"{base}/state").json()
    assert_valid(birth, "state")
    assert birth["state"] == "online"
    assert birth["capabilities"] == ["camera", "ecopy", "print"]
    assert birth["config_hash"] == "abc123" and birth["protocol"] == "5"
    assert birth["status"] == {"locked": False}

    telemetry = central.wait_for(f"{base}/telemetry").json()  # the first one comes at start
    assert_valid(telemetry, "telemetry")
    assert telemetry["counts"]["sessions"] == 3 and telemetry["versions"]["catalog"] == "2026.11"

    queue_event(kiosk.outbox, KIOSK, "printer.paper_out", "error", {"printer": "usb"})
    # The shape edge/app.py queues for FLEET_EVENTS, byte for byte the same fields.
    kiosk.outbox.add(
        "event",
        "events",
        {
            "schema": "event/1",
            "kiosk_id": KIOSK,
            "kind": "tamper.opened",
            "severity": "critical",
            "time": "2026-11-23T04:05:06.123456+00:00",
            "detail": {},
        },
    )
    queue_record(kiosk.outbox, KIOSK, "copy", {"code": "HN-0001", "pages": 3})
    kiosk.client.kick()
    events = [
        central.wait_for(f"{base}/events", lambda m, k=k: m.json()["kind"] == k).json()
        for k in ("printer.paper_out", "tamper.opened")
    ]
    record = central.wait_for(f"{base}/records/copy").json()
    for event in events:
        assert_valid(event, "event")
    assert_valid(record, "record")
    assert record["data"] == {"code": "HN-0001", "pages": 3}
    assert events[0]["seq"] < events[1]["seq"] < record["seq"]
    wait_until(lambda: sum(kiosk.outbox.depth().values()) == 0, what="outbox drained on PUBACK")


def test_sigkill_makes_the_broker_publish_offline_retained(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki, central: Peer
) -> None:
    identity = fleet_pki.client(KIOSK)
    kiosk = KioskProcess(
        settings_for(
            tmp_path / "state",
            kiosk_id=KIOSK,
            port=broker.port,
            ca=fleet_pki.ca_file,
            cert=identity.cert,
            key=identity.key,
        ),
        tmp_path,
    )
    kiosk.start()
    try:
        state_topic = f"kiosk/v1/{KIOSK}/state"
        central.wait_for(state_topic, lambda m: state_of(m) == "online")
        kiosk.kill()
        will = central.wait_for(state_topic, lambda m: state_of(m) == "offline", timeout=5).json()
        assert_valid(will, "state")
        assert will["reason"] == "connection_lost"
    finally:
        kiosk.kill()
    # A late subscriber sees the retained will. Same CN, so the same client id: close the
    # first one, or the two would take the session from each other in turn.
    central.close()
    late = Peer(broker, fleet_pki.client(CENTRAL)).connect()
    try:
        late.subscribe(state_topic)
        retained = late.wait_for(state_topic)
        assert retained.retain and state_of(retained) == "offline"
    finally:
        late.close()


def test_clean_stop_publishes_offline_retained(
    make_kiosk: Callable[..., Kiosk], central: Peer
) -> None:
    kiosk = make_kiosk()
    topic = f"kiosk/v1/{KIOSK}/state"
    central.wait_for(topic, lambda m: state_of(m) == "online")
    started = time.monotonic()
    kiosk.client.stop()
    assert time.monotonic() - started < 2
    offline = central.wait_for(topic, lambda m: state_of(m) == "offline").json()
    assert_valid(offline, "state")
    assert offline["reason"] == "stopped"


def test_central_coming_online_makes_the_kiosk_republish_its_state(
    make_kiosk: Callable[..., Kiosk], central: Peer
) -> None:
    make_kiosk()
    topic = f"kiosk/v1/{KIOSK}/state"
    central.wait_for(topic)
    central.publish("fleet/v1/status", "online", retain=True)
    wait_until(lambda: len(central.received(topic)) >= 2, what="state re-published")
    assert all(state_of(m) == "online" for m in central.received(topic))


def test_broker_is_not_needed_to_start_and_publishing_offline_never_raises(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki
) -> None:
    # Central's persistent session is on the broker before it goes down, so what the kiosk
    # sends the moment the broker is back is queued for central even if it reconnects later.
    central = Peer(broker, fleet_pki.client(CENTRAL), persistent=True).connect()
    central.subscribe(f"kiosk/v1/{KIOSK}/#")
    broker.stop()
    kiosk = Kiosk(tmp_path, broker, fleet_pki, KIOSK)
    try:
        started = time.monotonic()
        kiosk.client.start()
        assert time.monotonic() - started < 0.5
        queue_record(kiosk.outbox, KIOSK, "ticket", {"number": 17})
        kiosk.client.kick()
        kiosk.client.publish_state()
        kiosk.client.send_telemetry()
        time.sleep(0.3)
        assert not kiosk.client.connected
        broker.start()
        record = central.wait_for(f"kiosk/v1/{KIOSK}/records/ticket", timeout=10).json()
        assert record["data"] == {"number": 17}
    finally:
        kiosk.close()
        central.close()


# --- the outbox through outages, kills and restarts ---------------------------------------


@pytest.mark.timeout(60)
def test_thousand_records_survive_broker_outage_and_kiosk_kills(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki
) -> None:
    n = 1000
    identity = fleet_pki.client(KIOSK)
    settings = settings_for(
        tmp_path / "state",
        kiosk_id=KIOSK,
        port=broker.port,
        ca=fleet_pki.ca_file,
        cert=identity.cert,
        key=identity.key,
    )
    # Central keeps a persistent session, so what arrives while it reconnects is queued for it.
    central = Peer(broker, fleet_pki.client(CENTRAL), persistent=True).connect()
    central.subscribe(f"kiosk/v1/{KIOSK}/#")
    kiosk = KioskProcess(settings, tmp_path)
    try:
        kiosk.start()
        central.wait_for(f"kiosk/v1/{KIOSK}/state")

        broker.stop()
        added = kiosk.ask(f"add {n} copy")  # accepted while central is unreachable
        assert added["added"] == n
        kiosk.kill()
        ready = kiosk.start()  # a new process: nothing in memory, all of it in SQLite
        assert ready["depth"]["record"] == n
        broker.start()

        # Kill it again as soon as records flow, mid-drain, and start it once more.
        central.wait_for(f"kiosk/v1/{KIOSK}/records/#", timeout=15)
        kiosk.kill()
        kiosk.start()

        def ids() -> set[str]:
            return {m.json()["id"] for m in central.received(f"kiosk/v1/{KIOSK}/records/#")}

        wait_until(lambda: len(ids()) == n, timeout=30, what=f"{n} distinct records at central")
        depth = wait_until(
            lambda: (d := kiosk.ask("depth")["depth"])["record"] == 0 and d,
            timeout=10,
            what="outbox empty after PUBACKs",
        )
        assert depth["record"] == 0
    finally:
        kiosk.kill()
        central.close()

    records = [m.json() for m in central.received(f"kiosk/v1/{KIOSK}/records/#")]
    first_seen: dict[str, dict[str, Any]] = {}
    for record in records:
        earlier = first_seen.setdefault(record["id"], record)
        assert earlier == record, "a duplicate must be the same message (same id, seq, data)"
    print(f"\n{len(records)} messages at central for {n} records (duplicates: same id)")
    order = [r["seq"] for r in first_seen.values()]
    assert order == sorted(order), "records arrived out of order"
    assert order == list(range(added["first_seq"], added["last_seq"] + 1)), "a gap"
    assert sorted(r["data"]["n"] for r in first_seen.values()) == list(range(n))
    assert_valid(records[0], "record")


# --- the ACL and TLS ------------------------------------------------------------------------


def test_a_kiosk_cannot_publish_to_or_read_another_kiosks_topics(
    broker: Broker, fleet_pki: FleetPki, central: Peer, make_kiosk: Callable[..., Kiosk]
) -> None:
    make_kiosk(OTHER)  # the victim: a real kiosk with a retained state
    central.wait_for(f"kiosk/v1/{OTHER}/state")
    rogue = Peer(broker, fleet_pki.client(KIOSK)).connect()
    try:
        for topic in (f"kiosk/v1/{OTHER}/#", f"kiosk/v1/{OTHER}/cmd/+", "kiosk/v1/#"):
            rogue.subscribe(topic)  # Mosquitto grants the SUBACK but filters every delivery
        own = rogue.publish(f"kiosk/v1/{KIOSK}/events", b"{}")
        assert not own.is_failure
        for topic in (
            f"kiosk/v1/{OTHER}/events",
            f"kiosk/v1/{OTHER}/state",
            f"kiosk/v1/{OTHER}/records/copy",
            f"kiosk/v1/{OTHER}/cmd/restart/result",
            f"kiosk/v1/{OTHER}/cmd/restart",
            "fleet/v1/status",
        ):
            reason = rogue.publish(topic, b'{"forged":true}')
            assert str(reason) == "Not authorized", topic
        central.publish(f"kiosk/v1/{OTHER}/cmd/restart", b"{}")
        central.publish(f"kiosk/v1/{KIOSK}/cmd/ping", b"{}")
        rogue.wait_for(f"kiosk/v1/{KIOSK}/cmd/ping")  # its own command does arrive ...
        time.sleep(0.3)
        leaked = [m.topic for m in rogue.received() if not m.topic.startswith(f"kiosk/v1/{KIOSK}/")]
        assert leaked == []  # ... nothing of the other kiosk's, not even its retained state
        forged = [m for m in central.received() if b"forged" in m.payload]
        assert forged == []
    finally:
        rogue.close()


def test_a_kiosk_cannot_take_over_another_kiosks_session(
    broker: Broker, fleet_pki: FleetPki, make_kiosk: Callable[..., Kiosk]
) -> None:
    victim = make_kiosk(OTHER)
    wait_until(lambda: victim.client.connected)
    rogue = Peer(broker, fleet_pki.client(KIOSK))
    rogue.client._client_id = OTHER.encode()  # claims the victim's client id
    rogue.connect()
    try:
        time.sleep(0.3)
        assert victim.client.connected  # use_username_as_clientid: the CN is the client id
        assert f"as {KIOSK} " in broker.log()
    finally:
        rogue.close()


def test_tls_refusals_are_reported_not_raised(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki
) -> None:
    stranger_pki = FleetPki(tmp_path / "stranger-ca")  # a certificate the fleet CA never signed
    kiosk = Kiosk(
        tmp_path,
        broker,
        fleet_pki,
        KIOSK,
        cert_file=stranger_pki.client(KIOSK).cert,
        key_file=stranger_pki.client(KIOSK).key,
    )
    missing = Kiosk(tmp_path / "m", broker, fleet_pki, OTHER, cert_file=tmp_path / "nope.crt")
    try:
        kiosk.client.start()
        missing.client.start()  # unusable files: reported, not raised
        time.sleep(1.0)
        assert not kiosk.client.connected
        assert not missing.client.connected
        assert "cannot reach the fleet broker" in kiosk.client.status()["last_error"]
        assert "TLS files unusable" in missing.client.status()["last_error"]
        events = [m.payload for m in missing.outbox.pending(10)]
        assert any(e["kind"] == "fleet.misconfigured" for e in events)
    finally:
        kiosk.close()
        missing.close()


# --- MQTT 3.1.1 fallback ----------------------------------------------------------------------


def test_falls_back_to_mqtt311_when_the_broker_refuses_v5(
    broker: Broker, fleet_pki: FleetPki, central: Peer, make_kiosk: Callable[..., Kiosk]
) -> None:
    front = V311OnlyFront(broker, fleet_pki.client(KIOSK)).start()
    try:
        kiosk = make_kiosk(port=front.port)
        birth = central.wait_for(f"kiosk/v1/{KIOSK}/state", timeout=10).json()
        assert birth["protocol"] == "3.1.1"
        assert front.refused_v5 >= 1 and front.passed >= 1
        queue_record(kiosk.outbox, KIOSK, "copy", {"via": "3.1.1"})
        kiosk.client.kick()
        record = central.wait_for(f"kiosk/v1/{KIOSK}/records/copy").json()
        assert record["data"] == {"via": "3.1.1"}
        wait_until(lambda: kiosk.outbox.depth()["record"] == 0, what="PUBACK over 3.1.1")
    finally:
        front.stop()


# --- disk nearly full -----------------------------------------------------------------------


def test_disk_low_sheds_telemetry_keeps_records_and_tells_the_operator(
    make_kiosk: Callable[..., Kiosk], central: Peer
) -> None:
    kiosk = make_kiosk(start=False, min_free_mb=10**9)  # no disk is that big: always "low"
    for i in range(3):
        kiosk.outbox.add("telemetry", "telemetry", {"n": i})
    queue_record(kiosk.outbox, KIOSK, "copy", {"kept": True})
    kiosk.client.start()
    event = central.wait_for(
        f"kiosk/v1/{KIOSK}/events", lambda m: m.json()["kind"] == "storage.disk_low"
    ).json()
    assert_valid(event, "event")
    assert event["severity"] == "critical" and event["detail"]["telemetry_dropped"] >= 3
    record = central.wait_for(f"kiosk/v1/{KIOSK}/records/copy").json()
    assert record["data"] == {"kept": True}
    # Telemetry still goes out live, but nothing of it is stored while the disk is low.
    kiosk.client.send_telemetry()
    live = central.wait_for(f"kiosk/v1/{KIOSK}/telemetry").json()
    assert live["schema"] == "telemetry/1"
    assert kiosk.outbox.depth()["telemetry"] == 0
    stored = [m.json().get("n") for m in central.received(f"kiosk/v1/{KIOSK}/telemetry")]
    assert stored == [None]  # the three queued samples were shed, never sent


# --- small parts ------------------------------------------------------------------------------


def test_backoff_grows_with_jitter_and_resets() -> None:
    backoff = Backoff(1.0, 8.0)
    delays = [backoff.next() for _ in range(8)]
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len({round(d, 6) for d in delays}) > 1  # not lock step
    backoff.reset()
    assert 0.5 <= backoff.next() <= 1.0


def test_system_metrics_read_proc_and_thermal(tmp_path: Path) -> None:
    proc, thermal = tmp_path / "proc", tmp_path / "thermal"
    proc.mkdir()
    (proc / "uptime").write_text("12345.67 999.0\n")
    (proc / "loadavg").write_text("0.50 0.40 0.30 1/200 1234\n")
    (proc / "meminfo").write_text("MemTotal: 3884 kB\nMemFree: 100 kB\nMemAvailable: 1942 kB\n")
    for i, (kind, milli) in enumerate([("cpu-thermal", 61234), ("wifi", 90000)]):
        zone = thermal / f"thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(f"{milli}\n")
    m = system_metrics(disk_path=tmp_path, proc=proc, thermal=thermal)
    assert m["uptime_s"] == 12345.7 and m["load"] == [0.5, 0.4, 0.3]
    assert m["cpu_temp_c"] == 61.2  # the Wi-Fi chip's 90 °C is not the CPU
    assert m["memory"] == {"total_mb": 3, "available_mb": 1, "used_pct": 50.0}
    assert m["disk"]["free_mb"] > 0
    real = system_metrics()  # this machine: whatever it has, in the same shape
    assert real["memory"]["total_mb"] > 0 and len(real["load"]) == 3


@pytest.mark.timeout(60)
def test_drain_figures(tmp_path: Path, broker: Broker, make_kiosk: Callable[..., Kiosk]) -> None:
    """The bench figures, measured here too so a regression shows in the test run."""
    kiosk = make_kiosk()
    wait_until(lambda: kiosk.client.connected)
    figures = measure_drain(
        kiosk.client, kiosk.outbox, broker_stop=broker.stop, broker_start=broker.start, records=1000
    )
    print(f"\nfleet drain figures: {figures}")
    assert figures.records_per_s > 50
    assert figures.after_outage_s < 15
