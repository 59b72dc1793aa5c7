"""Results by post for the citizen's own dossier only: the kiosk asks central (a real Mosquitto,
the real fleet console) whether the code exists and belongs to the card it read, sending a
salted scrypt proof, never the ID number; central keeps only an HMAC tag of that proof."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.services.dossier import (
    OwnerCheckUnavailable,
    OwnerNotConfirmed,
    owner_proof,
)
from fleet import dossiers as central
from fleet.console import Console, build_console
from tests.mqtt_broker import Broker, FleetPki, assert_valid, wait_until
from tests.test_dossier import Kiosk
from tests.test_fleet_console import console_config

OWNER = "001090012345"  # 12 digits, the form of a Căn cước number (test value)
OTHER = "079185000321"
CODE = "000.00.17.H26-261120-0001"  # a sample dossier the console seeds
NO_OWNER = "H26.22-261115-0015"


@pytest.fixture
def console(tmp_path: Path, broker: Broker, fleet_pki: FleetPki) -> Iterator[Console]:
    c = build_console(console_config(tmp_path, broker, fleet_pki))
    c.start()
    try:
        assert c.ingest.wait_connected(10), "console did not connect"
        key = central.owner_key(tmp_path / "dossier-owner.key")
        central.set_owner(c.store, key, CODE, OWNER)
        yield c
    finally:
        c.stop()


@pytest.fixture
def kiosk(tmp_path: Path, broker: Broker, fleet_pki: FleetPki) -> Iterator[Kiosk]:
    k = Kiosk(tmp_path / "kiosks", broker, fleet_pki, "HN-TAYHO-71", dossier_timeout_s=5.0)
    yield k
    k.close()


def test_proof_is_the_same_on_both_sides_and_differs_per_dossier() -> None:
    assert owner_proof(CODE, OWNER) == central.owner_proof(CODE, OWNER)
    assert owner_proof(CODE, OWNER) != owner_proof(NO_OWNER, OWNER)
    assert owner_proof(CODE, OWNER) != owner_proof(CODE, OTHER)
    assert OWNER not in owner_proof(CODE, OWNER)


def test_owner_confirmed_others_and_unknown_codes_refused_nothing_in_clear(
    console: Console,
    kiosk: Kiosk,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # Everything the kiosk publishes and receives on this path, as bytes, recorded on the way.
    sent: list[bytes] = []
    received: list[bytes] = []
    publish_live, on_response = kiosk.fleet.publish_live, kiosk.dossiers._on_response

    def record_publish(suffix: str, payload: dict, **kw: object) -> bool:
        sent.append(json.dumps(payload, ensure_ascii=False).encode())
        return publish_live(suffix, payload, **kw)

    def record_answer(suffix: str, payload: bytes, properties: object) -> None:
        received.append(payload)
        on_response(suffix, payload, properties)

    kiosk.fleet.publish_live = record_publish  # type: ignore[method-assign]
    kiosk.fleet.listen("res/dossier-status", record_answer)

    # The owner: accepted, the code normalised.
    assert kiosk.dossiers.check_owner(" 000.00.17.h26-261120-0001 ", OWNER) == CODE
    # Someone else's card: refused, with no hint of whose dossier it is.
    with pytest.raises(OwnerNotConfirmed) as err:
        kiosk.dossiers.check_owner(CODE, OTHER)
    assert err.value.detail["reason"] == "mismatch"
    assert err.value.message_vi.startswith("Hồ sơ này không đứng tên")
    # A code that does not exist (the example) and one with no owner recorded.
    with pytest.raises(OwnerNotConfirmed) as err:
        kiosk.dossiers.check_owner("ZZ-991231-000001", OWNER)
    assert err.value.detail["reason"] == "not_found"
    assert err.value.message_vi.startswith("Không có hồ sơ nào")
    with pytest.raises(OwnerNotConfirmed) as err:
        kiosk.dossiers.check_owner(NO_OWNER, OWNER)
    assert err.value.detail["reason"] == "unknown"
    # An ordinary status lookup still works and says nothing about the owner.
    assert kiosk.dossiers.lookup(CODE).found
    requests = [json.loads(b) for b in sent]
    answers = [json.loads(b) for b in received]
    for body in requests:
        assert_valid(body, "dossier-status-request")
    for body in answers:
        assert_valid(body, "dossier-status-response")
    assert [a.get("owner") for a in answers] == ["match", "mismatch", None, "unknown", None]
    assert requests[0]["owner_proof"] == owner_proof(CODE, OWNER)
    assert "owner_proof" not in requests[-1]
    # No ID number in clear: not on the wire, not in a log, not in central's table.
    wire = b"".join(sent + received)
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    row = json.dumps(console.store.dossier(CODE), default=str)
    for number in (OWNER, OTHER):
        assert number.encode() not in wire
        assert number not in logged
        assert number not in row
    assert "owner_tag" in row and "owner_tag" not in wire.decode()


def test_a_tag_is_useless_without_centrals_key(console: Console, tmp_path: Path) -> None:
    tag = console.store.dossier(CODE)["data"]["owner_tag"]
    proof = owner_proof(CODE, OWNER)
    assert central.owner_answer({"owner_tag": tag}, b"\0" * 32, proof) == "mismatch"
    assert central.owner_answer({"owner_tag": tag}, None, proof) == "unknown"


def test_offline_central_refuses_never_accepts_unchecked(
    console: Console, kiosk: Kiosk, broker: Broker
) -> None:
    assert kiosk.dossiers.check_owner(CODE, OWNER) == CODE
    kiosk.dossiers.lookup(CODE)  # a cached status is no confirmation of the owner
    broker.stop()
    wait_until(lambda: not kiosk.fleet.connected, 10, "kiosk sees the broker gone")
    with pytest.raises(OwnerCheckUnavailable) as err:
        kiosk.dossiers.check_owner(CODE, OWNER)
    assert err.value.detail["reason"] == "offline"
    assert err.value.message_vi.startswith("Hiện không kiểm tra được hồ sơ")
    assert "quầy" in err.value.message_vi


def test_cli_records_the_owner_from_stdin_and_a_new_import_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from fleet.cli import main as fleet_cli
    from fleet.store import FleetStore
    from protocol.crypto import DataKey

    config = tmp_path / "fleet.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "fleet.db"}"\n'
        f'data_key_file = "{tmp_path / "fleet-data.key"}"\n'
        f'[web]\nsecret_key_file = "{tmp_path / "web.key"}"\n'
        f'[provisioning]\nsecrets_key_file = "{tmp_path / "claims.key"}"\n'
    )
    assert fleet_cli(["-c", str(config), "dossier", "seed"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(OWNER + "\n"))
    assert fleet_cli(["-c", str(config), "dossier", "owner", CODE]) == 0
    assert capsys.readouterr().out.strip().endswith("owner recorded")
    store = FleetStore(
        f"sqlite:///{tmp_path / 'fleet.db'}",
        data_key=DataKey.load_or_create(tmp_path / "fleet-data.key"),
    )
    try:
        row = store.dossier(CODE)["data"]
        # A new status from the dossier system replaces the row but keeps the owner.
        update = {k: v for k, v in row.items() if k != "owner_tag"}
        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({**update, "status": "returned"})))
        assert fleet_cli(["-c", str(config), "dossier", "put", CODE]) == 0
        data = store.dossier(CODE)["data"]
        assert data["status"] == "returned" and data["owner_tag"] == row["owner_tag"]
        key = (tmp_path / "dossier-owner.key").read_bytes()
        assert central.owner_answer(data, key, owner_proof(CODE, OWNER)) == "match"
        assert central.owner_answer(data, key, owner_proof(CODE, OTHER)) == "mismatch"
        # An import cannot set the tag itself.
        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({**update, "owner_tag": "0"})))
        assert fleet_cli(["-c", str(config), "dossier", "put", CODE]) != 0
    finally:
        store.close()
    assert OWNER.encode() not in (tmp_path / "fleet.db").read_bytes()
