"""`kiosk provision` end to end in simulation, offline (kiosk-ca by file) and online (claim
token over MQTT to a provisioning peer), then mutual TLS with the certificate it was given
against a real Mosquitto; revoked and foreign certificates refused; status, factory reset."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge import config as cfg
from edge.cli import main as kiosk
from edge.fleet import FleetClient
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from provisioning.ca import CertificateAuthority
from provisioning.ca import main as kiosk_ca
from tests.conftest import write_sim_config
from tests.mqtt_broker import (
    CENTRAL,
    Broker,
    FleetPki,
    Peer,
    assert_valid,
    central_peer,
    running_broker,
    wait_until,
)
from tests.provision_helpers import (
    ProvisioningStub,
    add_claim_account,
    center_ca,
    new_claim,
    operator_key,
)

KIOSK = "HN-TEST-01"


@pytest.fixture
def center(tmp_path: Path) -> tuple[CertificateAuthority, FleetPki]:
    return center_ca(tmp_path / "center")


@pytest.fixture
def kiosk_config(tmp_path: Path) -> Path:
    return write_sim_config(tmp_path / "kiosk")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    capsys.readouterr()  # what ran before is not this command's output
    try:
        code = kiosk([*argv, "--json"])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    try:
        data = json.loads(out) if out.strip() else None
    except ValueError:
        data = out
    return code, data, err


def connect_with(config_path: Path, root: Path) -> tuple[FleetClient, Store]:
    """The provisioned kiosk's own config, as the daemon would read it: a FleetClient."""
    config = cfg.load(config_path)
    store = Store(config.storage.db_path)
    store.open()
    outbox = Outbox(store, DataKey.load_or_create(config.storage.data_key_path))
    client = FleetClient.from_config(
        config, store=store, outbox=outbox, reconnect_min_s=0.05, reconnect_max_s=0.5
    )
    client.start()
    return client, store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- offline: CSR by file, kiosk-ca sign, certificate installed ---------------------------------


def test_offline_provisioning_end_to_end_then_mutual_tls(
    tmp_path: Path,
    center: tuple[CertificateAuthority, FleetPki],
    kiosk_config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ca, pki = center
    operator_key(tmp_path / "usb" / "operators", "nguyen.van.an")
    with running_broker(tmp_path / "broker", pki) as broker, central_peer(broker, pki) as central:
        usb = tmp_path / "usb"
        code, data, err = run_cli(
            capsys,
            "provision",
            "--config", str(kiosk_config),
            "--simulate",
            "--yes",
            "--kiosk-id", KIOSK,
            "--site", "Phường Tây Hồ",
            "--location", "Sảnh tầng 1",
            "--paper-width", "58",
            "--pin", "ok=20",
            "--enrol", "offline",
            "--csr-out", str(usb / f"{KIOSK}.csr"),
            "--ca-file", str(ca.cert_path),
            "--operators", str(usb / "operators"),
            "--broker-host", "localhost",
            "--broker-port", str(broker.port),
            "--auto-press",
        )  # fmt: skip
        assert code == 0 and data["waiting"] is True, err
        assert data["next_step"] == "enrolment" and data["waiting_for"] == "certificate"
        state_dir = cfg.load(kiosk_config).storage.state_dir
        pending = state_dir / "pki" / "pending-client.key"
        assert mode(pending) == 0o600
        assert "PRIVATE KEY" not in json.dumps(data) + err  # never printed
        csr = usb / f"{KIOSK}.csr"
        assert csr.read_text().startswith("-----BEGIN CERTIFICATE REQUEST-----")

        # At the center: the CA signs the CSR from the USB stick.
        assert kiosk_ca(["--ca-dir", str(ca.dir), "sign", str(csr), "--kiosk-id", KIOSK]) == 0
        signed = csr.with_suffix(".crt")

        code, summary, err = run_cli(
            capsys,
            "provision",
            "--config", str(kiosk_config),
            "--simulate",
            "--yes",
            "--cert-in", str(signed),
            "--auto-press",
        )  # fmt: skip
        assert code == 0, err
        assert isinstance(summary, dict), summary
        assert summary["provisioned"] and summary["selftest"] == "pass"
        parts = {c["part"]: c["verdict"] for c in summary["checks"]}
        assert parts == {
            "camera": "ok",
            **{f"button.{b}": "ok" for b in ("back", "next", "ok", "cancel", "help")},
            "printer": "ok",
            "led": "ok",
            "tamper": "ok",
        }
        config = cfg.load(kiosk_config)
        assert config.kiosk.id == KIOSK and config.kiosk.site == "Phường Tây Hồ"
        assert config.buttons.pins.ok == 20 and config.printer.paper_width_mm == 58
        assert config.mqtt.type == "broker" and config.mqtt.port == broker.port
        assert mode(config.mqtt.key_file) == 0o600 and not pending.exists()
        assert (config.mqtt.trust_dir / "nguyen.van.an.pem").exists()
        assert (state_dir / "provisioning" / "camera-frame.jpg").stat().st_size > 1000
        jobs = sorted((state_dir / "printer").glob("*.bin"))  # --simulate: the default output
        assert len(jobs) == 2  # the test page and the summary
        assert all(b"\x1dV" in job.read_bytes() for job in jobs)  # whole, cut receipts

        # The kiosk now connects with mutual TLS, with the certificate it was given, and
        # its provisioning report (queued in the outbox) reaches central.
        client, store = connect_with(kiosk_config, tmp_path)
        try:
            birth = central.wait_for(f"kiosk/v1/{KIOSK}/state").json()
            assert birth["state"] == "online"
            record = central.wait_for(f"kiosk/v1/{KIOSK}/records/provisioning").json()
            assert_valid(record, "record")
            assert record["data"]["selftest"] == "pass"
            assert record["data"]["enrolment"] == "offline"
            event = central.wait_for(
                f"kiosk/v1/{KIOSK}/events", lambda m: m.json()["kind"] == "provisioning.completed"
            ).json()
            assert_valid(event, "event")
        finally:
            client.stop()
            store.close()

        # Idempotent: again, nothing redone, the same key.
        key_before = config.mqtt.key_file.read_bytes()
        code, again, err = run_cli(
            capsys, "provision", "--config", str(kiosk_config), "--simulate", "--yes"
        )
        assert code == 0 and again["provisioned"]
        assert err.count("already done") == 6
        assert config.mqtt.key_file.read_bytes() == key_before


# --- online: claim token over MQTT --------------------------------------------------------------


@pytest.fixture
def online(
    tmp_path: Path, center: tuple[CertificateAuthority, FleetPki]
) -> Iterator[tuple[Broker, ProvisioningStub, Any]]:
    ca, pki = center
    broker = Broker(tmp_path / "broker", pki)
    claim = new_claim(KIOSK, serial="10000000cafe0001")
    add_claim_account(broker, claim)  # central adds the claim's account before it is used
    broker.start()
    operator = operator_key(tmp_path / "ops", "tran.thi.binh")
    stub = ProvisioningStub(
        broker,
        pki,
        ca,
        broker_settings={"host": "localhost", "port": broker.port, "topic_prefix": "kiosk/v1"},
        operators=[
            {
                "id": "tran.thi.binh",
                "public_key": (tmp_path / "ops" / "tran.thi.binh.pem").read_text(),
            }
        ],
    )
    stub.claims[claim.claim_id] = claim
    stub.start()
    try:
        yield broker, stub, (claim, operator)
    finally:
        stub.close()
        broker.stop()


def online_args(
    kiosk_config: Path, ca: CertificateAuthority, broker: Broker, token: str
) -> list[str]:
    return [
        "provision",
        "--config", str(kiosk_config),
        "--simulate",
        "--yes",
        "--kiosk-id", KIOSK,
        "--enrol", "online",
        "--claim", token,
        "--ca-file", str(ca.cert_path),
        "--provision-host", "localhost",
        "--provision-port", str(broker.provision_port),
        "--serial", "10000000cafe0001",
        "--enrol-timeout", "10",
        "--skip-selftest",
    ]  # fmt: skip


def test_online_enrolment_with_a_claim_token_then_mutual_tls(
    tmp_path: Path,
    center: tuple[CertificateAuthority, FleetPki],
    kiosk_config: Path,
    online: tuple[Broker, ProvisioningStub, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ca, pki = center
    broker, stub, (claim, _) = online
    # Typed by a technician: upper case, with a space and dashes, still the same token.
    typed = claim.token.upper().replace(".", " . ")[:8] + "-" + claim.token.upper()[8:]
    code, summary, err = run_cli(capsys, *online_args(kiosk_config, ca, broker, typed))
    assert code == 0, err
    assert summary["provisioned"] and summary["selftest"] == "skipped"

    # On the wire: exactly the documented request and answer.
    (request,) = stub.requests
    assert_valid(request, "provision-request")
    assert request["kiosk_id"] == KIOSK and request["serial"] == "10000000cafe0001"
    assert claim.secret not in json.dumps(request)
    (answer,) = stub.responses
    assert_valid(answer, "provision-response")
    assert answer["status"] == "ok"

    config = cfg.load(kiosk_config)
    assert config.mqtt.type == "broker" and config.mqtt.host == "localhost"
    assert (config.mqtt.trust_dir / "tran.thi.binh.pem").exists()
    assert config.mqtt.cert_file.read_text() == answer["certificate"]
    assert mode(config.mqtt.key_file) == 0o600

    with central_peer(broker, pki) as central:
        client, store = connect_with(kiosk_config, tmp_path)
        try:
            assert central.wait_for(f"kiosk/v1/{KIOSK}/state").json()["state"] == "online"
            record = central.wait_for(f"kiosk/v1/{KIOSK}/records/provisioning").json()
            assert record["data"]["enrolment"] == "online"
        finally:
            client.stop()
            store.close()


def test_online_enrolment_refusals_are_clear_and_install_nothing(
    tmp_path: Path,
    center: tuple[CertificateAuthority, FleetPki],
    kiosk_config: Path,
    online: tuple[Broker, ProvisioningStub, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ca, _ = center
    broker, stub, (claim, _) = online

    # A serial central did not allowlist: refused with the documented code, proven.
    args = online_args(kiosk_config, ca, broker, claim.token)
    args[args.index("--serial") + 1] = "ffffffff00000000"
    code, _, err = run_cli(capsys, *args)
    assert code != 0
    assert "serial_mismatch" in err
    assert stub.responses[-1]["error"]["code"] == "serial_mismatch"
    config = cfg.load(kiosk_config)
    assert config.mqtt.type == "off" and not config.mqtt.cert_file

    # A wrong secret: the broker itself refuses the claim account.
    wrong = claim.claim_id + "." + "a" * 32
    code, _, err = run_cli(capsys, *online_args(kiosk_config, ca, broker, wrong))
    assert code != 0 and "refused the claim account" in err

    # A CA that is not the broker's (a wrong file on the USB stick): the TLS check fails.
    stranger_ca = FleetPki(tmp_path / "stranger").ca_file
    args = online_args(kiosk_config, ca, broker, claim.token)
    args[args.index("--ca-file") + 1] = str(stranger_ca)
    started = time.monotonic()
    code, _, err = run_cli(capsys, *args)
    assert code != 0 and "cannot reach the provisioning listener" in err
    assert time.monotonic() - started < 10

    # A token that is not one at all: a Vietnamese message first.
    code, _, err = run_cli(capsys, *online_args(kiosk_config, ca, broker, "not-a-token"))
    assert code == 2 and "Mã nhận thiết bị không hợp lệ" in err

    # The right serial after all: the same device key is still pending and is enrolled.
    code, summary, err = run_cli(capsys, *online_args(kiosk_config, ca, broker, claim.token))
    assert code == 0 and summary["provisioned"], err

    # One time only: the same claim for a new device key (re-provisioning) is refused.
    code, _, err = run_cli(
        capsys, *online_args(kiosk_config, ca, broker, claim.token), "--reprovision"
    )
    assert code != 0 and "claim_used" in err
    assert stub.responses[-1]["error"]["code"] == "claim_used"


def test_claim_account_is_confined_to_its_own_topics(
    tmp_path: Path, center: tuple[CertificateAuthority, FleetPki], online: Any
) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    ca, _ = center
    broker, _, (claim, _) = online
    seen: list[str] = []
    acks: dict[int, Any] = {}
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.username_pw_set(claim.claim_id, claim.secret)
    c.tls_set(ca_certs=str(ca.cert_path))
    c.on_message = lambda cl, u, m: seen.append(m.topic)
    c.on_publish = lambda cl, u, mid, rc, p: acks.__setitem__(mid, rc)
    c.connect("localhost", broker.provision_port)
    c.loop_start()
    try:
        wait_until(c.is_connected, what="claim account connected")
        c.subscribe("#", qos=1)
        c.subscribe("kiosk/v1/#", qos=1)
        other = c.publish("kiosk/v1/HN-OTHER-01/state", b"{}", qos=1)
        forged = c.publish("provision/v1/cotherclaim22/request", b"{}", qos=1)
        for info in (other, forged):
            info.wait_for_publish(5)
        wait_until(lambda: len(acks) == 2, what="PUBACKs")
        assert all(str(rc) == "Not authorized" for rc in acks.values())
        time.sleep(0.3)
        assert seen == []
    finally:
        c.disconnect()
        c.loop_stop()


# --- revoked and foreign certificates ------------------------------------------------------------


def test_revoked_or_foreign_certificates_are_refused(
    tmp_path: Path, center: tuple[CertificateAuthority, FleetPki]
) -> None:
    from edge.fleet.certificates import start_rotation

    ca, pki = center
    issued = {}
    for kiosk_id in ("HN-REVOKED-01", "HN-GOOD-01"):
        state = tmp_path / kiosk_id
        csr = start_rotation(state, kiosk_id)
        cert = state / "client.crt"
        cert.write_text(ca.sign_csr(csr))
        issued[kiosk_id] = (cert, state / "pki" / "pending-client.key")
    assert kiosk_ca(["--ca-dir", str(ca.dir), "revoke", str(issued["HN-REVOKED-01"][0])]) == 0
    crl = tmp_path / "fleet-ca.crl"
    assert kiosk_ca(["--ca-dir", str(ca.dir), "crl", "--out", str(crl)]) == 0
    stranger = FleetPki(tmp_path / "stranger").client("HN-GOOD-01")  # right name, wrong CA

    with running_broker(tmp_path / "broker", pki, crl=crl) as broker:
        from tests.mqtt_broker import Identity

        good = Peer(broker, Identity("HN-GOOD-01", *issued["HN-GOOD-01"])).connect()
        good.close()
        for identity in (Identity("HN-REVOKED-01", *issued["HN-REVOKED-01"]), stranger):
            peer = Peer(broker, identity)
            peer.client.connect_async("127.0.0.1", broker.port)
            peer.client.loop_start()
            try:
                time.sleep(0.8)
                assert not peer.client.is_connected(), identity.cn
            finally:
                peer.client.loop_stop()
        log = broker.log()
        assert "revoked" in log.lower() or "certificate verify failed" in log.lower()
        # Central's own certificate is not affected by the CRL.
        Peer(broker, pki.client(CENTRAL)).connect().close()


# --- status, expiry, factory reset ----------------------------------------------------------------


def test_status_warns_before_the_certificate_expires(
    tmp_path: Path,
    center: tuple[CertificateAuthority, FleetPki],
    kiosk_config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from edge.fleet.certificates import certificate_info, start_rotation

    ca, _ = center
    config = cfg.load(kiosk_config)
    cert = kiosk_config.parent / "pki" / "kiosk.crt"
    cert.parent.mkdir()
    cert.write_text(ca.sign_csr(start_rotation(config.storage.state_dir, "TEST-01"), days=10))
    code, status, _ = run_cli(capsys, "provision", "--config", str(kiosk_config), "--status")
    assert code == 0 and not status["provisioned"] and status["next_step"] == "identity"
    assert 9 < status["certificate"]["days_left"] <= 10
    assert "sắp hết hạn" in status["certificate"]["warning"]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=11)
    assert "đã hết hạn" in certificate_info(cert, now=later)["warning"]
    long_lived = tmp_path / "long.crt"
    long_lived.write_text(ca.sign_csr(start_rotation(config.storage.state_dir, "TEST-01")))
    assert certificate_info(long_lived)["warning"] is None


def test_factory_reset_needs_the_kiosk_id_then_removes_keys_data_and_database(
    tmp_path: Path, kiosk_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = cfg.load(kiosk_config)
    store = Store(config.storage.db_path)
    store.open()
    key = DataKey.load_or_create(config.storage.data_key_path)
    Outbox(store, key).add("record", "records/copy", {"citizen": "Nguyễn Văn A"})
    store.close()
    client_key = kiosk_config.parent / "pki" / "kiosk.key"
    client_key.parent.mkdir()
    client_key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nsecret\n")
    cfg_text = kiosk_config.read_text().replace(
        "[daemon]", f'[mqtt]\nkey_file = "{client_key}"\n\n[daemon]'
    )
    kiosk_config.write_text(cfg_text)

    code, _, err = run_cli(capsys, "factory-reset", "--config", str(kiosk_config), "--confirm", "X")
    assert code == 2 and "Chưa xóa gì" in err
    assert config.storage.db_path.exists() and client_key.exists()

    code, result, _ = run_cli(
        capsys, "factory-reset", "--config", str(kiosk_config), "--confirm", "TEST-01"
    )
    assert code == 0 and result["reset"]
    assert not client_key.exists()
    assert not config.storage.state_dir.exists()  # database, data key, outbox: gone
    after = cfg.load(kiosk_config)
    assert after.kiosk.id == "UNPROVISIONED" and after.mqtt.type == "off"
    assert os.listdir(client_key.parent) == []


# --- the hardware self-test with a technician ------------------------------------------------------


class ScriptedTechnician:
    """A technician at the simulated kiosk: reads each prompt and acts on the simulated pins
    (through gpiozero's MockFactory, as a finger would), answering questions as told."""

    interactive = True

    def __init__(self, config: cfg.Config, presses: dict[str, str], answers: dict[str, bool]):
        self.config = config
        self.presses = presses  # prompt's button -> the button actually pressed
        self.answers = answers
        self.heard: list[str] = []

    def say(self, text: str) -> None:
        from edge.adapters.gpio import mock_factory

        self.heard.append(text)
        pins = self.config.buttons.pins
        for name in ("back", "next", "ok", "cancel", "help"):
            if text.startswith("Nhấn nút") and f"the {name} button" in text:
                pin = mock_factory().pin(getattr(pins, self.presses.get(name, name)))
                pin.drive_low()
                time.sleep(0.05)
                pin.drive_high()
        door = mock_factory().pin(self.config.tamper.pin)
        if "open the kiosk door" in text:
            door.drive_high()
        if "close the kiosk door" in text:
            door.drive_low()

    def ask(self, question: str, default: str | None = None) -> str:
        raise AssertionError(f"unexpected question {question}")

    def confirm(self, question: str, default: bool = True) -> bool:
        self.heard.append(question)
        return next((v for k, v in self.answers.items() if k in question), default)


def test_technician_self_test_names_a_swapped_button_and_what_they_saw(
    tmp_path: Path, kiosk_config: Path
) -> None:
    from edge.events import EventBus
    from edge.printing import PrintQueue
    from provisioning.hwtest import technician_selftest

    config = cfg.load(kiosk_config).simulated()
    tech = ScriptedTechnician(
        config, presses={"ok": "next"}, answers={"LED": False, "platen": True, "test page": True}
    )
    from edge.adapters import build_printer

    store = Store(tmp_path / "db.sqlite")
    store.open()
    try:
        printer = PrintQueue(
            build_printer(config),
            store=store,
            key=DataKey.load_or_create(tmp_path / "k"),
            bus=EventBus(),
        )
        checks = technician_selftest(
            config, ui=tech, out_dir=tmp_path / "out", printer=printer, auto=False, timeout_s=1.0
        )
    finally:
        store.close()
    rows = {c.part: c for c in checks}
    assert rows["button.back"].verdict == "ok" and rows["button.help"].verdict == "ok"
    assert rows["button.ok"].verdict == "fail"
    assert "pressed instead: next" in rows["button.ok"].detail  # swapped wiring, named
    assert rows["led"].verdict == "fail" and "saw no blink" in rows["led"].detail
    assert rows["camera"].verdict == "ok" and (tmp_path / "out" / "camera-frame.jpg").exists()
    assert rows["printer"].verdict == "ok" and rows["tamper"].verdict == "ok"
    assert any("Nhấn nút Đồng ý / OK" in line for line in tech.heard)  # Vietnamese first


def test_a_failed_self_test_stops_provisioning_and_a_rerun_resumes_there(
    tmp_path: Path,
    center: tuple[CertificateAuthority, FleetPki],
    kiosk_config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ca, _ = center
    from edge.fleet.certificates import start_rotation

    base = [
        "provision", "--config", str(kiosk_config), "--simulate", "--yes",
        "--kiosk-id", KIOSK, "--enrol", "offline", "--ca-file", str(ca.cert_path),
        "--broker-host", "localhost",
    ]  # fmt: skip
    code, waiting, _ = run_cli(capsys, *base)
    assert code == 0 and waiting["waiting"]
    state_dir = cfg.load(kiosk_config).storage.state_dir
    cert = tmp_path / "signed.crt"
    cert.write_text(ca.sign_csr(start_rotation(state_dir, KIOSK)))  # the same pending key
    # No technician presses anything (no --auto-press, nobody at the buttons).
    code, _, err = run_cli(capsys, *base, "--cert-in", str(cert), "--press-timeout", "0.3")
    assert code == 3 and "Kiểm tra phần cứng chưa đạt" in err
    code, status, _ = run_cli(capsys, "provision", "--config", str(kiosk_config), "--status")
    assert status["next_step"] == "selftest" and status["selftest"] == "fail"
    assert status["certificate"]["subject"] == KIOSK  # what was done stays done
    code, summary, err = run_cli(
        capsys, "provision", "--config", str(kiosk_config), "--simulate", "--yes", "--auto-press"
    )
    assert code == 0 and summary["provisioned"] and summary["selftest"] == "pass", err
    assert err.count("already done") == 4


# --- interactive, on a terminal ---------------------------------------------------------------------


class Terminal:
    """`kiosk provision` on a pseudo-terminal: the technician reads prompts and types."""

    def __init__(self, argv: list[str]) -> None:
        import pty
        import subprocess
        import sys

        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge", *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )
        os.close(slave)
        self.screen = ""

    def expect(self, text: str, timeout: float = 20.0) -> None:
        import select

        deadline = time.monotonic() + timeout
        while text not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r}; screen:\n{self.screen}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                assert chunk, f"the command ended before {text!r}; screen:\n{self.screen}"
                self.screen += chunk.decode(errors="replace")
        self.screen = self.screen.split(text, 1)[1]

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def close(self) -> int:
        try:
            return self.proc.wait(30)
        finally:
            os.close(self.master)


def test_interactive_provisioning_on_a_terminal(
    tmp_path: Path, center: tuple[CertificateAuthority, FleetPki], kiosk_config: Path
) -> None:
    ca, _ = center
    term = Terminal(["provision", "--config", str(kiosk_config), "--simulate"])
    term.expect("Mã ki-ốt / kiosk id [TEST-01]: ")  # the defaults come from the config
    term.type("hn-test-02")  # typed in lower case
    term.expect("Địa điểm / site [Phường Thử nghiệm]: ")
    term.type("")
    term.expect("Vị trí / location: ")
    term.type("Quầy 3")
    term.expect("paper width [80]: ")
    term.type("58")
    for part, default in (("back", 5), ("next", 6), ("ok", 13), ("cancel", 19), ("help", 26)):
        term.expect(f"GPIO pin for {part} [{default}]: ")
        term.type("")
    term.expect("GPIO pin for tamper [16]: ")
    term.type("21")
    term.expect("GPIO pin for led [12]: ")
    term.type("")
    term.expect("enrol [offline]: ")
    term.type("")
    term.expect("fleet CA file: ")
    term.type(str(ca.cert_path))
    term.expect("CSR")
    assert term.close() == 0
    config = cfg.load(kiosk_config)
    assert config.kiosk.id == "HN-TEST-02" and config.kiosk.location == "Quầy 3"
    assert config.tamper.pin == 21 and config.printer.paper_width_mm == 58
    csr = config.storage.state_dir / "provisioning" / "HN-TEST-02.csr"
    assert (
        kiosk_ca(["--ca-dir", str(ca.dir), "sign", str(csr), "--out", str(tmp_path / "c.crt")]) == 0
    )

    term = Terminal(["provision", "--config", str(kiosk_config), "--simulate", "--auto-press"])
    term.expect("signed cert: ")
    term.type(str(tmp_path / "c.crt"))
    term.expect("broker host [localhost]: ")
    term.type("")
    term.expect("Is the platen in view? (c/k, y/n) [c]: ")
    term.type("c")
    term.expect("Is the test page readable? (c/k, y/n) [c]: ")
    term.type("y")
    term.expect("provisioned")
    assert term.close() == 0
    assert "PRIVATE KEY" not in term.screen
    code = kiosk(["provision", "--config", str(kiosk_config), "--status", "--json"])
    assert code == 0


def test_the_self_test_waits_until_the_running_daemon_lets_go_of_the_hardware(
    tmp_path: Path,
    center: tuple[CertificateAuthority, FleetPki],
    daemon: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from edge.fleet.certificates import start_rotation

    ca, _ = center
    base = [
        "provision", "--config", str(daemon.config), "--simulate", "--yes", "--auto-press",
        "--kiosk-id", "TEST-01", "--enrol", "offline", "--ca-file", str(ca.cert_path),
        "--broker-host", "localhost",
    ]  # fmt: skip
    assert run_cli(capsys, *base)[0] == 0  # steps 1-3 need no hardware: fine meanwhile
    state_dir = cfg.load(daemon.config).storage.state_dir
    cert = tmp_path / "signed.crt"
    cert.write_text(ca.sign_csr(start_rotation(state_dir, "TEST-01")))
    code, _, err = run_cli(capsys, *base, "--cert-in", str(cert))
    assert code == 2 and "systemctl stop kiosk-edge" in err
    daemon.stop()
    code, summary, err = run_cli(capsys, *base)
    assert code == 0 and summary["selftest"] == "pass", err


def test_answers_file_scripts_the_whole_identity_and_bad_answers_are_named(
    tmp_path: Path,
    center: tuple[CertificateAuthority, FleetPki],
    kiosk_config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ca, _ = center
    usb = tmp_path / "usb"
    usb.mkdir()
    (usb / "fleet-ca.crt").write_bytes(ca.cert_path.read_bytes())
    answers = usb / "HN-TEST-03.toml"
    answers.write_text(
        """
kiosk_id = "HN-TEST-03"
site = "Phường Hoàn Kiếm"
location = "Tầng 2"
paper_width_mm = 80
enrol = "offline"
ca_file = "fleet-ca.crt"          # relative to this file
csr_out = "HN-TEST-03.csr"
broker_host = "mqtt.example.vn"
[pins]
help = 4
""",
        encoding="utf-8",
    )
    code, data, err = run_cli(
        capsys, "provision", "--config", str(kiosk_config), "--yes", "--answers", str(answers)
    )
    assert code == 0 and data["waiting"], err
    config = cfg.load(kiosk_config)
    assert (config.kiosk.id, config.kiosk.site, config.buttons.pins.help) == (
        "HN-TEST-03",
        "Phường Hoàn Kiếm",
        4,
    )
    assert (usb / "HN-TEST-03.csr").exists()

    answers.write_text('kiosk_id = "HN-TEST-03"\nprinter = "epson"\n', encoding="utf-8")
    code, _, err = run_cli(
        capsys, "provision", "--config", str(kiosk_config), "--yes", "--answers", str(answers)
    )
    assert code == 2 and "unknown answers printer" in err
    code, _, err = run_cli(
        capsys, "provision", "--config", str(kiosk_config), "--yes", "--reprovision",
        "--kiosk-id", "HN-TEST-03", "--pin", "ok=6",
    )  # fmt: skip
    assert code == 2 and "two parts share a pin" in err  # ok=6 is next's pin
    assert cfg.load(kiosk_config).buttons.pins.ok == 13  # nothing written


def test_the_daemon_tells_central_when_its_certificate_expires_soon(
    tmp_path: Path, center: tuple[CertificateAuthority, FleetPki]
) -> None:
    from edge.fleet.certificates import install_certificate, start_rotation
    from tests.conftest import start_daemon

    ca, pki = center
    root = tmp_path / "kiosk"
    root.mkdir()
    pki_dir = root / "pki"
    (pki_dir).mkdir()
    (pki_dir / "ca.crt").write_bytes(ca.cert_path.read_bytes())
    csr = start_rotation(root / "state", "TEST-01")
    install_certificate(
        ca.sign_csr(csr, days=12),
        state_dir=root / "state",
        kiosk_id="TEST-01",
        ca_file=pki_dir / "ca.crt",
        cert_file=pki_dir / "kiosk.crt",
        key_file=pki_dir / "kiosk.key",
    )
    with running_broker(tmp_path / "broker", pki) as broker, central_peer(broker, pki) as central:
        config = write_sim_config(
            root,
            extra=f"""
[mqtt]
type = "broker"
host = "localhost"
port = {broker.port}
ca_file = "pki/ca.crt"
cert_file = "pki/kiosk.crt"
key_file = "pki/kiosk.key"
""",
        )
        daemon = start_daemon(config)
        try:
            event = central.wait_for(
                "kiosk/v1/TEST-01/events",
                lambda m: m.json()["kind"] == "certificate.expiring",
                timeout=15,
            ).json()
            assert_valid(event, "event")
            assert 11 < event["detail"]["days_left"] <= 12
        finally:
            daemon.stop()
