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
from fleet.provisioning import (
    CenterCa,
    Enrolment,
    EnrolmentRefused,
    create_claim_token,
    token_hash,
)
from fleet.store import FleetStore, Incoming
from tests.mqtt_broker import FleetPki

KIOSK = "HN-TAYHO-21"
DAY = 86400.0


@pytest.fixture
def store(tmp_path: Path) -> FleetStore:
    s = FleetStore(f"sqlite:///{tmp_path / 'fleet.db'}").create()
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


# --- enrolment ----------------------------------------------------------------------------


def csr_for(cn: str, key: ec.EllipticCurvePrivateKey | None = None) -> tuple[str, Any]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


@pytest.fixture
def center_ca(tmp_path: Path) -> CenterCa:
    pki = FleetPki(tmp_path / "pki")
    key_path = tmp_path / "pki" / "ca.key"
    key_path.write_bytes(
        pki._ca_key.private_bytes(  # the test CA's key, as the center keeps it
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return CenterCa(pki.ca_file, key_path)


def test_a_claim_token_buys_one_certificate_for_its_kiosk_only(
    store: FleetStore, center_ca: CenterCa
) -> None:
    enrolment = Enrolment(store, center_ca, cert_days=90)
    token = create_claim_token(store, KIOSK, site="Phường Tây Hồ", created_by="an", ttl_s=600)
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){4}", token)
    other_csr, _ = csr_for("HN-OTHER-01")
    with pytest.raises(EnrolmentRefused) as refused:
        enrolment.enrol(token, other_csr)
    assert refused.value.reason == "wrong_kiosk"
    csr, key = csr_for(KIOSK)
    issued = enrolment.enrol(token.lower().replace("-", " "), csr)  # typed loosely: still ok
    cert = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
    # Checked independently of our code: the CA's signature, the name, the key, the use.
    cert.verify_directly_issued_by(center_ca.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == KIOSK
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert 89 <= (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days <= 90
    row = store.kiosk(KIOSK)
    assert row["site"] == "Phường Tây Hồ" and row["cert_not_after"] == pytest.approx(
        cert.not_valid_after_utc.timestamp()
    )
    with pytest.raises(EnrolmentRefused) as again:
        enrolment.enrol(token, csr_for(KIOSK)[0])
    assert again.value.reason == "token_used"
    expired = create_claim_token(store, KIOSK, created_by="an", ttl_s=0.001)
    time.sleep(0.01)
    with pytest.raises(EnrolmentRefused) as late:
        enrolment.enrol(expired, csr)
    assert late.value.reason == "token_expired"
    for bad_token, bad_csr, reason in [
        ("AAAA-BBBB", csr, "bad_token"),
        (token, "not a csr", "bad_csr"),
    ]:
        with pytest.raises(EnrolmentRefused) as err:
            enrolment.enrol(bad_token, bad_csr)
        assert err.value.reason == reason


def test_a_csr_with_an_rsa_key_is_refused(store: FleetStore, center_ca: CenterCa) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    token = create_claim_token(store, KIOSK, created_by="an", ttl_s=600)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, KIOSK)]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    with pytest.raises(EnrolmentRefused) as err:
        Enrolment(store, center_ca).enrol(token, csr)
    assert err.value.reason == "bad_csr"
    assert store.claim_token(token_hash(token))["used_at"] is None  # not burnt by the refusal
    assert Enrolment(store, center_ca).enrol(token, csr_for(KIOSK)[0]).kiosk_id == KIOSK


# --- the CLI ------------------------------------------------------------------------------


def test_cli_operator_token_dossiers_site_and_revoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "fleet.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "fleet.db"}"\n')
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
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){4}", token)
    assert fleet_cli(["-c", str(config), "dossier", "seed"]) == 0
    assert capsys.readouterr().out.strip() == "6 sample dossiers"
    assert fleet_cli(["-c", str(config), "site", KIOSK, "Phường Tây Hồ"]) == 0
    assert fleet_cli(["-c", str(config), "revoke", "HN-A-0001", "--reason", "cấp nhầm"]) == 0
    assert capsys.readouterr().out.strip() == "revoked"
    # A bad config is a clear message, not a traceback.
    config.write_text("[store]\nurll = 1\n")
    assert fleet_cli(["-c", str(config), "init-db"]) == 2
    assert "not valid" in capsys.readouterr().err
    store = FleetStore(f"sqlite:///{tmp_path / 'fleet.db'}")
    try:
        assert store.kiosk(KIOSK)["site"] == "Phường Tây Hồ"
        assert [r["code"] for r in store.revocations()] == ["HN-A-0001"]
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
    from fleet.operators import create_operator
    from fleet.web import create_app

    config = FleetConfig(
        store=StoreSection(url=f"sqlite:///{tmp_path / 'fleet.db'}"),
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
    console.keys._failures.clear()  # the lockout has passed (60 s in this config)
    assert attempt("mật-khẩu-đúng-1").status_code == 302
    assert client.get("/").status_code == 200
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # the logout form
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302
    console.store.close()
