"""Online enrolment end to end: the console's provisioning service on a real Mosquitto (the
shipped config: mutual-TLS listener + enrolment listener with claim accounts), the kiosk's
own client (`provisioning.online.enrol`), then the new certificate on the mTLS listener."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleet.config import (
    FleetConfig,
    MqttSection,
    ProvisioningSection,
    StoreSection,
    WebSection,
)
from fleet.console import Console, build_console
from fleet.operators import create_operator
from provisioning.online import ClaimToken, EnrolmentFailed, build_request, enrol
from tests.mqtt_broker import CENTRAL, Broker, Identity, Peer, wait_until
from tests.provision_helpers import PROVISIONING_CN, center_ca

KIOSK = "HN-TAYHO-71"
SERIAL = "10000000cafe0071"


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[dict[str, Any]]:
    ca, pki = center_ca(tmp_path)
    broker = Broker(tmp_path / "broker", pki)
    broker.passwd.write_text("")  # no claim yet
    broker.start()
    central, service = pki.client(CENTRAL), pki.client(PROVISIONING_CN)
    config = FleetConfig(
        store=StoreSection(
            url=f"sqlite:///{tmp_path / 'fleet.db'}", data_key_file=tmp_path / "data.key"
        ),
        mqtt=MqttSection(
            host="localhost",
            port=broker.port,
            ca_file=pki.ca_file,
            cert_file=central.cert,
            key_file=central.key,
        ),
        web=WebSection(secret_key_file=tmp_path / "secret"),
        provisioning=ProvisioningSection(
            ca_dir=ca.dir,
            cert_days=200,
            secrets_key_file=tmp_path / "claims.key",
            cert_file=service.cert,
            key_file=service.key,
            password_file=broker.passwd,
            reload_command=["kill", "-HUP", str(broker.proc.pid)],
            account_grace_s=0,
            broker_host="localhost",
        ),
    )
    console: Console = build_console(config)
    console.start()
    try:
        assert console.ingest.wait_connected(10)
        assert console.provisioning.wait_connected(10)
        yield {"console": console, "broker": broker, "ca": ca, "pki": pki}
    finally:
        console.stop()
        broker.stop()


def reloads(broker: Broker) -> int:
    return broker.log().count("Reloading config")


def make_csr(kiosk_id: str) -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, kiosk_id)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def test_a_claim_made_on_the_console_enrols_a_kiosk_which_then_connects_with_mtls(
    tmp_path: Path, fleet: dict[str, Any]
) -> None:
    console, broker, ca = fleet["console"], fleet["broker"], fleet["ca"]
    create_operator(console.store, "nguyen.van.an", "Nguyễn Văn An", "mật-khẩu-dài-9")
    before = reloads(broker)
    token = ClaimToken.parse(
        console.create_claim(KIOSK, site="Phường Tây Hồ", serial=SERIAL, created_by="an")
    )
    assert token.claim_id in broker.passwd.read_text()  # the claim's broker account
    wait_until(lambda: reloads(broker) > before, 5, "broker re-read its password file")
    csr, key = make_csr(KIOSK)
    answer = enrol(  # the kiosk's own code: it verifies the proof before returning
        token,
        build_request(token, kiosk_id=KIOSK, serial=SERIAL, csr_pem=csr, site="Phường Tây Hồ"),
        host="localhost",
        port=broker.provision_port,
        ca_file=ca.cert_path,
        timeout=15,
    )
    assert answer["status"] == "ok" and answer["kiosk_id"] == KIOSK
    assert answer["broker"] == {
        "host": "localhost",
        "port": broker.port,
        "topic_prefix": "kiosk/v1",
        "protocol": "auto",
    }
    assert [o["id"] for o in answer["operators"]] == ["nguyen.van.an"]
    cert = x509.load_pem_x509_certificate(answer["certificate"].encode())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_path.read_bytes()))
    assert 199 <= (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 201
    # The console knows the kiosk, its site and its certificate's expiry.
    row = console.store.kiosk(KIOSK)
    assert row["site"] == "Phường Tây Hồ"
    assert row["cert_not_after"] == pytest.approx(cert.not_valid_after_utc.timestamp())
    # The claim's account is gone from the broker: the token cannot be used again.
    wait_until(lambda: token.claim_id not in broker.passwd.read_text(), 10, "account removed")
    wait_until(lambda: console.store.claim(token.claim_id)["account_removed"], 10, "recorded")
    # The new identity works on the mutual-TLS listener.
    (tmp_path / "k").mkdir()
    cert_path, key_path = tmp_path / "k" / "client.crt", tmp_path / "k" / "client.key"
    cert_path.write_text(answer["certificate"])
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    kiosk = Peer(broker, Identity(KIOSK, cert_path, key_path)).connect()
    try:
        kiosk.publish(
            f"kiosk/v1/{KIOSK}/state",
            '{"schema":"state/1","kiosk_id":"HN-TAYHO-71","state":"offline","reason":"stopped"}',
            retain=True,
        )
        wait_until(lambda: console.store.kiosk(KIOSK)["state"] == "offline", 10, "seen")
    finally:
        kiosk.close()


def test_a_wrong_serial_is_refused_with_a_proven_error_and_the_claim_stays_usable(
    fleet: dict[str, Any],
) -> None:
    console, broker, ca = fleet["console"], fleet["broker"], fleet["ca"]
    before = reloads(broker)
    token = ClaimToken.parse(console.create_claim(KIOSK, serial=SERIAL, created_by="an"))
    wait_until(lambda: reloads(broker) > before, 5, "broker re-read its password file")
    csr, _ = make_csr(KIOSK)
    with pytest.raises(EnrolmentFailed) as refused:
        enrol(
            token,
            build_request(token, kiosk_id=KIOSK, serial="10000000beef0000", csr_pem=csr),
            host="localhost",
            port=broker.provision_port,
            ca_file=ca.cert_path,
            timeout=15,
        )
    assert refused.value.reason == "serial_mismatch"
    assert console.store.claim(token.claim_id)["used_at"] is None
    assert token.claim_id in broker.passwd.read_text()
    answer = enrol(
        token,
        build_request(token, kiosk_id=KIOSK, serial=SERIAL, csr_pem=csr),
        host="localhost",
        port=broker.provision_port,
        ca_file=ca.cert_path,
        timeout=15,
    )
    assert answer["status"] == "ok"
