"""A regional broker bridged to central (config/mosquitto/regional.conf, docs/fleet.md "Regional
brokers"): two real Mosquitto processes on loopback, mutual TLS on both legs, the WAN between them
a forwarding process killed with SIGKILL, then central's broker stopped and started again. The
kiosk (the real FleetClient with its outbox) stays connected to its regional broker throughout;
every record reaches central at least once (deduplicated on its id), none is lost; what central
sent while the ward was cut off reaches the kiosk when the link returns; central's ACL keeps the
bridge to its own kiosks."""

from __future__ import annotations

import getpass
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.fleet import queue_record
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from fleet.bridge_acl import bridge_acl_block
from tests.mqtt_broker import (
    BROKER_ACL,
    CENTRAL,
    REPO,
    Broker,
    FleetPki,
    Identity,
    Peer,
    kiosk_client,
    restartable_port,
    wait_until,
)

REGIONAL_CONF = REPO / "config" / "mosquitto" / "regional.conf"
REGIONAL_ACL = REPO / "config" / "mosquitto" / "regional.acl"
WAN_LINK = REPO / "tests" / "wan_link.py"


def _conf_value(key: str) -> str:
    return next(
        line.split(None, 1)[1]
        for line in REGIONAL_CONF.read_text().splitlines()
        if line.startswith(f"{key} ")
    )


BRIDGE = _conf_value("remote_clientid")  # the bridge certificate's CN
BRIDGE_STATE = _conf_value("notification_topic")
KIOSK = "HN-TAYHO-01"
NEIGHBOUR = "HN-TAYHO-02"  # same ward, behind the same bridge
OTHER_WARD = "HN-HOANKIEM-01"  # not in this bridge's ACL block


def render_regional_config(
    root: Path, port: int, central_port: int, pki: FleetPki, bridge: Identity
) -> Path:
    """config/mosquitto/regional.conf with only paths, ports, central's address and the user
    swapped for the test."""
    swaps = {
        "user mosquitto": f"user {getpass.getuser()}",
        "persistence_location /var/lib/mosquitto/": f"persistence_location {root / 'data'}/",
        "acl_file /etc/mosquitto/regional.acl": f"acl_file {REGIONAL_ACL}",
        "listener 8883": f"listener {port} 127.0.0.1",
        "cafile /etc/mosquitto/ca/fleet-ca.crt": f"cafile {pki.ca_file}",
        "certfile /etc/mosquitto/certs/regional.crt": f"certfile {pki.server.cert}",
        "keyfile /etc/mosquitto/certs/regional.key": f"keyfile {pki.server.key}",
        "address central.fleet.invalid:8883": f"address 127.0.0.1:{central_port}",
        "bridge_cafile /etc/mosquitto/ca/fleet-ca.crt": f"bridge_cafile {pki.ca_file}",
        "bridge_certfile /etc/mosquitto/certs/bridge.crt": f"bridge_certfile {bridge.cert}",
        "bridge_keyfile /etc/mosquitto/certs/bridge.key": f"bridge_keyfile {bridge.key}",
    }
    lines = REGIONAL_CONF.read_text().splitlines()
    for old, new in swaps.items():
        assert lines.count(old) == 1, f"{REGIONAL_CONF} no longer has the line {old!r} once"
        lines = [new if line == old else line for line in lines]
    (root / "data").mkdir(parents=True, exist_ok=True)
    path = root / "mosquitto.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


class RegionalBroker(Broker):
    """A Mosquitto from regional.conf; start/stop/log as the central Broker's."""

    def __init__(self, root: Path, pki: FleetPki, central_port: int) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.pki = pki
        self.port = restartable_port()
        self.conf = render_regional_config(root, self.port, central_port, pki, pki.client(BRIDGE))
        self.log_path = root / "mosquitto.log"
        self.proc = None


def central_broker(root: Path, pki: FleetPki) -> Broker:
    """Central's Mosquitto from the shipped files, its ACL with this bridge's block appended."""
    broker = Broker(root, pki)
    acl = root / "kiosk-fleet.acl"
    acl.write_text(BROKER_ACL.read_text() + "\n" + bridge_acl_block(BRIDGE, [KIOSK, NEIGHBOUR]))
    old, new = f"acl_file {BROKER_ACL}", f"acl_file {acl}"
    text = broker.conf.read_text()
    assert old in text
    broker.conf.write_text(text.replace(old, new))
    return broker


class WanLink:
    """The WAN between the regional broker and central: a forwarding process, SIGKILLed to cut."""

    def __init__(self, target_port: int) -> None:
        self.port = restartable_port()
        self.target = target_port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WAN_LINK), str(self.port), str(self.target)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def listening() -> bool:
            assert self.proc is not None and self.proc.poll() is None, "wan link exited"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_until(listening, 10, "the WAN link listening")

    def cut(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None


class Kiosk:
    """The real kiosk client: its Store, Outbox and FleetClient, on the regional broker."""

    def __init__(self, root: Path, broker: Broker, pki: FleetPki, kiosk_id: str) -> None:
        identity = pki.client(kiosk_id)
        self.kiosk_id = kiosk_id
        self.store = Store(root / kiosk_id / "kiosk.db")
        self.store.open()
        self.outbox = Outbox(self.store, DataKey.load_or_create(root / kiosk_id / "keys" / "k"))
        self.acked: list[str] = []
        self.client = kiosk_client(
            broker,
            pki,
            identity,
            kiosk_id=kiosk_id,
            store=self.store,
            outbox=self.outbox,
            on_record_ack=self.acked.extend,
        )

    def close(self) -> None:
        self.client.stop()
        self.store.close()


class Stream:
    """Records queued in the kiosk's outbox at a steady pace, on a thread, until stopped."""

    def __init__(self, kiosk: Kiosk, per_second: float = 40) -> None:
        self.kiosk = kiosk
        self.interval = 1 / per_second
        self.ids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="record-stream", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(10)

    def wait_for_more(self, count: int, timeout: float = 30) -> None:
        target = len(self.ids) + count
        wait_until(lambda: len(self.ids) >= target, timeout, f"{count} more records queued")

    def _run(self) -> None:
        while not self._stop.is_set():
            record_id = f"rec-{len(self.ids):05d}-{uuid.uuid4().hex[:8]}"
            queue_record(
                self.kiosk.outbox,
                self.kiosk.kiosk_id,
                "ticket",
                {"n": len(self.ids)},
                message_id=record_id,
            )
            self.ids.append(record_id)
            self.kiosk.client.kick()
            self._stop.wait(self.interval)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Central's broker, the WAN link, the regional broker, in that order; all stopped after,
    whatever happened (SIGTERM, then SIGKILL)."""
    pki = FleetPki(tmp_path / "pki")
    central = central_broker(tmp_path / "central", pki)
    link = WanLink(central.port)
    regional = RegionalBroker(tmp_path / "regional", pki, link.port)
    try:
        central.start()
        link.start()
        regional.start()
        yield {"pki": pki, "central": central, "link": link, "regional": regional}
    finally:
        regional.stop()
        link.cut()
        central.stop()


def _bridge_state(peer: Peer) -> str | None:
    states = peer.received(BRIDGE_STATE)
    return states[-1].payload.decode() if states else None


@pytest.mark.broker
@pytest.mark.timeout(240)
def test_wan_cut_and_central_outage_lose_nothing(fleet: dict[str, Any], tmp_path: Path) -> None:
    pki, central, link, regional = (fleet[k] for k in ("pki", "central", "link", "regional"))
    consumer = Peer(central, pki.client(CENTRAL), persistent=True).connect()
    consumer.subscribe("kiosk/v1/#")
    consumer.subscribe("fleet/v1/bridges/#")
    wait_until(lambda: _bridge_state(consumer) == "1", 30, "the bridge up at central")

    kiosk = Kiosk(tmp_path / "kiosks", regional, pki, KIOSK)
    other = Peer(regional, pki.client(OTHER_WARD), persistent=True).connect()
    other.subscribe(f"kiosk/v1/{OTHER_WARD}/cmd/+")
    stream = Stream(kiosk)
    connected_samples: list[bool] = []
    try:
        kiosk.client.start()
        wait_until(lambda: kiosk.client.connected, 10, "the kiosk connected to its regional")
        # Its retained birth crosses the bridge with its retain flag (try_private).
        consumer.wait_for(f"kiosk/v1/{KIOSK}/state", timeout=30)
        # The bridge speaks MQTT 3.1.1: a request's MQTT 5 properties do not cross it, the
        # payload (request_id, reply_to, expires_at: docs/fleet.md) does.
        neighbour = Peer(regional, pki.client(NEIGHBOUR)).connect()
        try:
            reply_to = f"kiosk/v1/{NEIGHBOUR}/res/dossier-status"
            props: Any = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = b"req-1"
            props.ResponseTopic = reply_to
            request = {"request_id": "req-1", "reply_to": reply_to}
            neighbour.publish(
                f"kiosk/v1/{NEIGHBOUR}/req/dossier-status", json.dumps(request), properties=props
            )
        finally:
            neighbour.close()
        crossed = consumer.wait_for(f"kiosk/v1/{NEIGHBOUR}/req/dossier-status", timeout=30)
        assert crossed.json() == request
        assert getattr(crossed.properties, "CorrelationData", None) is None
        # Central's retained revocation list is kept retained at the regional broker too.
        revocations = {"schema": "copy-revocations/1", "codes": ["TEST-CODE"], "certificates": []}
        consumer.publish("fleet/v1/revocations", json.dumps(revocations), retain=True)
        stream.start()
        stream.wait_for_more(40)

        # --- the WAN cut: the forwarding process killed, central still up ---------------
        link.cut()
        wait_until(lambda: _bridge_state(consumer) == "0", 30, "central seeing the bridge down")
        # Central answers while the ward is cut off: a record acknowledgement and a command
        # (unsigned: the kiosk refuses it, and its refusal is the proof it arrived), and a
        # command for a kiosk of another ward, which this bridge must never carry.
        acked_id = "ack-during-cut"
        ack = {
            "schema": "record-ack/1",
            "kiosk_id": KIOSK,
            "ids": [acked_id],
            "time": "2026-01-01T00:00:00+00:00",
        }
        foreign = {"schema": "command/1", "id": "cmd-foreign", "name": "ping"}
        command = {"schema": "command/1", "id": "cmd-during-cut", "name": "ping"}
        consumer.publish(f"kiosk/v1/{OTHER_WARD}/cmd/ping", json.dumps(foreign))
        consumer.publish(f"kiosk/v1/{KIOSK}/ack", json.dumps(ack))
        consumer.publish(f"kiosk/v1/{KIOSK}/cmd/ping", json.dumps(command))
        # A kiosk connecting while the ward is cut off still gets central's retained list.
        late = Peer(regional, pki.client(NEIGHBOUR)).connect()
        try:
            late.subscribe("fleet/v1/revocations")
            got = late.wait_for("fleet/v1/revocations", timeout=10)
            assert got.retain and got.json() == revocations
        finally:
            late.close()
        cut_until = time.monotonic() + 4
        while time.monotonic() < cut_until:
            connected_samples.append(kiosk.client.connected)
            time.sleep(0.1)
        stream.wait_for_more(40)
        backlog = len(stream.ids)
        link.start()
        restored = time.monotonic()

        wait_until(
            lambda: kiosk.acked == [acked_id], 90, "the ack sent during the cut, at the kiosk"
        )
        ack_after = time.monotonic() - restored
        result = consumer.wait_for(
            f"kiosk/v1/{KIOSK}/cmd/ping/result",
            lambda m: m.json().get("id") == command["id"],
            timeout=60,
        ).json()
        assert result["status"] == "refused" and result["reason"] == "unsigned", result
        wait_until(lambda: _bridge_state(consumer) == "1", 60, "the bridge up again")

        # --- central's broker down (clean stop: it saves its store) and back ---------
        central.stop()
        down_until = time.monotonic() + 4
        while time.monotonic() < down_until:
            connected_samples.append(kiosk.client.connected)
            time.sleep(0.1)
        stream.wait_for_more(40)
        central.start()
        wait_until(consumer.client.is_connected, 30, "central's consumer back")
        stream.wait_for_more(40)
        stream.stop()

        expected = set(stream.ids)

        def arrived() -> set[str]:
            return {m.json()["id"] for m in consumer.received(f"kiosk/v1/{KIOSK}/records/ticket")}

        wait_until(lambda: expected <= arrived(), 120, "every record at central")
        arrivals = Counter(
            m.json()["id"] for m in consumer.received(f"kiosk/v1/{KIOSK}/records/ticket")
        )
        duplicates = sum(n - 1 for n in arrivals.values())
        print(
            f"\nregional bridge: {len(expected)} records, {len(arrivals)} distinct at central, "
            f"{duplicates} duplicates (same id), kiosk connects {kiosk.client.status()['connects']}; "
            f"after the link came back, the ack queued at central reached the kiosk in "
            f"{ack_after:.1f} s (records queued by then: {backlog})"
        )
        assert set(arrivals) == expected  # none lost, nothing else
        # The kiosk never lost its regional broker: one connect, connected at every sample.
        assert kiosk.client.status()["connects"] == 1
        assert connected_samples and all(connected_samples)
        # Central's ACL: the other ward's command never crossed this bridge (it was sent before
        # the kiosk's own command, which arrived, on the same ordered session).
        assert other.received(f"kiosk/v1/{OTHER_WARD}/cmd/+") == []
    finally:
        stream.stop()
        kiosk.close()
        other.close()
        consumer.close()


@pytest.mark.broker
@pytest.mark.timeout(240)
def test_regional_broker_killed_during_a_cut_keeps_its_saved_queue(
    fleet: dict[str, Any], tmp_path: Path
) -> None:
    """The bridge's queue of kiosk messages (local_cleansession false, persistence) survives a
    SIGKILL of the regional broker once saved (autosave_interval); the kiosk reconnects to it
    and its outbox sends what it queued meanwhile."""
    pki, central, link, regional = (fleet[k] for k in ("pki", "central", "link", "regional"))
    autosave = float(_conf_value("autosave_interval"))
    consumer = Peer(central, pki.client(CENTRAL), persistent=True).connect()
    consumer.subscribe(f"kiosk/v1/{KIOSK}/records/#")
    consumer.subscribe("fleet/v1/bridges/#")
    wait_until(lambda: _bridge_state(consumer) == "1", 30, "the bridge up at central")
    kiosk = Kiosk(tmp_path / "kiosks", regional, pki, KIOSK)
    before, after = Stream(kiosk), Stream(kiosk)
    try:
        kiosk.client.start()
        wait_until(lambda: kiosk.client.connected, 10, "the kiosk connected to its regional")
        link.cut()
        wait_until(lambda: _bridge_state(consumer) == "0", 30, "central seeing the bridge down")
        before.start()
        before.wait_for_more(60)
        before.stop()
        # Every record acknowledged by the regional broker (gone from the kiosk's outbox) ...
        wait_until(lambda: not kiosk.outbox.pending(1), 30, "the kiosk's outbox empty")
        # ... and saved by it: two autosave intervals, then a real kill.
        time.sleep(2 * autosave + 1)
        assert regional.proc is not None
        regional.proc.send_signal(signal.SIGKILL)
        regional.proc.wait(5)
        regional.proc = None
        after.start()  # the kiosk keeps serving; its outbox holds these
        after.wait_for_more(30)
        regional.start()
        after.wait_for_more(30)
        after.stop()
        link.start()

        expected = set(before.ids) | set(after.ids)

        def arrived() -> set[str]:
            return {m.json()["id"] for m in consumer.received(f"kiosk/v1/{KIOSK}/records/#")}

        wait_until(lambda: expected <= arrived(), 120, "every record at central")
        assert arrived() == expected
        assert kiosk.client.status()["connects"] >= 2  # it did lose the regional broker
    finally:
        before.stop()
        after.stop()
        kiosk.close()
        consumer.close()


def test_bridge_acl_block_lists_each_kiosk_and_refuses_topic_characters() -> None:
    block = bridge_acl_block("fleet-bridge-X", ["K-2", "K-1", "K-1"]).splitlines()
    assert block[1] == "user fleet-bridge-X"
    # Per kiosk: every topic a kiosk writes and reads (regional.acl's pattern lines), no more.
    kiosk_lines = [line for line in block if "/K-1/" in line]
    regional = [
        line.replace("pattern ", "topic ").replace("%u", "K-1")
        for line in REGIONAL_ACL.read_text().splitlines()
        if line.startswith("pattern ") and "%u" in line
    ]
    assert sorted(kiosk_lines) == sorted(regional)
    assert sum("/K-2/" in line for line in block) == len(regional)
    for bad in ("K/1", "K+1", "#", "", "K 1"):
        with pytest.raises(ValueError):
            bridge_acl_block("fleet-bridge-X", [bad])
