"""Several console workers on an MQTT 5 shared subscription (docs/fleet-console.md, "Several
workers"): a real Mosquitto from config/mosquitto, a real PostgreSQL, three `kiosk-fleet worker`
processes, each its own certificate (CN fleet-worker-<n>) and persistent session. Simulated
kiosks stream 5,000 records at QoS 1; one worker is SIGKILLed in the middle and started again
under the same identity (what systemd's Restart= does with kiosk-fleet-worker@.service). At the
end every record is stored exactly once and acknowledged to its kiosk (record-ack/1).

The singletons (alert evaluation, revocation list, housekeeping) run in every worker here; the
alert rules are switched off by config (interval of an hour) and the sample dossiers are not
seeded: leader election is another part of issue 20."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol.mqtt import new_client, tls_context
from tests.fleet_console_helpers import Postgres, running_postgres
from tests.mqtt_broker import (
    BROKER_ACL,
    REPO,
    Broker,
    FleetPki,
    Identity,
    Peer,
    running_broker,
    wait_until,
)

RECORDS = 5000
KIOSKS = 10
WORKERS = 3
GROUP = "workers"
DEADLINE_S = 240.0  # the whole stream stored and acknowledged; it takes ~20 s here


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


def run(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", *args],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[FleetPki, Broker, Path]]:
    """The operator's CA (`kiosk-ca init`), a broker it signed, the shipped config and ACL."""
    ca_dir = tmp_path / "ca"
    run("provisioning.ca", "--ca-dir", str(ca_dir), "init", cwd=tmp_path)
    key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    pki = FleetPki(tmp_path / "pki", ca=(key, cert))
    with running_broker(tmp_path / "broker", pki) as broker:
        yield pki, broker, ca_dir


def write_config(root: Path, broker: Broker, pki: FleetPki, pg: Postgres) -> Path:
    """One config for every worker; each one's identity comes from the environment, as
    systemd/kiosk-fleet-worker@.service gives it."""
    path = root / "fleet.toml"
    path.write_text(
        f"""
[store]
url = "{pg.url}"
data_key_file = "{root / "data.key"}"

[mqtt]
host = "localhost"
port = {broker.port}
ca_file = "{pki.ca_file}"
shared_group = "{GROUP}"
batch_max = 200

[alerts]
interval_s = 3600.0

[web]
secret_key_file = "{root / "secret.key"}"

[provisioning]
secrets_key_file = "{root / "claims.key"}"

[dossiers]
seed_samples = false
"""
    )
    return path


class Worker:
    """`kiosk-fleet worker` as a real process with the identity fleet-worker-<n>."""

    def __init__(self, n: int, config: Path, me: Identity, root: Path) -> None:
        self.n = n
        self.config = config
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "FLEET_MQTT__CLIENT_ID": me.cn,
            "FLEET_MQTT__CERT_FILE": str(me.cert),
            "FLEET_MQTT__KEY_FILE": str(me.key),
        }
        self.root = root
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / f"worker-{self.n}.{self.runs}.log"

    def start(self) -> Worker:
        self.runs += 1
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fleet.cli", "-c", str(self.config), "worker"],
                env=self.env,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill_mid_batch(self, freeze_s: float = 0.5) -> None:
        """SIGSTOP, then SIGKILL: frozen while the stream flows, the worker holds messages the
        broker sent and it never acknowledged (up to max_inflight_messages), and dies with
        them."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        time.sleep(freeze_s)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return None


class AckListener:
    """A kiosk's view of central's record-ack/1 (its own ack topic)."""

    def __init__(self, broker: Broker, pki: FleetPki, kiosk_id: str) -> None:
        self.kiosk_id = kiosk_id
        self.peer = Peer(broker, pki.client(kiosk_id)).connect()
        self.peer.subscribe(f"kiosk/v1/{kiosk_id}/ack")

    def acked(self) -> set[str]:
        ids: set[str] = set()
        for m in self.peer.received(f"kiosk/v1/{self.kiosk_id}/ack"):
            body = m.json()
            assert body["schema"] == "record-ack/1" and body["kiosk_id"] == self.kiosk_id
            ids.update(body["ids"])
        return ids


def stored(pg: Postgres) -> tuple[int, int, int]:
    """(rows, distinct ids, deliveries) of the records table."""
    with psycopg.connect(
        host="127.0.0.1", port=pg.port, user=pg.user, dbname="fleet", connect_timeout=5
    ) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT id), coalesce(sum(deliveries), 0) FROM records"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_the_acl_gives_every_worker_the_same_rights() -> None:
    """The worker blocks of kiosk-fleet.acl are copies: a fifth one is added the same way."""
    blocks = re.findall(
        r"^user (fleet-worker-\d+)\n((?:topic .*\n)+)", BROKER_ACL.read_text(), re.M
    )
    assert [name for name, _ in blocks] == [f"fleet-worker-{n}" for n in range(1, 5)]
    assert len({rights for _, rights in blocks}) == 1
    assert "topic read kiosk/v1/+/records/#" in blocks[0][1]


def test_three_workers_share_the_stream_and_a_killed_one_loses_nothing(
    tmp_path: Path, fleet: tuple[FleetPki, Broker, Path], postgres: Postgres
) -> None:
    fleet_pki, broker, ca_dir = fleet
    config = write_config(tmp_path, broker, fleet_pki, postgres)
    # The operator's steps: the schema at the newest revision, one certificate per worker.
    run("fleet.cli", "-c", str(config), "init-db", cwd=tmp_path)
    certs = tmp_path / "workers"
    identities = []
    for n in range(1, WORKERS + 1):
        name = f"fleet-worker-{n}"
        run("provisioning.ca", "--ca-dir", str(ca_dir), "central", name, "--out-dir", str(certs),
            cwd=tmp_path)  # fmt: skip
        identities.append(Identity(name, certs / f"{name}.crt", certs / f"{name}.key"))
    workers = [Worker(n, config, me, tmp_path) for n, me in enumerate(identities, start=1)]
    kiosk_ids = [f"HN-WORKERS-{k:02d}" for k in range(KIOSKS)]
    listeners: list[AckListener] = []
    publishers: list[Peer] = []
    sent: dict[str, list[str]] = {k: [] for k in kiosk_ids}
    try:
        for w in workers:
            w.start()
        # Each worker announces itself on its own status topic once subscribed.
        monitor = Peer(broker, fleet_pki.client("fleet-central")).connect()
        publishers.append(monitor)
        monitor.subscribe("fleet/v1/workers/+/status")
        for w in workers:
            monitor.wait_for(
                f"fleet/v1/workers/fleet-worker-{w.n}/status",
                lambda m: m.json()["state"] == "online",
                timeout=60,
            )
        listeners = [AckListener(broker, fleet_pki, k) for k in kiosk_ids]
        # The kiosks' side: another connection per kiosk id would take over the listener's
        # session (client id = CN), so the listener's own client publishes.
        publishers += [lst.peer for lst in listeners]

        def stream(peer: Peer, kiosk_id: str) -> None:
            for i in range(RECORDS // KIOSKS):
                rid = str(uuid.uuid4())
                body = {
                    "schema": "record/1",
                    "kiosk_id": kiosk_id,
                    "id": rid,
                    "seq": i + 1,
                    "queued_at": "2026-12-06T08:00:00+00:00",
                    "kind": "ticket",
                    "time": "2026-12-06T08:00:00+00:00",
                    "data": {"n": i},
                }
                sent[kiosk_id].append(rid)
                peer.client.publish(f"kiosk/v1/{kiosk_id}/records/ticket", json.dumps(body), qos=1)
                if i % 25 == 24:
                    time.sleep(0.05)  # a stream over several seconds, not one burst

        threads = [
            threading.Thread(target=stream, args=(lst.peer, lst.kiosk_id), daemon=True)
            for lst in listeners
        ]
        for t in threads:
            t.start()
        # Mid-stream: a third of the records stored, the rest still coming.
        wait_until(lambda: stored(postgres)[0] >= RECORDS // 3, 120, "a third stored")
        victim = workers[1]
        victim.kill_mid_batch()
        killed_at = stored(postgres)[0]
        time.sleep(1.0)  # systemd's RestartSec=1
        victim.start()
        for t in threads:
            t.join(120)
        assert killed_at < RECORDS, "the stream was over before the kill"

        def done() -> bool:
            rows = stored(postgres)[0]
            return rows >= RECORDS and all(set(sent[k]) <= lst.acked() for k, lst in
                                           zip(kiosk_ids, listeners, strict=True))  # fmt: skip

        wait_until(done, DEADLINE_S, "every record stored and acknowledged")
        rows, distinct, deliveries = stored(postgres)
        assert (rows, distinct) == (RECORDS, RECORDS), "stored exactly once"
        with psycopg.connect(
            host="127.0.0.1", port=postgres.port, user=postgres.user, dbname="fleet"
        ) as conn:
            ids = {r[0] for r in conn.execute("SELECT id FROM records")}
        assert ids == {rid for k in kiosk_ids for rid in sent[k]}
        for k, lst in zip(kiosk_ids, listeners, strict=True):
            assert lst.acked() == set(sent[k]), f"{k}: acknowledged ids differ from those sent"
        # Requests go round the group too: any worker answers, once, on the kiosk's own topic.
        asker = listeners[0].peer
        asker.subscribe(f"kiosk/v1/{kiosk_ids[0]}/res/dossier-status")
        asked = [uuid.uuid4().hex for _ in range(2 * WORKERS)]
        for request_id in asked:
            now = dt.datetime.now(dt.UTC)
            request = {
                "schema": "dossier-status-request/1",
                "request_id": request_id,
                "kiosk_id": kiosk_ids[0],
                "code": "H26.22-261115-0015",
                "time": now.isoformat(),
                "expires_at": (now + dt.timedelta(seconds=30)).isoformat(),
                "reply_to": f"kiosk/v1/{kiosk_ids[0]}/res/dossier-status",
            }
            asker.publish(f"kiosk/v1/{kiosk_ids[0]}/req/dossier-status", json.dumps(request))

        def answers() -> list[str]:
            return [
                m.json()["request_id"]
                for m in asker.received(f"kiosk/v1/{kiosk_ids[0]}/res/dossier-status")
            ]

        wait_until(lambda: len(answers()) >= len(asked), 30, "every request answered")
        time.sleep(0.5)
        assert sorted(answers()) == sorted(asked), "each request answered exactly once"
    finally:
        codes = [w.stop() for w in workers]
        for peer in publishers:
            with contextlib.suppress(Exception):
                peer.close()
    assert codes == [0] * WORKERS, "\n".join(w.log() for w in workers)
    # Every worker took a share; the restarted one resumed its session: the broker sent it what
    # it had in flight when killed (DUP) and what came for it meanwhile.
    figures = {}
    for w in workers:
        m = re.search(r"received=(\d+) stored=(\d+) duplicates=(\d+) redelivered=(\d+)", w.log())
        assert m, w.log()
        figures[w.n] = tuple(int(x) for x in m.groups())
        assert figures[w.n][0] > 0, f"worker {w.n} took no share"
    print(f"\nkilled at {killed_at} stored; per worker (received, stored, duplicates, "
          f"redelivered) after the restart: {figures}; deliveries {deliveries}")  # fmt: skip
    assert figures[2][3] > 0, "the killed worker had nothing in flight: no redelivery seen"


class Member:
    """One member of a shared subscription that acknowledges by hand (as the console does)."""

    def __init__(self, broker: Broker, pki: FleetPki, cn: str, *, expiry: int, ack: bool) -> None:
        self.got: list[tuple[str, bool]] = []
        self.ack = ack
        self.client = new_client(
            cn, tls=tls_context(pki.ca_file, pki.client(cn).cert, pki.client(cn).key)
        )
        self.client.manual_ack_set(True)
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = expiry
        self.client.connect("localhost", broker.port, clean_start=False, properties=props)
        self.client.loop_start()
        wait_until(self.client.is_connected, 10, f"{cn} connected")
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.subscribe("$share/probe/kiosk/v1/+/records/+", 1)
        assert subscribed.wait(10)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.got.append((message.payload.decode(), bool(message.dup)))
        if self.ack:
            client.ack(message.mid, message.qos)

    def payloads(self) -> list[str]:
        return [p for p, _ in self.got]

    def kill(self) -> None:
        """The process dies: its socket closes with no DISCONNECT."""
        sock = self.client.socket()
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)
        self.client.loop_stop()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
            self.client.loop_stop()


@pytest.mark.parametrize("expiry", [0, 3600], ids=["clean-session", "persistent-session"])
def test_what_mosquitto_does_with_a_killed_members_messages(
    broker: Broker, fleet_pki: FleetPki, expiry: int
) -> None:
    """Why workers keep persistent sessions (the shipped broker config): a member of a shared
    subscription is killed holding 5 QoS 1 messages it has not acknowledged. Mosquitto never
    hands them to the other member: with a session expiry of 0 they are gone; with a persistent
    session they wait, with the 5 routed to it while it was away, until a client with the same
    id connects, and arrive with DUP set."""
    a = Member(broker, fleet_pki, "fleet-worker-1", expiry=expiry, ack=False)
    b = Member(broker, fleet_pki, "fleet-worker-2", expiry=3600, ack=True)
    kiosk = Peer(broker, fleet_pki.client("HN-PROBE-01")).connect()
    members = [a, b]
    try:
        for i in range(10):
            kiosk.publish("kiosk/v1/HN-PROBE-01/records/x", f"r{i}")
        wait_until(lambda: len(a.got) + len(b.got) == 10, 10, "10 delivered")
        held = a.payloads()
        assert len(held) == 5, "round robin between the two members"
        a.kill()
        time.sleep(0.3)
        for i in range(10, 20):
            kiosk.publish("kiosk/v1/HN-PROBE-01/records/x", f"r{i}")
        time.sleep(1.0)
        back = Member(broker, fleet_pki, "fleet-worker-1", expiry=expiry, ack=True)
        members.append(back)
        time.sleep(1.0)
        assert not set(held) & set(b.payloads()), "the killed member's messages went to b"
        if expiry == 0:
            assert back.got == []
            assert len(b.payloads()) == 15  # every later message, none of the 5 held
        else:
            assert back.got[:5] == [(p, True) for p in held]  # in flight: again, DUP
            assert len(back.got) == 10 and len(b.payloads()) == 10
            everything = set(b.payloads()) | set(back.payloads())
            assert everything == {f"r{i}" for i in range(20)}
    finally:
        for m in members:
            m.close()
        kiosk.close()


def test_kiosk_ca_issues_central_identities_only(tmp_path: Path) -> None:
    """`kiosk-ca central` makes a client certificate for fleet-<name>, recorded (revocable);
    a kiosk id is not a central identity."""
    from provisioning.ca import CaError, CertificateAuthority

    ca = CertificateAuthority(tmp_path / "ca")
    ca.init()
    pem, key_pem = ca.issue_central("fleet-worker-7")
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.subject.rfc4514_string() == "CN=fleet-worker-7"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert ca.issued()[format(cert.serial_number, "x")]["cn"] == "fleet-worker-7"
    for bad in ("HN-TAYHO-01", "fleet-", "worker-1", "fleet-Worker"):
        with pytest.raises(CaError):
            ca.issue_central(bad)
