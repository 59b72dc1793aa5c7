"""The certifier's intake and answers: capture packages signed by a kiosk's fleet certificate,
stored once, refused when the signature or its issuer is wrong; Art. 7 deadlines and SLA
colours; and the whole intake over a real Mosquitto (mTLS, the shipped ACL) into the real
console, with the kiosk hearing "queued", then the decision."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import subprocess
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleet.config import FleetConfig, MqttSection, ProvisioningSection, StoreSection, WebSection
from fleet.console import Console, build_console
from fleet.store import FleetStore
from fleet.store.schema import cert_requests, records
from protocol.certify import sign_package
from protocol.crypto import DataKey
from tests.certify_helpers import (
    AGENCY,
    TestSigner,
    add_officer,
    certifier_for_tests,
    certify_config,
    package,
    page_jpeg,
)
from tests.fleet_console_helpers import Postgres, SimKiosk, database_url, running_postgres
from tests.mqtt_broker import CENTRAL, Broker, FleetPki, assert_valid, wait_until
from tests.softhsm import PIN

TZ = zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")
KIOSK = "HN-BADINH-01"
OFFICER = "tran.thi.binh"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request, tmp_path)


@pytest.fixture
def store(url: str, tmp_path: Path) -> Iterator[FleetStore]:
    s = FleetStore(url, data_key=DataKey.load_or_create(tmp_path / "data.key")).create()
    add_officer(s)
    yield s
    s.close()


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> TestSigner:
    return TestSigner(tmp_path_factory.mktemp("signer"))


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return page_jpeg(size=(620, 877))


def _local(*args: int) -> float:
    return dt.datetime(*args, tzinfo=TZ).timestamp()  # type: ignore[misc]


def signed(pki: FleetPki, kiosk_id: str, code: str, jpeg: bytes, **kw: Any) -> dict[str, Any]:
    """A capture package signed with the kiosk's fleet mTLS key, as the kiosk signs it."""
    me = pki.client(kiosk_id)
    key = serialization.load_pem_private_key(me.key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return sign_package(package(code, jpeg, **kw), key, me.cert.read_text())


def record(pkg: dict[str, Any], kiosk_id: str = KIOSK, seq: int = 1) -> dict[str, Any]:
    return {
        "schema": "record/1",
        "kiosk_id": kiosk_id,
        "kind": "cert-request",
        "time": dt.datetime.now(dt.UTC).isoformat(),
        "data": pkg,
        "id": f"rec-{pkg.get('code')}-{seq}",
        "seq": seq,
        "queued_at": dt.datetime.now(dt.UTC).isoformat(),
    }


def fleet_ca(pki: FleetPki) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pki.ca_file.read_bytes())


# --- intake ---------------------------------------------------------------------------------


def test_a_signed_request_is_stored_once_sealed_and_queued(
    store: FleetStore, signer: TestSigner, fleet_pki: FleetPki, jpeg: bytes
) -> None:
    published: list[tuple[str, dict[str, Any]]] = []
    now = [_local(2026, 12, 7, 9, 0)]  # a Monday morning
    certifier = certifier_for_tests(
        store, signer, published=published, clock=lambda: now[0], issuers=fleet_ca(fleet_pki)
    )
    code = f"{KIOSK}-261207-000001-7"
    pkg = signed(fleet_pki, KIOSK, code, jpeg, pages=2)
    assert certifier.receive(KIOSK, record(pkg)) is True
    assert certifier.receive(KIOSK, record(pkg, seq=2)) is False  # sent again: stored once
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(cert_requests)).all()
    assert len(rows) == 1
    assert b"Nguy" not in rows[0].package and jpeg[:200] not in rows[0].package  # sealed
    topic, queued = published[0]
    assert topic == f"kiosk/v1/{KIOSK}/cert"
    assert_valid(queued, "cert-result")
    assert queued["status"] == "queued" and queued["position"] == 1
    assert queued["expected_wait_s"] == 90.0  # one request ahead of none, 1.5 min each
    assert queued["deadline"].startswith("2026-12-07T10:00:00")  # 17:00 local, in UTC
    assert [m["status"] for _, m in published] == ["queued", "queued"]  # told again

    now[0] += 5
    code2 = f"{KIOSK}-261207-000002-5"
    assert certifier.receive(KIOSK, record(signed(fleet_pki, KIOSK, code2, jpeg)))
    assert published[-1][1]["position"] == 2 and published[-1][1]["expected_wait_s"] == 180.0
    assert [i.id for i in certifier.queue(AGENCY)] == [code, code2]

    view = certifier.request(code)
    assert view is not None
    assert view.doc_type == "Giấy khai sinh"  # the kiosk's doc_label, not its code
    assert view.page_jpegs == [jpeg, jpeg] and view.pages == 2
    assert view.citizen_name == "Nguyễn Văn An" and view.fields == {"name": "Nguyễn Văn An"}
    assert view.ocr_text == "GIẤY KHAI SINH" and view.capture == {"camera": {"source": "test"}}
    assert certifier.request("HN-NOPE-000000-0") is None


def test_a_bad_signature_or_a_foreign_certificate_is_refused(
    store: FleetStore,
    signer: TestSigner,
    fleet_pki: FleetPki,
    jpeg: bytes,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    published: list[tuple[str, dict[str, Any]]] = []
    certifier = certifier_for_tests(store, signer, published=published, issuers=fleet_ca(fleet_pki))
    tampered = signed(fleet_pki, KIOSK, f"{KIOSK}-261207-000003-1", jpeg)
    tampered["doc_type"] = "land_use_certificate"  # changed after the kiosk signed
    other_kiosk = signed(fleet_pki, "HN-OTHER-02", f"{KIOSK}-261207-000004-2", jpeg)
    foreign = FleetPki(tmp_path / "foreign")  # another CA, same kiosk name
    not_ours = signed(foreign, KIOSK, f"{KIOSK}-261207-000005-3", jpeg)
    unsigned = package(f"{KIOSK}-261207-000006-4", jpeg)
    bad_code = signed(fleet_pki, KIOSK, "not a code", jpeg)
    squatting = signed(fleet_pki, KIOSK, "HN-OTHER-02-261207-000001-1", jpeg)
    with caplog.at_level(logging.WARNING, logger="fleet.certify.service"):
        for pkg in (tampered, other_kiosk, not_ours, unsigned, bad_code, squatting):
            assert certifier.receive(KIOSK, record(pkg)) is False
    assert published == []
    assert certifier.queue(AGENCY) == []
    reasons = [r.__dict__.get("error") for r in caplog.records if r.msg == "cert-request refused"]
    assert reasons == [
        "signature does not match the package",
        "signed by another kiosk's certificate",
        "certificate not issued by the fleet CA",
        "no ES256 signature",
        "not a cert-request/1: request_id: 'cert-not a code' does not match '^cert-[A-Z0-9-]+$'",
        "request code of another kiosk",
    ]
    assert not any("Nguy" in r.getMessage() + str(r.__dict__) for r in caplog.records)


# --- Art. 7 deadlines and SLA colours -----------------------------------------------------------


def test_art7_deadline_and_sla_colours(
    store: FleetStore, signer: TestSigner, fleet_pki: FleetPki, jpeg: bytes
) -> None:
    now = [0.0]
    config = certify_config(holidays=[dt.date(2026, 12, 7)])  # Monday off
    certifier = certifier_for_tests(
        store, signer, clock=lambda: now[0], issuers=fleet_ca(fleet_pki), config=config
    )

    def receive(code: str, at: float) -> float:
        now[0] = at
        assert certifier.receive(KIOSK, record(signed(fleet_pki, KIOSK, code, jpeg)))
        view = certifier.request(code)
        assert view is not None
        return view.deadline

    # Friday 14:00: due the same day at 17:00; Friday 15:30: the next working day, which the
    # holiday makes Tuesday.
    assert receive(f"{KIOSK}-261204-000001-1", _local(2026, 12, 4, 14, 0)) == _local(
        2026, 12, 4, 17, 0
    )
    assert receive(f"{KIOSK}-261204-000002-2", _local(2026, 12, 4, 15, 30)) == _local(
        2026, 12, 8, 17, 0
    )

    colours: dict[float, str] = {}
    for offset in (30, 119, 121, 179, 181):
        now[0] = _local(2026, 12, 4, 14, 0) + offset
        colours[offset] = certifier.queue(AGENCY)[0].sla
    assert colours == {30: "ok", 119: "ok", 121: "soon", 179: "soon", 181: "late"}

    # Received at 15:30 on Friday, the office open: three minutes, like any other.
    s = certifier.sla
    due = _local(2026, 12, 8, 17, 0)
    assert s(_local(2026, 12, 4, 15, 30), due, _local(2026, 12, 4, 15, 31)) == "ok"
    assert s(_local(2026, 12, 4, 15, 30), due, _local(2026, 12, 4, 15, 34)) == "late"
    # Received at 17:30 on Friday, closed: it counts from Tuesday's opening (Monday is off).
    received = _local(2026, 12, 4, 17, 30)
    assert s(received, due, _local(2026, 12, 7, 16, 0)) == "ok"
    assert s(received, due, _local(2026, 12, 8, 7, 31)) == "ok"
    assert s(received, due, _local(2026, 12, 8, 7, 32, 30)) == "soon"
    assert s(received, due, _local(2026, 12, 8, 7, 33, 1)) == "late"
    # Art. 7's deadline comes first when it is nearer than the SLA: 16:59 for 17:00.
    late_day = _local(2026, 12, 4, 16, 59)
    assert s(late_day, _local(2026, 12, 4, 17, 0), late_day + 1) == "soon"
    assert s(late_day, _local(2026, 12, 4, 17, 0), late_day + 61) == "late"
    # After hours the kiosk is told the wait until the office opens, plus the queue's.
    now[0] = _local(2026, 12, 8, 6, 30)
    assert certifier.expected_wait_s(1, now[0]) == 3600 + 90


# --- over a real Mosquitto, into the real console ------------------------------------------


def console_config(
    tmp_path: Path, broker: Broker, pki: FleetPki, url: str, signer: TestSigner
) -> FleetConfig:
    me = pki.client(CENTRAL)
    return FleetConfig(
        store=StoreSection(url=url, data_key_file=tmp_path / "data.key"),
        mqtt=MqttSection(
            host="localhost",
            port=broker.port,
            ca_file=pki.ca_file,
            cert_file=me.cert,
            key_file=me.key,
        ),
        web=WebSection(secret_key_file=tmp_path / "secret.key", cookie_secure=False),
        provisioning=ProvisioningSection(secrets_key_file=tmp_path / "claims.key"),
        certify=signer.config(),
    )


@pytest.fixture
def console(
    url: str, tmp_path: Path, broker: Broker, fleet_pki: FleetPki, signer: TestSigner
) -> Iterator[Console]:
    c = build_console(console_config(tmp_path, broker, fleet_pki, url, signer))
    c.start()
    try:
        assert c.ingest.wait_connected(10), "console did not connect"
        add_officer(c.store)
        yield c
    finally:
        c.stop()


def test_intake_over_mosquitto_queues_and_answers_the_kiosk(
    console: Console, broker: Broker, fleet_pki: FleetPki, jpeg: bytes, tmp_path: Path
) -> None:
    sim = SimKiosk(broker, fleet_pki.client(KIOSK)).start()
    try:
        sim.peer.subscribe(f"kiosk/v1/{KIOSK}/cert")
        sim.peer.subscribe(f"kiosk/v1/{KIOSK}/ack")
        codes = [f"{KIOSK}-261207-00001{i}-{i}" for i in range(3)]
        sent = [sim.record("cert-request", signed(fleet_pki, KIOSK, c, jpeg)) for c in codes]
        sim.resend("records/cert-request", sent[0])  # the outbox's retry: stored once
        bad = signed(fleet_pki, KIOSK, f"{KIOSK}-261207-000020-0", jpeg)
        bad["ocr_text"] = "changed"
        sent_bad = sim.record("cert-request", bad)

        def answers(status: str) -> list[dict[str, Any]]:
            return [
                m.json()
                for m in sim.peer.received(f"kiosk/v1/{KIOSK}/cert")
                if m.json()["status"] == status
            ]

        for i, code in enumerate(codes):
            msg = sim.peer.wait_for(
                f"kiosk/v1/{KIOSK}/cert", lambda m, c=code: m.json()["request_id"] == c
            ).json()
            assert_valid(msg, "cert-result")
            assert msg["status"] == "queued" and msg["position"] == i + 1
            assert msg["expected_wait_s"] >= (i + 1) * 90
        # Every record acknowledged, the refused one too (it is not lost: it is logged).
        acked: set[str] = set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(acked) < 4:
            acked = {i for m in sim.peer.received(f"kiosk/v1/{KIOSK}/ack") for i in m.json()["ids"]}
            time.sleep(0.05)
        assert acked == {s["id"] for s in [*sent, sent_bad]}
        assert [i.id for i in console.certifier.queue(AGENCY)] == codes
        with console.store.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(cert_requests)).scalar() == 3
            assert conn.execute(sa.select(sa.func.count()).select_from(records)).scalar() == 4

        entry = console.certifier.approve(codes[0], OFFICER, pin=PIN, remote_addr="127.0.0.1")
        console.certifier.refuse(
            codes[1], OFFICER, reason_code="other", reason_text="Thiếu trang 2", remote_addr=""
        )
        console.certifier.see_staff(codes[2], OFFICER, remote_addr="")
        approved = sim.peer.wait_for(
            f"kiosk/v1/{KIOSK}/cert", lambda m: m.json()["status"] == "approved"
        ).json()
        assert_valid(approved, "cert-result")
        assert (approved["number"], approved["book"]) == (1, entry.book) and entry.number == 1
        assert approved["officer_name"] == "Trần Thị Bình"
        pdf = tmp_path / "copy.pdf"
        pdf.write_bytes(base64.b64decode(approved["pdf"]))
        sig = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True).stdout
        assert sig.count("Signature is Valid.") == 2, sig
        refused = sim.peer.wait_for(
            f"kiosk/v1/{KIOSK}/cert", lambda m: m.json()["status"] == "refused"
        ).json()
        assert_valid(refused, "cert-result")
        assert refused["reason_code"] == "other" and refused["reason_text"] == "Thiếu trang 2"
        staff = sim.peer.wait_for(
            f"kiosk/v1/{KIOSK}/cert", lambda m: m.json()["status"] == "see_staff"
        ).json()
        assert staff["request_id"] == codes[2]
        assert len(answers("approved")) == 1 and console.certifier.queue(AGENCY) == []
        # The kiosk sends a request again (it lost the answer): it hears the decision again.
        sim.resend("records/cert-request", sent[0])
        wait_until(lambda: len(answers("approved")) == 2, 10, "the approval sent again")
        again = answers("approved")[1]
        assert_valid(again, "cert-result")
        assert (again["number"], again["sha256"]) == (1, approved["sha256"])
        assert again["pdf"] == approved["pdf"]
        v = console.certifier.verification(codes[0])
        assert v is not None and (v.status, v.number, v.officer_name) == (
            "valid",
            1,
            "Trần Thị Bình",
        )
        r = console.certifier.verification(codes[1])
        assert r is not None and r.status == "refused" and r.number is None
        console.store.revoke_copy(codes[0], reason="test", operator="admin", now=time.time())
        assert console.certifier.verification(codes[0]).status == "revoked"  # type: ignore[union-attr]
        assert json.dumps(console.ingest.stats.by_kind)  # the ingest counted them
    finally:
        sim.close()
