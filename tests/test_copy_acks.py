"""Central -> kiosk for e-copies, against a real Mosquitto with mTLS and the shipped ACL: an
issued copy is purged only after central's record-ack/1 (not on the broker's PUBACK) and its
retention window; malformed acks are logged and ignored; central's retained copy-revocations/1
(codes and signing-certificate serials) reaches the kiosk's verifier, adding only; and the real
fleet console acknowledges a real copy, and revokes it, end to end."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from edge.copies.verify import TrustStore, install_revocation_list, write_revocations
from edge.fleet.inbox import Malformed, parse_record_ack, parse_revocation_list
from tests.conftest import Daemon, start_daemon, wait_for
from tests.copies_helpers import CITIZEN_QR, write_pages
from tests.mqtt_broker import Broker, FleetPki, Peer, assert_valid
from tests.test_daemon_fleet import BASE, KIOSK, fleet_config

RETENTION_DAYS = 0.00002  # 1.7 s
REPO = Path(__file__).resolve().parent.parent


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def ack(ids: list[str], kiosk_id: str = KIOSK) -> dict[str, Any]:
    return {"schema": "record-ack/1", "kiosk_id": kiosk_id, "ids": ids, "time": now_iso()}


def copy_revocations(codes: list[Any], certificates: list[dict[str, str]]) -> dict[str, Any]:
    """Central's retained list, as fleet.responders.Revocations.document() makes it."""
    return {"schema": "copy-revocations/1", "issued_at": now_iso(), "codes": codes,
            "certificates": certificates}  # fmt: skip


def copy_config(tmp_path: Path, broker: Broker, fleet_pki: FleetPki) -> Path:
    config = fleet_config(tmp_path, broker, fleet_pki, ec.generate_private_key(ec.SECP256R1()))
    with config.open("a", encoding="utf-8") as f:
        f.write(
            f"\n[copies]\ndevelopment_ca = true\nretention_days = {RETENTION_DAYS}\n"
            "purge_interval_s = 0.2\n"
        )
    return config


def kiosk(*args: str, config: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The kiosk CLI on the daemon's state, from this worktree."""
    return subprocess.run(
        [sys.executable, "-m", "edge", *args, "--config", str(config)],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


def issue_copy_json(tmp_path: Path, config: Path) -> dict[str, Any]:
    """`kiosk copy issue --json`: code, qr, issued_at, ... and pdf (the file written)."""
    out = tmp_path / "copy.pdf"
    pages = [str(p) for p in write_pages(tmp_path, 1)]
    result = kiosk(
        "copy", "issue", "--pages", *pages, "--citizen-qr", CITIZEN_QR, "--out", str(out),
        "--json", config=config,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def issue_copy(tmp_path: Path, config: Path) -> tuple[str, Path]:
    issued = issue_copy_json(tmp_path, config)
    return issued["code"], Path(issued["pdf"])


def status(daemon: Daemon) -> dict[str, Any]:
    code, body = daemon.get("/api/status")
    assert code == 200
    return body


def log_lines(daemon: Daemon, text: str) -> list[dict[str, Any]]:
    return [line for line in daemon.log() if text in line["msg"]]


# --- the daemon, a central peer, a real broker ----------------------------------------------


def test_copy_is_purged_only_after_centrals_ack_and_retention_malformed_acks_ignored(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki, central: Peer
) -> None:
    config = copy_config(tmp_path, broker, fleet_pki)
    daemon = start_daemon(config)
    try:
        central.wait_for(f"{BASE}/state", lambda m: m.json()["state"] == "online")
        code, _ = issue_copy(tmp_path, config)
        record = central.wait_for(f"{BASE}/records/copy", timeout=20).json()
        assert record["id"] == f"copy-{code}"
        # The broker's PUBACK deleted the outbox row ...
        wait_for(lambda: status(daemon)["parts"]["storage"]["outbox"]["record"] == 0, 10)
        # ... and purge passes later than the retention window after it, the copy is still
        # here: only central's own acknowledgement starts that window.
        puback_seen = dt.datetime.now(dt.UTC).timestamp()
        wait_for(
            lambda: (
                (status(daemon)["copies"]["last_purge"] or 0)
                > puback_seen + RETENTION_DAYS * 86400 + 1.0
            ),
            10,
        )
        copies = status(daemon)["copies"]
        assert (copies["stored"], copies["awaiting_central"]) == (1, 1)

        # Malformed acknowledgements: each logged and ignored, nothing crashes.
        malformed = [
            b"not json",
            b"\xff\xfe",
            json.dumps({"schema": "record-ack/1", "ids": [f"copy-{code}"]}).encode(),
            json.dumps(ack([])).encode(),
            json.dumps({**ack([f"copy-{code}"]), "ids": f"copy-{code}"}).encode(),
            json.dumps(ack([f"copy-{code}"], kiosk_id="TEST-02")).encode(),  # not this kiosk
            json.dumps({**ack([f"copy-{code}"]), "time": "hôm qua"}).encode(),
        ]
        for payload in malformed:
            central.publish(f"{BASE}/ack", payload)
        wait_for(lambda: len(log_lines(daemon, "malformed record acknowledgement")) == 7, 10)
        ignored = log_lines(daemon, "malformed record acknowledgement from central ignored")
        assert len(ignored) == len(malformed)
        assert all(line["level"] == "WARNING" and line["reason"] for line in ignored)
        assert "for kiosk TEST-02, not this one" in ignored[5]["reason"]
        body = status(daemon)
        assert body["fleet"]["connected"] and body["fleet"]["central_ignored"] == len(malformed)
        assert (body["copies"]["stored"], body["copies"]["awaiting_central"]) == (1, 1)
        assert daemon.proc.poll() is None

        # Central's real acknowledgement (schema-valid), with an id that is not a copy.
        good = ack([f"copy-{code}", "ffffffff-0000-4000-8000-000000000000"])
        assert_valid(good, "record-ack")
        central.publish(f"{BASE}/ack", json.dumps(good))
        wait_for(lambda: status(daemon)["copies"]["stored"] == 0, 10)
        assert log_lines(daemon, "central stored issued copies")[0]["count"] == 1
        assert log_lines(daemon, "purged issued copies past retention")[0]["count"] == 1
        result = kiosk("copy", "get", code, "--out", str(tmp_path / "gone.pdf"), config=config)
        assert result.returncode != 0 and not (tmp_path / "gone.pdf").exists()

        # A redelivered ack (QoS 1 may do that) is harmless.
        central.publish(f"{BASE}/ack", json.dumps(good))
        wait_for(lambda: status(daemon)["fleet"]["records_acked"] == 4, 10)
        assert daemon.proc.poll() is None
        errors = [line for line in daemon.log() if line["level"] in ("ERROR", "CRITICAL")]
        assert errors == []
    finally:
        assert daemon.stop() == 0


def test_retained_revocation_list_from_central_makes_the_kiosk_say_revoked(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki, central: Peer
) -> None:
    config = copy_config(tmp_path, broker, fleet_pki)
    code, pdf = issue_copy(tmp_path, config)  # before the daemon: the CLI alone
    revoked_file = tmp_path / "state" / "copies" / "revoked.json"
    verdict = kiosk("copy", "verify", "--code", code, "--json", config=config)
    # Signed with the development key: sound and not revoked, but never valid.
    assert verdict.returncode == 1 and json.loads(verdict.stdout)["status"] == "development"
    # Central published its list (retained) while the kiosk was off; first a broken one (a
    # serial that is not hex): refused whole, its code is not taken either.
    broken = copy_revocations([code], [{"serial": "not-hex"}])
    central.publish("fleet/v1/revocations", json.dumps(broken), retain=True)
    daemon = start_daemon(config)
    try:
        wait_for(lambda: log_lines(daemon, "malformed revocation list from central ignored"), 10)
        assert not revoked_file.exists()
        assert status(daemon)["fleet"]["central_ignored"] == 1

        listing = copy_revocations(
            ["HN-A-261123-000001-X", {"code": code.lower(), "reason": "Cấp nhầm hồ sơ"}], []
        )
        assert_valid(listing, "copy-revocations")
        central.publish("fleet/v1/revocations", json.dumps(listing), retain=True)
        wait_for(lambda: code in revoked_file.read_text() if revoked_file.exists() else False, 10)
        for args in (("--code", code), (str(pdf),)):
            verdict = kiosk("copy", "verify", *args, "--json", config=config)
            body = json.loads(verdict.stdout)
            assert verdict.returncode == 1 and body["status"] == "revoked", body
            assert body["reason"] == "copy revoked: Cấp nhầm hồ sơ"
    finally:
        assert daemon.stop() == 0
    # The retained list comes again at every connect; nothing changes, the file is not rewritten.
    before = revoked_file.stat().st_mtime_ns
    daemon = start_daemon(config)
    try:
        unchanged = wait_for(lambda: log_lines(daemon, "central's revocation list unchanged"), 10)
        assert (unchanged[0]["codes"], unchanged[0]["certificates"]) == (2, 0)
    finally:
        assert daemon.stop() == 0
    assert revoked_file.stat().st_mtime_ns == before
    assert json.loads(revoked_file.read_text())["codes"][1] == {
        "code": code,
        "reason": "Cấp nhầm hồ sơ",
    }


def test_certificate_serial_in_the_retained_list_revokes_the_copies_it_signed(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki, central: Peer
) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    config = copy_config(tmp_path, broker, fleet_pki)
    issued = issue_copy_json(tmp_path, config)
    with open(issued["pdf"], "rb") as f:  # the serial from the copy itself, not our code
        serial = PdfFileReader(f).embedded_signatures[0].signer_cert.serial_number
    revoked_file = tmp_path / "state" / "copies" / "revoked.json"
    verdicts = [("--code", issued["code"]), ("--qr", issued["qr"]), (issued["pdf"],)]
    daemon = start_daemon(config)
    try:
        # Revoked from an hour after this copy was issued: the copy stays valid.
        later = (dt.datetime.fromisoformat(issued["issued_at"]) + dt.timedelta(hours=1)).isoformat()
        listing = copy_revocations([], [{"serial": f"{serial:x}", "revoked_at": later}])
        assert_valid(listing, "copy-revocations")
        central.publish("fleet/v1/revocations", json.dumps(listing), retain=True)
        wait_for(lambda: log_lines(daemon, "central's revocation list merged"), 10)
        verdict = kiosk("copy", "verify", issued["pdf"], "--json", config=config)
        assert json.loads(verdict.stdout)["status"] == "development" and verdict.returncode == 1
        # Then every copy it signed (no revoked_at; the serial in upper case): revoked.
        listing = copy_revocations([], [{"serial": f"{serial:X}"}])
        central.publish("fleet/v1/revocations", json.dumps(listing), retain=True)
        wait_for(lambda: len(log_lines(daemon, "central's revocation list merged")) == 2, 10)
        assert json.loads(revoked_file.read_text())["certificates"] == [{"serial": f"{serial:x}"}]
        for args in verdicts:
            verdict = kiosk("copy", "verify", *args, "--json", config=config)
            body = json.loads(verdict.stdout)
            assert verdict.returncode == 1 and body["status"] == "revoked", (args, body)
            assert body["reason"] == "signing certificate revoked"
        # The earlier list again (a stale retained copy) does not narrow it back.
        listing = copy_revocations([], [{"serial": f"{serial:x}", "revoked_at": later}])
        central.publish("fleet/v1/revocations", json.dumps(listing), retain=True)
        wait_for(lambda: log_lines(daemon, "central's revocation list unchanged"), 10)
        assert json.loads(revoked_file.read_text())["certificates"] == [{"serial": f"{serial:x}"}]
    finally:
        assert daemon.stop() == 0


# --- the real fleet console acknowledging a real copy -------------------------------------


def test_fleet_console_stores_a_real_copy_acks_it_and_its_revocation_reaches_the_kiosk(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki
) -> None:
    from fleet.console import build_console
    from tests.test_fleet_console import console_config

    (tmp_path / "central").mkdir()
    console = build_console(console_config(tmp_path / "central", broker, fleet_pki))
    console.start()
    config = copy_config(tmp_path, broker, fleet_pki)
    daemon: Daemon | None = None
    try:
        assert console.ingest.wait_connected(10)
        daemon = start_daemon(config)
        code, pdf = issue_copy(tmp_path, config)
        stored = wait_for(
            lambda: [r for r in console.store.records(kiosk_id=KIOSK) if r["id"] == f"copy-{code}"],
            20,
        )
        assert stored[0]["kind"] == "copy"
        # The console's record-ack/1 makes the kiosk start the retention window; then it purges.
        wait_for(lambda: status(daemon)["copies"]["stored"] == 0, 15)
        assert log_lines(daemon, "central stored issued copies")
        # An operator revokes it at the console: the kiosk's verifier says so.
        console.revocations.revoke(code, reason="Cấp nhầm", operator="nguyen.van.an")
        assert_valid(console.revocations.document(), "copy-revocations")
        revoked_file = tmp_path / "state" / "copies" / "revoked.json"
        wait_for(lambda: revoked_file.exists() and code in revoked_file.read_text(), 10)
        verdict = kiosk("copy", "verify", str(pdf), "--json", config=config)
        assert json.loads(verdict.stdout)["status"] == "revoked" and verdict.returncode == 1
    finally:
        if daemon is not None:
            assert daemon.stop() == 0
        console.stop()


# --- parsing and the format conversion ---------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"[]",
        b'{"schema": "record-ack/1", "kiosk_id": "TEST-01", "ids": ["a"], "time": NaN}',
        json.dumps({**ack(["a"]), "extra": 1}).encode(),
        json.dumps({**ack(["a"]), "ids": [""]}).encode(),
        json.dumps({**ack(["a"]), "schema": "record-ack/2"}).encode(),
        b"{" * 2_000_000,
    ],
)
def test_malformed_record_ack_is_refused(payload: bytes) -> None:
    with pytest.raises(Malformed):
        parse_record_ack(payload, KIOSK)


def test_record_ack_ids_are_deduplicated_in_order() -> None:
    payload = json.dumps(ack(["copy-B", "copy-A", "copy-B"])).encode()
    assert parse_record_ack(payload, KIOSK) == ["copy-B", "copy-A"]


def test_revocation_list_merges_into_the_copy_revocation_file(tmp_path: Path) -> None:
    path = tmp_path / "revoked.json"
    early, late = "2026-11-01T00:00:00+00:00", "2026-12-01T00:00:00+07:00"
    # What the update-revocations command installed: a code and three certificates.
    write_revocations(
        path,
        {
            "codes": ["HN-X-261123-000001-A"],
            "certificates": [
                {"serial": "5f"},
                {"serial": "0a0b", "revoked_at": late},
                {"serial": "77"},
            ],
        },
    )
    listing = copy_revocations(
        [{"code": "hn-x-261123-000001-a", "reason": "lỗi"}, "HN-X-261123-000002-B"],
        [
            {"serial": "5F"},  # the same certificate
            {"serial": "A0B", "revoked_at": early},  # the same, revoked earlier: widens
            {"serial": "77", "revoked_at": early},  # would narrow "every copy": ignored
            {"serial": "c0ffee", "revoked_at": early},  # new
        ],
    )
    document = parse_revocation_list(json.dumps(listing).encode())
    assert install_revocation_list(path, document) == {
        "codes": 2,
        "certificates": 4,
        "added": 2,
        "written": True,
    }
    body = json.loads(path.read_text())
    assert body == {
        "schema": "copy-revocations/1",
        "codes": [{"code": "HN-X-261123-000001-A", "reason": "lỗi"}, "HN-X-261123-000002-B"],
        "certificates": [
            {"serial": "5f"},
            {"serial": "0a0b", "revoked_at": early},
            {"serial": "77"},
            {"serial": "c0ffee", "revoked_at": early},
        ],
    }
    assert_valid(body, "copy-revocations")  # the file form: no issued_at
    codes, serials = TrustStore(tmp_path / "trust", path).revocations()  # as the verifier reads it
    assert codes == {"HN-X-261123-000001-A": "lỗi", "HN-X-261123-000002-B": "revoked"}
    assert serials == {
        0x5F: None,
        0x0A0B: dt.datetime.fromisoformat(early),
        0x77: None,
        0xC0FFEE: dt.datetime.fromisoformat(early),
    }
    # Redelivered, or an empty list: nothing removed, the file is not rewritten.
    before = path.stat().st_mtime_ns
    assert install_revocation_list(path, document)["written"] is False
    empty = parse_revocation_list(json.dumps(copy_revocations([], [])).encode())
    assert install_revocation_list(path, empty) == {
        "codes": 2,
        "certificates": 4,
        "added": 0,
        "written": False,
    }
    assert path.stat().st_mtime_ns == before


def test_revocation_list_repairs_a_file_the_verifier_could_not_read(tmp_path: Path) -> None:
    path = tmp_path / "revoked.json"
    path.write_text(
        json.dumps(
            {
                "schema": "copy-revocations/1",
                "codes": ["HN-X-261123-000001-A", {"reason": "no code"}, 7],
                "certificates": [{"serial": "zz"}, {"serial": "5f"}, {"serial": "5F"}],
            }
        )
    )
    assert TrustStore(tmp_path / "trust", path).revocations() == ({}, {})  # ignored whole
    document = parse_revocation_list(json.dumps(copy_revocations([], [])).encode())
    assert install_revocation_list(path, document)["written"] is True
    assert json.loads(path.read_text()) == {
        "schema": "copy-revocations/1",
        "codes": ["HN-X-261123-000001-A"],
        "certificates": [{"serial": "5f"}],
    }
    assert TrustStore(tmp_path / "trust", path).revocations() == (
        {"HN-X-261123-000001-A": "revoked"},
        {0x5F: None},
    )


@pytest.mark.parametrize(
    "change",
    [
        {"schema": "revocation-list/1"},
        {"codes": None},
        {"certificates": "5f"},
        {"count": 0},  # the old revocation-list/1 shape
        {"issued_at": "hôm qua"},
        {"codes": [""]},
        {"codes": ["X" * 65]},
        {"codes": [{"code": "HN-X-261123-000001-A", "reason": "r" * 201}]},
        {"codes": [{"code": "HN-X-261123-000001-A", "revoked_at": "2026-11-23T00:00:00Z"}]},
        {"certificates": [{"serial": "0x5f"}]},
        {"certificates": [{"serial": "5" * 41}]},
        {"certificates": [{"serial": "5f", "revoked_at": "2026-11-23"}]},
        {"certificates": [{"serial": "5f", "reason": "lost"}]},
    ],
)
def test_malformed_revocation_list_is_refused(change: dict[str, Any]) -> None:
    listing = {**copy_revocations(["HN-X-261123-000001-A"], [{"serial": "5f"}]), **change}
    with pytest.raises(Malformed, match="copy-revocations"):
        parse_revocation_list(json.dumps(listing).encode())


def test_revocation_list_without_issued_at_is_accepted() -> None:
    listing = copy_revocations(["HN-X-261123-000001-A"], [])
    del listing["issued_at"]
    assert parse_revocation_list(json.dumps(listing).encode())["codes"] == listing["codes"]
