"""The fleet console against a real Mosquitto (config/mosquitto, mTLS): a simulated fleet
shows up, offline and paper-out alerts, a signed command round-trips to a real kiosk client,
records are stored once and acknowledged, the webhook and /metrics."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edge.fleet import FleetClient, queue_record
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from fleet.config import (
    AlertsSection,
    FleetConfig,
    MqttSection,
    ProvisioningSection,
    StoreSection,
    WebSection,
)
from fleet.console import Console, build_console
from fleet.operators import create_operator
from fleet.web import create_app
from tests.fleet_console_helpers import Postgres, SimKiosk, running_postgres
from tests.mqtt_broker import CENTRAL, Broker, FleetPki, Peer, assert_valid, wait_until

PASSWORD = "mật-khẩu-dài-1"


class Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", server.received  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def console_config(
    tmp_path: Path, broker: Broker, pki: FleetPki, *, url: str | None = None, **alerts: Any
) -> FleetConfig:
    me = pki.client(CENTRAL)
    return FleetConfig(
        store=StoreSection(
            url=url or f"sqlite:///{tmp_path / 'fleet.db'}", data_key_file=tmp_path / "data.key"
        ),
        mqtt=MqttSection(
            host="localhost",
            port=broker.port,
            ca_file=pki.ca_file,
            cert_file=me.cert,
            key_file=me.key,
            batch_max=200,
        ),
        alerts=AlertsSection(interval_s=0.2, **alerts),
        # Served over plain HTTP on the loopback (the browser test): say so explicitly.
        web=WebSection(secret_key_file=tmp_path / "secret.key", cookie_secure=False),
        provisioning=ProvisioningSection(secrets_key_file=tmp_path / "claims.key"),
    )


@pytest.fixture
def make_console(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki
) -> Iterator[Callable[..., Console]]:
    made: list[Console] = []

    def make(**kw: Any) -> Console:
        console = build_console(console_config(tmp_path, broker, fleet_pki, **kw))
        console.start()
        made.append(console)
        assert console.ingest.wait_connected(10), "console did not connect"
        return console

    yield make
    for console in made:
        console.stop()


@pytest.fixture
def sims(broker: Broker, fleet_pki: FleetPki) -> Iterator[Callable[[str], SimKiosk]]:
    made: list[SimKiosk] = []

    def make(kiosk_id: str) -> SimKiosk:
        sim = SimKiosk(broker, fleet_pki.client(kiosk_id)).start()
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.close()


class RealKiosk:
    """edge's own FleetClient with its store and outbox, as the daemon runs it."""

    def __init__(
        self,
        root: Path,
        broker: Broker,
        pki: FleetPki,
        kiosk_id: str,
        trust_dir: Path | None = None,
    ) -> None:
        self.kiosk_id = kiosk_id
        self.store = Store(root / kiosk_id / "kiosk.db")
        self.store.open()
        self.outbox = Outbox(self.store, DataKey.load_or_create(root / kiosk_id / "k" / "k"))
        me = pki.client(kiosk_id)
        self.locked = False

        def lock(args: dict[str, Any]) -> dict[str, Any]:
            self.locked = True
            return {"locked": True}

        self.cert_file, self.key_file = (
            root / kiosk_id / "client.crt",
            root / kiosk_id / "client.key",
        )
        self.cert_file.write_bytes(me.cert.read_bytes())
        self.key_file.write_bytes(me.key.read_bytes())

        def rotate(args: dict[str, Any]) -> dict[str, Any]:  # as edge/app.py does it
            from edge.fleet.certificates import install_certificate, start_rotation

            if "certificate" not in args:
                return {"csr": start_rotation(root / kiosk_id, kiosk_id)}
            return install_certificate(
                args["certificate"],
                state_dir=root / kiosk_id,
                kiosk_id=kiosk_id,
                ca_file=pki.ca_file,
                cert_file=self.cert_file,
                key_file=self.key_file,
            )

        self.revocation_file = root / kiosk_id / "copies" / "revoked.json"

        def update_revocations(args: dict[str, Any]) -> dict[str, Any]:  # as edge/app.py
            from edge.copies.verify import write_revocations

            return write_revocations(self.revocation_file, args.get("revocations"))

        self.acked: list[str] = []  # what the kiosk's own ack handling hands the daemon
        self.revocation_lists: list[dict[str, Any]] = []
        self.client = FleetClient(
            kiosk_id=kiosk_id,
            store=self.store,
            outbox=self.outbox,
            host="localhost",
            port=broker.port,
            ca_file=pki.ca_file,
            cert_file=me.cert,
            key_file=me.key,
            reconnect_min_s=0.05,
            reconnect_max_s=0.5,
            telemetry_interval_s=3600,
            trust_dir=trust_dir,
            capabilities=["printer"],
            telemetry_provider=lambda: {
                "printer": {"online": True, "paper": "ok"},
                "camera": {"ok": True},
            },
            commands={
                "lock": lock,
                "ping": lambda a: {"pong": a.get("n", 0)},
                "rotate-certificate": rotate,
                "update-revocations": update_revocations,
            },
            on_record_ack=self.acked.extend,
            on_revocations=self.revocation_lists.append,
        )
        self.client.start()

    def close(self) -> None:
        self.client.stop()
        self.store.close()


@pytest.fixture
def real_kiosk(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki
) -> Iterator[Callable[..., RealKiosk]]:
    made: list[RealKiosk] = []

    def make(kiosk_id: str, **kw: Any) -> RealKiosk:
        k = RealKiosk(tmp_path / "kiosks", broker, fleet_pki, kiosk_id, **kw)
        made.append(k)
        return k

    yield make
    for k in made:
        k.close()


def login(console: Console, operator: str = "nguyen.van.an") -> tuple[Any, str]:
    """A logged-in Flask test client (through the real login form, CSRF on)."""
    if console.store.operator(operator) is None:
        create_operator(console.store, operator, "Nguyễn Văn An", PASSWORD)
    app = create_app(console)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post(
        "/login", data={"csrf_token": token, "operator": operator, "password": PASSWORD}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return client, token


def csrf_of(client: Any, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


# --- tests ------------------------------------------------------------------------------


def test_a_simulated_fleet_shows_up_and_a_dropped_kiosk_raises_offline(
    make_console: Callable[..., Console],
    sims: Callable[[str], SimKiosk],
    real_kiosk: Callable[..., RealKiosk],
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    url, posted = webhook
    console = make_console(offline_after_s=0.5, webhook_url=url)
    fleet = [sims(f"HN-TAYHO-{i:02d}") for i in range(1, 6)]
    real = real_kiosk("HN-QUANGAN-01")
    for sim in fleet:
        sim.telemetry(cpu=50 + len(sim.kiosk_id) % 7)
    ids = sorted([s.kiosk_id for s in fleet] + [real.kiosk_id])
    wait_until(
        lambda: (
            sorted(k["kiosk_id"] for k in console.store.kiosks() if k["state"] == "online") == ids
        ),
        10,
        "every kiosk online",
    )
    wait_until(lambda: console.store.kiosk(real.kiosk_id)["telemetry_at"], 10, "telemetry")
    client, _ = login(console)
    page = client.get("/").get_data(as_text=True)
    for kiosk_id in ids:
        assert f'data-kiosk="{kiosk_id}"' in page
    assert 'id="count-online">6 trực tuyến' in page
    site_page = client.get("/?site=HN-QUANGAN").get_data(as_text=True)
    assert 'data-kiosk="HN-QUANGAN-01"' in site_page and "HN-TAYHO-01" not in site_page

    fleet[2].drop()  # no clean stop: the broker publishes its will
    gone = fleet[2].kiosk_id
    wait_until(lambda: console.store.kiosk(gone)["state"] == "offline", 10, "will seen")
    alert = wait_until(
        lambda: [a for a in console.store.open_alerts() if a["rule"] == "offline"],
        10,
        "offline alert",
    )
    assert [a["kiosk_id"] for a in alert] == [gone]
    notice = wait_until(lambda: [p for p in posted if p["rule"] == "offline"], 10, "webhook")
    assert notice[0]["event"] == "raised" and notice[0]["kiosk_id"] == gone
    page = client.get("/alerts").get_data(as_text=True)
    assert gone in page and "Mất kết nối" in page
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'kiosk_online{{kiosk="{gone}",site="HN-TAYHO"}} 0.0' in metrics
    assert f'fleet_alert{{kiosk="{gone}",rule="offline",severity="error"}} 1.0' in metrics
    # It comes back: the alert clears and the webhook says so.
    back = SimKiosk(fleet[2].peer.broker, fleet[2].peer.identity).start()
    try:
        wait_until(
            lambda: not [a for a in console.store.open_alerts() if a["rule"] == "offline"],
            10,
            "offline alert cleared",
        )
        wait_until(lambda: [p for p in posted if p["event"] == "cleared"], 10, "cleared notice")
    finally:
        back.close()


def test_paper_out_and_other_telemetry_rules_raise_and_clear(
    make_console: Callable[..., Console],
    sims: Callable[[str], SimKiosk],
) -> None:
    console = make_console()
    sim = sims("HN-TAYHO-07")
    sim.telemetry(paper="ok")
    wait_until(lambda: console.store.kiosk("HN-TAYHO-07"), 10, "kiosk seen")
    sim.event("printer.paper_out", "error", {"printer": "usb"})
    wait_until(
        lambda: {a["rule"] for a in console.store.open_alerts()} == {"paper_out"},
        10,
        "paper-out alert",
    )
    sim.telemetry(paper="ok", cpu=85.0, disk_pct=93.0, camera_ok=False)
    wait_until(
        lambda: (
            {a["rule"] for a in console.store.open_alerts()} == {"cpu_temp", "disk", "camera_lost"}
        ),
        10,
        "paper cleared, three others raised",
    )
    for _ in range(3):
        sim.event("identity.face_failures", "warning", {"count": 5})
    wait_until(
        lambda: "face_failures" in {a["rule"] for a in console.store.open_alerts()},
        10,
        "face failures alert",
    )
    sim.event("tamper.opened", "critical")
    wait_until(
        lambda: "tamper" in {a["rule"] for a in console.store.open_alerts()}, 10, "tamper alert"
    )


def test_a_signed_command_round_trips_to_a_real_kiosk_and_is_logged(
    tmp_path: Path,
    make_console: Callable[..., Console],
    real_kiosk: Callable[..., RealKiosk],
) -> None:
    console = make_console()
    public = create_operator(console.store, "tran.thi.binh", "Trần Thị Bình", PASSWORD)
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "tran.thi.binh.pem").write_text(public)
    kiosk = real_kiosk("HN-TAYHO-09", trust_dir=trust)
    wait_until(
        lambda: (console.store.kiosk("HN-TAYHO-09") or {}).get("state") == "online",
        10,
        "kiosk online",
    )
    client, _ = login(console, "tran.thi.binh")
    token = csrf_of(client, "/commands")
    response = client.post(
        "/commands",
        data={
            "csrf_token": token,
            "kiosk": "HN-TAYHO-09",
            "name": "lock",
            "args": "",
            "ttl": "120",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    row = wait_until(
        lambda: next((c for c in console.store.commands() if c["status"] != "sent"), None),
        10,
        "command result",
    )
    assert row["status"] == "ok" and row["result"] == {"locked": True}, row
    assert row["operator"] == "tran.thi.binh" and kiosk.locked
    assert console.store.kiosk("HN-TAYHO-09")["locked"] is True
    log = client.get("/commands").get_data(as_text=True)
    assert "tran.thi.binh" in log and "Thành công" in log
    # Without CSRF the form is refused, and nothing is sent.
    before = len(console.store.commands())
    assert (
        client.post("/commands", data={"kiosk": "HN-TAYHO-09", "name": "lock"}).status_code == 400
    )
    assert len(console.store.commands()) == before
    # A kiosk that does not trust the operator refuses, and the console shows why.
    (trust / "tran.thi.binh.pem").unlink()
    token = csrf_of(client, "/commands")
    client.post(
        "/commands",
        data={
            "csrf_token": token,
            "kiosk": "HN-TAYHO-09",
            "name": "collect-logs",
            "args": '{"lines": 7}',
        },
    )
    refused = wait_until(
        lambda: next(
            (
                c
                for c in console.store.commands()
                if c["name"] == "collect-logs" and c["status"] != "sent"
            ),
            None,
        ),
        10,
        "refusal",
    )
    assert (refused["status"], refused["reason"]) == ("refused", "unknown_operator")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fleet.db'}"
        return
    with running_postgres() as pg:
        yield pg.url


def test_records_are_stored_once_when_redelivered_and_acknowledged(
    store_url: str,
    make_console: Callable[..., Console],
    sims: Callable[[str], SimKiosk],
    real_kiosk: Callable[..., RealKiosk],
    broker: Broker,
    fleet_pki: FleetPki,
) -> None:
    console = make_console(url=store_url)
    sim = sims("HN-TAYHO-11")
    sim.peer.subscribe("kiosk/v1/HN-TAYHO-11/ack")
    first = sim.record("copy", {"code": "HN-A-0001", "pages": 2}, message_id="rec-1")
    sim.record("ticket", {"number": "B-027"}, message_id="rec-2")
    sim.resend("records/copy", first)  # a PUBACK lost: the same id again
    sim.resend("records/copy", first)
    wait_until(lambda: console.store.count_records() == 2, 10, "two records stored")
    wait_until(
        lambda: sum(r["deliveries"] for r in console.store.records()) == 4,
        10,
        "redeliveries counted",
    )
    rows = {r["id"]: r for r in console.store.records(with_data=True)}
    assert rows["rec-1"]["data"] == {"code": "HN-A-0001", "pages": 2}
    acks = wait_until(
        lambda: [
            m.json()
            for m in sim.peer.received("kiosk/v1/HN-TAYHO-11/ack")
            if "rec-1" in m.json()["ids"]
        ],
        10,
        "ack for rec-1",
    )
    assert acks[0]["schema"] == "record-ack/1"
    assert_valid(acks[0], "record-ack")
    from edge.fleet.inbox import parse_record_ack

    assert "rec-1" in parse_record_ack(json.dumps(acks[0]).encode(), "HN-TAYHO-11")
    # A real kiosk's outbox: the console stores each record once and the outbox empties.
    kiosk = real_kiosk("HN-TAYHO-12")
    for i in range(20):
        queue_record(kiosk.outbox, kiosk.kiosk_id, "copy", {"n": i}, message_id=f"K12-{i}")
    kiosk.client.kick()
    wait_until(lambda: kiosk.outbox.depth()["record"] == 0, 15, "outbox drained")
    wait_until(lambda: len(console.store.records(kiosk_id="HN-TAYHO-12")) == 20, 10, "stored")
    # The console restarts: nothing is lost, nothing doubled (records from a second kiosk
    # arrive while it is away and are delivered from its persistent session).
    console.stop()
    for i in range(20, 30):
        queue_record(kiosk.outbox, kiosk.kiosk_id, "copy", {"n": i}, message_id=f"K12-{i}")
    kiosk.client.kick()
    wait_until(lambda: kiosk.outbox.depth()["record"] == 0, 15, "outbox drained offline")
    again = make_console(url=store_url)
    wait_until(
        lambda: len(again.store.records(kiosk_id="HN-TAYHO-12")) == 30,
        15,
        "queued records delivered after the restart",
    )
    assert sorted(
        r["data"]["n"] for r in again.store.records(kiosk_id="HN-TAYHO-12", with_data=True)
    ) == list(range(30))


def test_central_birth_makes_connected_kiosks_republish_state(
    make_console: Callable[..., Console],
    real_kiosk: Callable[..., RealKiosk],
    broker: Broker,
    fleet_pki: FleetPki,
) -> None:
    kiosk = real_kiosk("HN-TAYHO-13")
    wait_until(lambda: kiosk.client.connected, 10, "kiosk connected")
    watcher = Peer(broker, fleet_pki.client("HN-TAYHO-13-W")).connect()
    try:
        status = watcher.subscribe("fleet/v1/status")
        assert status
        console = make_console()
        announced = watcher.wait_for("fleet/v1/status", lambda m: not m.retain)
        assert json.loads(announced.payload)["state"] == "online"
        # The retained birth reaches the console on subscribing; the live re-publish after
        # central's announcement is the second state message.
        wait_until(
            lambda: console.ingest.stats.by_kind.get("state", 0) >= 2,
            10,
            "state re-published after central's birth",
        )
    finally:
        watcher.close()


def test_postgres_fixture_is_real(tmp_path: Path) -> None:
    with running_postgres() as pg:
        assert isinstance(pg, Postgres)
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=pg.port, user=pg.user, dbname="fleet") as c:
            assert c.execute("SHOW server_version").fetchone()[0].startswith("15")
        pid = pg.proc.pid
    assert pg.proc is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_revocations_reach_kiosks_retained_as_json_and_as_a_signed_command(
    tmp_path: Path,
    make_console: Callable[..., Console],
    real_kiosk: Callable[..., RealKiosk],
    broker: Broker,
    fleet_pki: FleetPki,
) -> None:
    from edge.fleet.inbox import parse_revocation_list

    console = make_console()
    public = create_operator(console.store, "nguyen.van.an", "Nguyễn Văn An", PASSWORD)
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "nguyen.van.an.pem").write_text(public)
    kiosk = real_kiosk("HN-TAYHO-30", trust_dir=trust)
    wait_until(lambda: kiosk.client.subscribed, 10, "kiosk subscribed")
    client, _ = login(console)
    token = csrf_of(client, "/revocations")
    response = client.post(
        "/revocations",
        data={
            "csrf_token": token,
            "kind": "code",
            "code": "hn-a-261123-0001-x",
            "reason": "Cấp nhầm hồ sơ",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    client.post("/revocations", data={"csrf_token": token, "kind": "certificate", "code": "5F3A01"})
    # The retained list reaches the kiosk's own client, which checks it with its own parser.
    got = wait_until(
        lambda: [d for d in kiosk.revocation_lists if d["certificates"]],
        10,
        "the retained list at the kiosk",
    )[-1]
    assert got["codes"] == [{"code": "HN-A-261123-0001-X", "reason": "Cấp nhầm hồ sơ"}]
    assert got["certificates"] == [{"serial": "5f3a01"}]
    # A bad serial is refused with a message, nothing stored.
    bad = client.post(
        "/revocations", data={"csrf_token": token, "kind": "certificate", "code": "not-hex"}
    )
    assert bad.status_code == 400 and "hex" in bad.get_data(as_text=True)
    # Public over HTTP, without a login, for anyone verifying a copy; the same document.
    listing = create_app(console).test_client().get("/revocations.json").get_json()
    assert_valid(listing, "copy-revocations")
    assert listing["codes"] == got["codes"] and listing["certificates"] == got["certificates"]
    # "Send the list again": the signed command, installed with edge's own code.
    client.post("/revocations", data={"csrf_token": token, "kind": "code", "push": "1"})
    wait_until(lambda: kiosk.revocation_file.exists(), 10, "file installed by the command")
    installed = json.loads(kiosk.revocation_file.read_text())
    assert installed["codes"] == got["codes"] and installed["certificates"] == got["certificates"]
    sent = [c for c in console.store.commands() if c["name"] == "update-revocations"]
    wait_until(lambda: all(c["status"] == "ok" for c in console.store.commands()), 10, "results")
    assert [c["operator"] for c in sent] == ["nguyen.van.an"]
    # Retained for kiosks that connect later (the ACL lets them read that topic) ...
    peer = Peer(broker, fleet_pki.client("HN-TAYHO-31")).connect()
    try:
        peer.subscribe("fleet/v1/revocations")
        retained = peer.wait_for("fleet/v1/revocations", lambda m: m.retain)
        later = parse_revocation_list(retained.payload)
        assert later["codes"] == got["codes"]
        # ... but a kiosk cannot read another kiosk's record acknowledgements.
        peer.subscribe("kiosk/v1/HN-TAYHO-32/ack")
        other = SimKiosk(broker, fleet_pki.client("HN-TAYHO-32")).start()
        try:
            other.peer.subscribe("kiosk/v1/HN-TAYHO-32/ack")
            other.record("copy", {"n": 1}, message_id="r-32")
            other.peer.wait_for("kiosk/v1/HN-TAYHO-32/ack")
            assert peer.received("kiosk/v1/HN-TAYHO-32/ack") == []
        finally:
            other.close()
    finally:
        peer.close()


def test_certificate_rotation_is_finished_by_the_console_with_the_center_ca(
    tmp_path: Path,
    make_console: Callable[..., Console],
    real_kiosk: Callable[..., RealKiosk],
    fleet_pki: FleetPki,
) -> None:
    from cryptography import x509

    from provisioning.ca import CertificateAuthority

    console = make_console()
    ca_cert = x509.load_pem_x509_certificate(fleet_pki.ca_file.read_bytes())
    console.ca = CertificateAuthority.adopt(tmp_path / "ca", fleet_pki._ca_key, ca_cert)
    public = create_operator(console.store, "vo.van.d", "Võ Văn D", PASSWORD)
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "vo.van.d.pem").write_text(public)
    kiosk = real_kiosk("HN-TAYHO-41", trust_dir=trust)
    old_serial = x509.load_pem_x509_certificate(kiosk.cert_file.read_bytes()).serial_number
    wait_until(
        lambda: (console.store.kiosk("HN-TAYHO-41") or {}).get("state") == "online",
        10,
        "kiosk online",
    )
    handle, _ = console.keys.login(console.store, "vo.van.d", PASSWORD)
    console.send_command(handle, "rotate-certificate", {}, kiosk_ids=["HN-TAYHO-41"])
    done = wait_until(
        lambda: [
            c
            for c in console.store.commands()
            if c["status"] == "ok" and "serial" in (c["result"] or {})
        ],
        15,
        "second rotate-certificate installed",
    )
    assert [c["operator"] for c in console.store.commands()] == ["vo.van.d", "vo.van.d"]
    installed = x509.load_pem_x509_certificate(kiosk.cert_file.read_bytes())
    assert installed.serial_number != old_serial
    installed.verify_directly_issued_by(
        x509.load_pem_x509_certificate(fleet_pki.ca_file.read_bytes())
    )
    assert done[0]["result"]["serial"] == format(installed.serial_number, "x")
    assert console.store.kiosk("HN-TAYHO-41")["cert_not_after"] == pytest.approx(
        installed.not_valid_after_utc.timestamp()
    )


def test_a_database_outage_loses_no_record(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki, sims: Callable[[str], SimKiosk]
) -> None:
    """PostgreSQL goes away mid-stream: nothing is acknowledged until it is stored."""
    with running_postgres() as pg:
        console = build_console(console_config(tmp_path, broker, fleet_pki, url=pg.url))
        console.start()
        try:
            assert console.ingest.wait_connected(10)
            sim = sims("HN-TAYHO-51")
            sim.peer.subscribe("kiosk/v1/HN-TAYHO-51/ack")
            sim.record("copy", {"n": 0}, message_id="db-0")
            wait_until(lambda: console.store.count_records() == 1, 10, "first record")
            pg.halt()
            for i in range(1, 6):
                sim.record("copy", {"n": i}, message_id=f"db-{i}")
            wait_until(lambda: console.ingest.stats.retries >= 2, 15, "the console retrying")
            acked = {
                i for m in sim.peer.received("kiosk/v1/HN-TAYHO-51/ack") for i in m.json()["ids"]
            }
            assert acked == {"db-0"}
            pg.resume()
            wait_until(lambda: console.store.count_records() == 6, 30, "records after the outage")
            wait_until(
                lambda: (
                    {
                        i
                        for m in sim.peer.received("kiosk/v1/HN-TAYHO-51/ack")
                        for i in m.json()["ids"]
                    }
                    == {f"db-{i}" for i in range(6)}
                ),
                10,
                "all acknowledged",
            )
        finally:
            console.stop()


def test_dossier_status_answers_a_real_kiosk_and_follows_the_contract(
    tmp_path: Path, make_console: Callable[..., Console], broker: Broker, fleet_pki: FleetPki
) -> None:
    import datetime as dt
    import uuid

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from edge.config import ServicesSection
    from edge.services.dossier import DossierService

    make_console()
    kiosk = RealKiosk(tmp_path / "kiosks", broker, fleet_pki, "HN-TAYHO-61")
    try:
        service = DossierService(
            store=kiosk.store,
            key=DataKey.load_or_create(tmp_path / "dk"),
            kiosk_id="HN-TAYHO-61",
            settings=ServicesSection(dossier_timeout_s=5.0),
            requester=kiosk.client,
        )
        wait_until(lambda: kiosk.client.subscribed, 10, "kiosk subscribed")
        unknown = service.lookup("000.00.17.H26-261115-0015")
        assert unknown.source == "central" and unknown.found is False  # no such sample
        rejected = service.lookup("H26.22-261110-0003")
        assert rejected.found and rejected.status == "rejected"
        assert rejected.reason.startswith("Hồ sơ chưa đủ điều kiện")
        assert rejected.on_time is True and rejected.procedure == "Đăng ký kết hôn"
        ready = service.lookup("https://dichvucong.gov.vn/p/?maHoSo=000.00.17.H26-261120-0001")
        assert ready.status == "ready" and [s.status for s in ready.timeline] == [
            "received",
            "in_process",
            "ready",
        ]
    finally:
        kiosk.close()
    # On the wire: correlation echoed, the kiosk's own res topic only, schema-valid.
    peer = Peer(broker, fleet_pki.client("HN-TAYHO-62")).connect()
    try:
        peer.subscribe("kiosk/v1/HN-TAYHO-62/res/dossier-status")
        now = dt.datetime.now(dt.UTC)
        request_id = uuid.uuid4().hex
        request = {
            "schema": "dossier-status-request/1",
            "request_id": request_id,
            "kiosk_id": "HN-TAYHO-62",
            "code": "H26.22-261115-0015",
            "time": now.isoformat(),
            "expires_at": (now + dt.timedelta(seconds=8)).isoformat(),
            "reply_to": "kiosk/v1/HN-TAYHO-99/res/dossier-status",  # not its tree: ignored
        }
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "kiosk/v1/HN-TAYHO-62/res/dossier-status"
        props.CorrelationData = request_id.encode()
        peer.publish(
            "kiosk/v1/HN-TAYHO-62/req/dossier-status", json.dumps(request), properties=props
        )
        answer = peer.wait_for("kiosk/v1/HN-TAYHO-62/res/dossier-status")
        body = answer.json()
        assert_valid(body, "dossier-status-response")
        assert body["request_id"] == request_id and body["result"] == "found"
        assert body["dossier"]["status"] == "additional_required" and body["dossier"]["reason"]
        assert body["dossier"]["on_time"] is False  # due 20/11, still open
        assert answer.properties.CorrelationData == request_id.encode()
        # An expired request is not answered.
        late = {
            **request,
            "request_id": uuid.uuid4().hex,
            "expires_at": (now - dt.timedelta(seconds=1)).isoformat(),
        }
        peer.publish("kiosk/v1/HN-TAYHO-62/req/dossier-status", json.dumps(late))
        # ... answers go out in order, so a third request's answer comes after any for it.
        third = {**request, "request_id": uuid.uuid4().hex}
        peer.publish("kiosk/v1/HN-TAYHO-62/req/dossier-status", json.dumps(third))
        peer.wait_for(
            "kiosk/v1/HN-TAYHO-62/res/dossier-status",
            lambda m: m.json()["request_id"] == third["request_id"],
        )
        assert [
            m.json()["request_id"] for m in peer.received("kiosk/v1/HN-TAYHO-62/res/dossier-status")
        ] == [request_id, third["request_id"]]
    finally:
        peer.close()


def test_queue_figures_reach_every_kiosk_of_the_site_retained(
    make_console: Callable[..., Console], sims: Callable[[str], SimKiosk]
) -> None:
    console = make_console()
    here, other = sims("HN-TAYHO-81"), sims("HN-BADINH-81")
    for sim in (here, other):
        sim.telemetry()
    wait_until(lambda: len(console.store.kiosks()) == 2, 10, "both kiosks seen")
    client, _ = login(console)
    token = csrf_of(client, "/queues")
    response = client.post(
        "/queues",
        data={
            "csrf_token": token,
            "site": "HN-TAYHO",
            "area": "b",
            "serving": "21",
            "avg_service_s": "240",
            "counters_open": "2",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    # A kiosk subscribing later (as after a restart) still gets the figures: retained.
    here.peer.subscribe("kiosk/v1/HN-TAYHO-81/res/queue-stats")
    got = here.peer.wait_for("kiosk/v1/HN-TAYHO-81/res/queue-stats", lambda m: m.retain).json()
    assert_valid(got, "queue-stats")
    assert got["areas"] == {"B": {"serving": 21, "avg_service_s": 240.0, "counters_open": 2}}
    other.peer.subscribe("kiosk/v1/HN-BADINH-81/res/queue-stats")
    other.peer.subscribe("fleet/v1/status")  # its retained copy comes after any queue figures
    other.peer.wait_for("fleet/v1/status", lambda m: m.retain)
    assert other.peer.received("kiosk/v1/HN-BADINH-81/res/queue-stats") == []
    bad = client.post(
        "/queues", data={"csrf_token": token, "site": "HN-TAYHO", "area": "BB", "serving": "-1"}
    )
    assert bad.status_code == 400


def test_a_priority_number_called_at_the_counter_reaches_the_kiosks_ticket_wait(
    store_url: str,
    make_console: Callable[..., Console],
    real_kiosk: Callable[..., RealKiosk],
) -> None:
    """The console's form -> the store -> retained queue-stats/1 -> the kiosk's own
    FleetClient -> its TicketService, as edge/app.py wires it (SQLite and PostgreSQL)."""
    import threading

    from edge.config import ServicesSection
    from edge.services.tickets import TicketService
    from fleet.queues import report
    from protocol.errors import BadInput

    console = make_console(url=store_url)
    kiosk = real_kiosk("HN-TAYHO-83")
    tickets = TicketService(
        store=kiosk.store, outbox=kiosk.outbox, kiosk_id=kiosk.kiosk_id, settings=ServicesSection()
    )
    documents: list[dict[str, Any]] = []
    arrived = threading.Event()

    def on_queue_stats(suffix: str, payload: bytes, properties: Any) -> None:
        tickets.on_queue_stats(suffix, payload, properties)  # the daemon's handler
        documents.append(json.loads(payload))
        arrived.set()

    kiosk.client.listen("res/queue-stats", on_queue_stats)
    wait_until(
        lambda: (console.store.kiosk("HN-TAYHO-83") or {}).get("site") == "HN-TAYHO",
        10,
        "the kiosk seen at its site",
    )
    # Today at this kiosk: B-001..B-003 and the priority B-UT001..B-UT003.
    for _ in range(3):
        tickets.take("B", print_ticket=False)
        tickets.take("B", priority="elderly", print_ticket=False)

    client, _ = login(console)
    token = csrf_of(client, "/queues")
    figures = {"site": "HN-TAYHO", "area": "B", "serving": "1", "avg_service_s": "120"}
    response = client.post(
        "/queues",
        data={"csrf_token": token, **figures, "counters_open": "1", "priority_serving": "2"},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    assert arrived.wait(10), "no queue figures at the kiosk"
    assert documents[-1]["areas"] == {
        "B": {"serving": 1, "avg_service_s": 120.0, "counters_open": 1, "priority_serving": 2}
    }
    (row,) = console.store.queue_stats(site="HN-TAYHO")
    assert (row["serving"], row["priority_serving"]) == (1, 2)
    page = client.get("/queues").get_data(as_text=True)
    assert "Số ưu tiên đang phục vụ" in page
    assert "<td>1</td><td>120.0</td><td>1</td><td>2</td>" in page.split('id="queue-stats"')[1]

    # B-UT002 is at the counter: a new priority ticket waits only for B-UT003 (120 s, one
    # counter: 2 min); a new ordinary one for B-002, B-003 and the priority B-UT003, B-UT004.
    priority = tickets.take("B", priority="disabled", print_ticket=False)
    assert (priority.number, priority.waiting_ahead, priority.estimated_wait_min) == (
        "B-UT004",
        1,
        2,
    )
    ordinary = tickets.take("B", print_ticket=False)
    assert (ordinary.number, ordinary.waiting_ahead, ordinary.estimated_wait_min) == (
        "B-004",
        4,
        8,
    )

    # A negative number is refused, by the form and by report(), and nothing changes.
    for bad in ("-1", "abc"):
        refused = client.post(
            "/queues",
            data={"csrf_token": token, **figures, "priority_serving": bad},
        )
        assert refused.status_code == 400, bad
    with pytest.raises(BadInput, match="âm"):
        report(
            console,
            "HN-TAYHO",
            "B",
            serving=1,
            avg_service_s=None,
            counters_open=None,
            priority_serving=-1,
            by="test",
        )
    (row,) = console.store.queue_stats(site="HN-TAYHO")
    assert (row["priority_serving"], row["counters_open"]) == (2, 1)

    # Counters that do not count the priority series apart leave the field empty: the
    # document leaves it out and the kiosk takes "serving" to cover the priority tickets.
    arrived.clear()
    assert client.post("/queues", data={"csrf_token": token, **figures}).status_code == 302
    assert arrived.wait(10), "no new queue figures at the kiosk"
    assert documents[-1]["areas"] == {"B": {"serving": 1, "avg_service_s": 120.0}}
    assert tickets.take("B", print_ticket=False).waiting_ahead == 3  # B-002..B-004


def test_malformed_messages_are_dropped_alone_and_not_redelivered(
    make_console: Callable[..., Console], sims: Callable[[str], SimKiosk]
) -> None:
    console = make_console()
    sim = sims("HN-TAYHO-91")
    base = "kiosk/v1/HN-TAYHO-91"
    for topic, payload in [
        (f"{base}/events", b"\xff\xfe not utf-8"),
        (f"{base}/events", b"[1, 2, 3]"),
        (f"{base}/records/copy", b'{"schema": "record/1", "kind": "copy"}'),  # no id
        (f"{base}/state", b'{"schema": "state/1", "state": "sleeping"}'),
    ]:
        sim.peer.publish(topic, payload)
    good = sim.event("printer.paper_out", "error")
    wait_until(lambda: console.store.events(kiosk_id="HN-TAYHO-91"), 10, "the good event")
    assert [e["id"] for e in console.store.events(kiosk_id="HN-TAYHO-91")] == [good["id"]]
    wait_until(lambda: console.ingest.stats.rejected == 4, 10, "four rejected")
    # Acknowledged too: after a reconnect of the console nothing of it comes back.
    console.stop()
    again = make_console()
    sim.event("printer.paper_near_end", "warning")
    wait_until(lambda: len(again.store.events(kiosk_id="HN-TAYHO-91")) == 2, 10, "next event")
    assert again.ingest.stats.rejected == 0


def test_a_real_kiosk_client_takes_the_consoles_acks_and_revocation_list(
    make_console: Callable[..., Console], real_kiosk: Callable[..., RealKiosk]
) -> None:
    """The kiosk side on main (FleetClient on_record_ack / on_revocations) against the console."""
    console = make_console()
    kiosk = real_kiosk("HN-TAYHO-95")
    wait_until(lambda: kiosk.client.subscribed, 10, "kiosk subscribed")
    ids = [
        queue_record(kiosk.outbox, kiosk.kiosk_id, "copy", {"n": i}, message_id=f"copy-{i}").id
        for i in range(3)
    ]
    kiosk.client.kick()
    wait_until(lambda: sorted(kiosk.acked) == sorted(ids), 10, "acks handed to the daemon")
    console.revocations.revoke("HN-TAYHO-95-261123-000001-X", reason="cấp nhầm", operator="an")
    got = wait_until(
        lambda: [d for d in kiosk.revocation_lists if d["codes"]],
        10,
        "the revocation list at the kiosk",
    )
    assert got[-1]["codes"] == [{"code": "HN-TAYHO-95-261123-000001-X", "reason": "cấp nhầm"}]


def test_without_the_central_extra_the_console_says_what_to_install() -> None:
    """A kiosk installs no central extra (sqlalchemy moved there): kiosk-fleet names it."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['sqlalchemy'] = None\n"  # as if pip never installed it
        "from fleet.cli import main\n"
        "sys.exit(main(['init-db']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "sqlalchemy not installed" in result.stderr
    assert "pip install 'kiosk-edge[central]'" in result.stderr


def test_queue_figures_without_a_site_are_refused(make_console: Callable[..., Console]) -> None:
    console = make_console()
    client, _ = login(console)
    token = csrf_of(client, "/queues")
    for site in ({}, {"site": ""}):  # no site field (no site to choose yet), or an empty one
        response = client.post(
            "/queues", data={"csrf_token": token, "area": "A", "serving": "3", **site}
        )
        assert response.status_code == 400, response.get_data(as_text=True)
    assert console.store.queue_stats() == []
