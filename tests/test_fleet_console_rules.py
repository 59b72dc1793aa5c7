"""Alert rules over a real store (time-based ones with an explicit `now`), enrolment by claim
token (signed by a CA, checked independently), the CLI, and the revocation list."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleet.alerts import AlertEngine
from fleet.cli import main as fleet_cli
from fleet.config import AlertsSection
from fleet.store import FleetStore, Incoming
from protocol.crypto import DataKey

KIOSK = "HN-TAYHO-21"
DAY = 86400.0


@pytest.fixture
def store(tmp_path: Path) -> FleetStore:
    s = FleetStore(
        f"sqlite:///{tmp_path / 'fleet.db'}", data_key=DataKey.load_or_create(tmp_path / "dk")
    ).create()
    yield s
    s.close()


def telemetry(at: float, *, outbox: int = 0, **extra: Any) -> Incoming:
    return Incoming(
        topic=f"kiosk/v1/{KIOSK}/telemetry",
        kiosk_id=KIOSK,
        kind="telemetry",
        payload={
            "schema": "telemetry/1",
            "id": f"t-{at}",
            "time": dt.datetime.fromtimestamp(at, dt.UTC).isoformat(),
            "system": {"cpu_temp_c": 50.0},
            "outbox": {"record": outbox, "event": 0, "telemetry": 0},
            **extra,
        },
        received_at=at,
    )


def rules(engine: AlertEngine, now: float) -> set[str]:
    engine.evaluate(now)
    return {a["rule"] for a in engine.store.open_alerts()}


def test_outbox_growing_for_the_whole_window_alerts_and_a_fall_clears(store: FleetStore) -> None:
    engine = AlertEngine(store, AlertsSection(outbox_growing_s=900))
    t0 = 1_800_000_000.0
    # Rising for 10 min only: not yet.
    store.apply([telemetry(t0 + i * 60, outbox=i) for i in range(11)])
    assert "outbox_growing" not in rules(engine, t0 + 600)
    # Rising (or flat) for 16 min: alert.
    store.apply([telemetry(t0 + i * 60, outbox=10 + i // 2) for i in range(11, 17)])
    assert "outbox_growing" in rules(engine, t0 + 16 * 60)
    # The kiosk drains some: cleared.
    store.apply([telemetry(t0 + 17 * 60, outbox=2)])
    assert "outbox_growing" not in rules(engine, t0 + 17 * 60)


def test_certificate_expiry_from_telemetry_and_from_enrolment(
    store: FleetStore, tmp_path: Path
) -> None:
    engine = AlertEngine(store, AlertsSection(cert_expiry_days=30))
    now = time.time()
    soon = dt.datetime.fromtimestamp(now + 10 * DAY, dt.UTC).isoformat()
    store.apply([telemetry(now, certificate={"not_after": soon})])
    raised, _ = engine.evaluate(now)
    assert [(r["rule"], r["kiosk_id"]) for r in raised] == [("cert_expiring", KIOSK)]
    assert "10 ngày" in raised[0]["message"]
    later = dt.datetime.fromtimestamp(now + 200 * DAY, dt.UTC).isoformat()
    store.apply([telemetry(now + 1, certificate={"not_after": later})])
    assert "cert_expiring" not in rules(engine, now + 2)


def test_face_failures_need_the_configured_count_within_the_window(store: FleetStore) -> None:
    engine = AlertEngine(store, AlertsSection(face_failures=3, face_failures_window_s=3600))
    now = time.time()

    def failure(i: int, at: float) -> Incoming:
        return Incoming(
            topic=f"kiosk/v1/{KIOSK}/events",
            kiosk_id=KIOSK,
            kind="event",
            received_at=at,
            payload={
                "id": f"f{i}",
                "kind": "identity.face_failures",
                "severity": "warning",
                "time": dt.datetime.fromtimestamp(at, dt.UTC).isoformat(),
                "detail": {},
            },
        )

    store.apply([failure(1, now - 7200), failure(2, now - 60), failure(3, now - 30)])
    assert "face_failures" not in rules(engine, now)  # the first is outside the hour
    store.apply([failure(4, now - 10)])
    assert "face_failures" in rules(engine, now)


def test_offline_only_after_the_threshold_and_rules_can_be_switched_off(
    store: FleetStore,
) -> None:
    t0 = time.time()
    store.apply(
        [
            Incoming(
                f"kiosk/v1/{KIOSK}/state",
                KIOSK,
                "state",
                {"state": "offline", "reason": "connection_lost"},
                t0,
            ),
            telemetry(t0, printer={"paper": "out"}),
        ]
    )
    engine = AlertEngine(store, AlertsSection(offline_after_s=300))
    assert rules(engine, t0 + 299) == {"paper_out"}
    assert rules(engine, t0 + 301) == {"paper_out", "offline"}
    off = AlertEngine(store, AlertsSection(offline_after_s=0, paper=False))
    assert rules(off, t0 + 400) == set()
    # Online again, then nothing at all for ten minutes: silent.
    store.apply([Incoming(f"kiosk/v1/{KIOSK}/state", KIOSK, "state", {"state": "online"}, t0)])
    quiet = AlertEngine(store, AlertsSection(silent_after_s=600, paper=False))
    assert rules(quiet, t0 + 599) == set()
    assert rules(quiet, t0 + 601) == {"silent"}


# --- enrolment (docs/provisioning.md), the service's checks in order ------------------------


@pytest.fixture
def enrolment(tmp_path: Path, store: FleetStore) -> tuple[Any, Any, Any]:
    from fleet.provisioning import Enrolment
    from protocol.crypto import DataKey
    from tests.provision_helpers import center_ca

    ca, _ = center_ca(tmp_path)
    sealer = DataKey.load_or_create(tmp_path / "claims.key")
    service = Enrolment(
        store,
        ca,
        sealer,
        cert_days=90,
        broker={
            "host": "mqtt.example",
            "port": 8883,
            "topic_prefix": "kiosk/v1",
            "protocol": "auto",
        },
        operators=lambda: [{"id": "an", "public_key": "-----BEGIN PUBLIC KEY-----\n"}],
    )
    return service, ca, sealer


def csr_for(cn: str, key: Any = None) -> tuple[str, Any]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def ask(service: Any, token: str, csr: str, **over: Any) -> dict[str, Any]:
    from provisioning.online import ClaimToken, build_request

    claim = ClaimToken.parse(token)
    request = build_request(
        claim,
        kiosk_id=over.pop("kiosk_id", KIOSK),
        serial=over.pop("serial", "10000000cafe0001"),
        csr_pem=csr,
    )
    request.update(over)
    if "proof" not in over:
        from protocol.enrolment import proof

        request.pop("proof")
        request["proof"] = proof(request, claim.secret)
    answer, _ = service.answer(claim.claim_id, json.dumps(request).encode())
    from tests.mqtt_broker import assert_valid

    assert_valid(answer, "provision-response")
    return answer


def test_enrolment_checks_in_the_documented_order_and_proves_its_answers(
    store: FleetStore, enrolment: tuple[Any, Any, Any]
) -> None:
    from fleet.provisioning import create_claim
    from protocol.enrolment import proof_ok
    from provisioning.online import ClaimToken

    service, ca, sealer = enrolment
    token = create_claim(
        store,
        sealer,
        KIOSK,
        site="Phường Tây Hồ",
        serial="10000000cafe0001",
        created_by="an",
        ttl_s=600,
    )
    claim = ClaimToken.parse(token)
    assert re.fullmatch(r"c[a-z2-7]{12}\.[a-z2-7]{32}", token)
    assert claim.secret not in json.dumps(store.claim(claim.claim_id))  # sealed at rest
    csr, key = csr_for(KIOSK)

    def code(answer: dict[str, Any]) -> str:
        return answer["error"]["code"] if answer["status"] == "error" else "ok"

    assert code(ask(service, token, csr, proof="A" * 43 + "=")) == "bad_proof"
    assert code(ask(service, token, csr, serial="10000000beef0002")) == "serial_mismatch"
    assert code(ask(service, token, csr, kiosk_id="HN-OTHER-01")) == "kiosk_id_mismatch"
    assert code(ask(service, token, csr_for("HN-OTHER-01")[0])) == "bad_csr"
    unknown = ask(service, "cqqqqqqqqqqqq." + "a" * 32, csr)
    assert code(unknown) == "claim_unknown" and "proof" not in unknown
    bad = service.answer(claim.claim_id, b"not json")[0]
    assert code(bad) == "malformed" and proof_ok(bad, claim.secret)
    # None of these burnt the claim: now it works, proven, with the certificate and all.
    ok = ask(service, token, csr)
    assert ok["status"] == "ok" and proof_ok(ok, claim.secret)
    cert = x509.load_pem_x509_certificate(ok["certificate"].encode())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.certificate_pem.encode()))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == KIOSK
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert ok["ca_chain"] == [ca.certificate_pem] and ok["broker"]["host"] == "mqtt.example"
    assert ok["operators"][0]["id"] == "an"
    assert store.kiosk(KIOSK)["site"] == "Phường Tây Hồ"
    assert store.kiosk(KIOSK)["cert_not_after"] == pytest.approx(
        cert.not_valid_after_utc.timestamp()
    )
    # A repeat (lost answer) with the same key gets the same certificate; another key not.
    again = ask(service, token, csr)
    assert again["certificate"] == ok["certificate"]
    assert code(ask(service, token, csr_for(KIOSK)[0])) == "claim_used"
    expired = create_claim(store, sealer, KIOSK, created_by="an", ttl_s=0.001)
    time.sleep(0.01)
    assert code(ask(service, expired, csr_for(KIOSK)[0])) == "claim_expired"


# --- the CLI ------------------------------------------------------------------------------


def test_cli_operator_token_dossiers_site_and_revoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "fleet.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "fleet.db"}"\n'
        f'data_key_file = "{tmp_path / "fleet-data.key"}"\n'
        f'[provisioning]\nsecrets_key_file = "{tmp_path / "claims.key"}"\n'
    )
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("một-mật-khẩu-dài\n"))
    trust = tmp_path / "trust"
    assert (
        fleet_cli(
            [
                "-c",
                str(config),
                "operator",
                "add",
                "pham.van.c",
                "--name",
                "Phạm Văn C",
                "--password-stdin",
                "--trust-dir",
                str(trust),
            ]
        )
        == 0
    )
    public = capsys.readouterr().out
    assert public.startswith("-----BEGIN PUBLIC KEY-----")
    assert (trust / "pham.van.c.pem").read_text() == public
    assert fleet_cli(["-c", str(config), "operator", "list"]) == 0
    assert "pham.van.c\tPhạm Văn C\tactive" in capsys.readouterr().out
    assert fleet_cli(["-c", str(config), "token", KIOSK, "--site", "Tây Hồ"]) == 0
    token = capsys.readouterr().out.strip()
    assert re.fullmatch(r"c[a-z2-7]{12}\.[a-z2-7]{32}", token)
    assert fleet_cli(["-c", str(config), "dossier", "seed"]) == 0
    assert capsys.readouterr().out.strip() == "6 sample dossiers"
    assert fleet_cli(["-c", str(config), "site", KIOSK, "Phường Tây Hồ"]) == 0
    assert fleet_cli(["-c", str(config), "revoke", "HN-A-0001", "--reason", "cấp nhầm"]) == 0
    assert capsys.readouterr().out.strip() == "revoked"
    # A certificate serial must be hex: one bad entry would make kiosks refuse the whole list.
    assert fleet_cli(["-c", str(config), "revoke", "not-hex", "--certificate"]) == 2
    assert "not a hex serial" in capsys.readouterr().err
    assert fleet_cli(["-c", str(config), "revoke", "5F3A01", "--certificate"]) == 0
    assert capsys.readouterr().out.strip() == "revoked"
    # A bad config is a clear message, not a traceback.
    config.write_text("[store]\nurll = 1\n")
    assert fleet_cli(["-c", str(config), "init-db"]) == 2
    assert "not valid" in capsys.readouterr().err
    store = FleetStore(
        f"sqlite:///{tmp_path / 'fleet.db'}",
        data_key=DataKey.load_or_create(tmp_path / "fleet-data.key"),
    )
    try:
        assert store.kiosk(KIOSK)["site"] == "Phường Tây Hồ"
        assert [r["code"] for r in store.revocations()] == ["HN-A-0001", "5f3a01"]
        assert len(store.dossiers()) == 6
        assert json.dumps(store.dossiers()[0]["data"], ensure_ascii=False)
    finally:
        store.close()


def test_the_example_config_is_valid_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    from edge.errors import ConfigError
    from fleet.config import load_config

    example = Path(__file__).resolve().parent.parent / "config" / "fleet.example.toml"
    config = load_config(example)
    assert config.alerts.offline_after_s == 300 and config.mqtt.topic_prefix == "kiosk/v1"
    bad = tmp_path / "bad.toml"
    bad.write_text("[alerts]\noffline_after = 60\n")
    with pytest.raises(ConfigError, match="offline_after"):
        load_config(bad)


def test_login_lockout_logout_and_pages_need_a_session(tmp_path: Path) -> None:
    from fleet.config import FleetConfig, StoreSection, WebSection
    from fleet.console import Console
    from fleet.operators import KeyRing, create_operator
    from fleet.web import create_app

    config = FleetConfig(
        store=StoreSection(url=f"sqlite:///{tmp_path / 'fleet.db'}", data_key_file=tmp_path / "dk"),
        web=WebSection(secret_key_file=tmp_path / "secret", login_attempts=3, lockout_s=60),
    )
    console = Console(config)
    console.store.create()
    create_operator(console.store, "an", "An", "mật-khẩu-đúng-1")
    client = create_app(console).test_client()
    for path in ("/", "/commands", "/alerts", "/kiosks/HN-X-01", "/provisioning"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]

    def attempt(password: str) -> Any:
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        return client.post(
            "/login", data={"csrf_token": token, "operator": "an", "password": password}
        )

    for _ in range(3):
        wrong = attempt("sai")
        assert wrong.status_code == 401
        assert "Sai tên đăng nhập hoặc mật khẩu" in wrong.get_data(as_text=True)
    locked = attempt("mật-khẩu-đúng-1")  # right password, but locked out now
    assert locked.status_code == 401 and "quá nhiều lần" in locked.get_data(as_text=True)
    later = time.time() + 61  # the lockout has passed (60 s in this config)
    console.keys = KeyRing(attempts=3, lockout_s=60, clock=lambda: later)
    assert attempt("mật-khẩu-đúng-1").status_code == 302
    assert client.get("/").status_code == 200
    # Disabled from the CLI: the running session ends at the next page.
    console.store.update_operator("an", disabled=True)
    assert client.get("/").status_code == 302
    console.store.update_operator("an", disabled=False)
    assert attempt("mật-khẩu-đúng-1").status_code == 302
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # the logout form
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302
    console.store.close()


def test_kiosk_fleet_serve_runs_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    from tests.mqtt_broker import free_port, wait_until

    port = free_port()
    config = tmp_path / "fleet.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "fleet.db"}"\n'
        f'data_key_file = "{tmp_path / "dk"}"\n'
        f'[web]\nport = {port}\nsecret_key_file = "{tmp_path / "secret"}"\n'
    )
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet.cli", "-c", str(config), "serve", "--no-mqtt"],
        env={**os.environ, "PYTHONPATH": str(repo)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def login_page() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    return r.status == 200 and "Đăng nhập" in r.read().decode()
            except (urllib.error.URLError, OSError):
                return False

        wait_until(login_page, 20, "the console's login page")
        with pytest.raises(urllib.error.HTTPError) as health:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
        assert health.value.code == 503  # no broker in this run
        assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        log = proc.stderr.read()
        assert f"fleet console on http://127.0.0.1:{port}/" in log
        assert "--- Logging error ---" not in log, log  # was: %d given the port as a string
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
