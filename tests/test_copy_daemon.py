"""E-copies in the daemon: App.copies, status, a CLI issuing beside it, central's revocations."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge import config as cfg
from edge.app import App
from edge.fleet.commands import BadArgs
from edge.fleet.handlers import fleet_commands
from tests.conftest import start_daemon, write_sim_config
from tests.copies_helpers import CITIZEN_QR, copy_service, page_image, write_pages


def test_daemon_has_copies_and_a_cli_can_issue_beside_it(tmp_path: Path) -> None:
    config = write_sim_config(tmp_path, extra="\n[copies]\ndevelopment_ca = true\n")
    daemon = start_daemon(config)
    try:
        status, body = daemon.get("/api/status")
        assert status == 200 and body["copies"]["available"] is True
        assert body["copies"]["development"] is True and body["copies"]["stored"] == 0
        pages = [str(p) for p in write_pages(tmp_path, 1)]
        result = subprocess.run(
            [sys.executable, "-m", "edge", "copy", "issue", "--config", str(config), "--pages",
             *pages, "--citizen-qr", CITIZEN_QR, "--out", str(tmp_path / "c.pdf"), "--json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        code = json.loads(result.stdout)["code"]
        status, body = daemon.get("/api/status")
        assert body["copies"]["stored"] == 1 and body["copies"]["awaiting_central"] == 1
        assert body["copies"]["sequence_high"] >= int(code.split("-")[-2])
    finally:
        assert daemon.stop() == 0


def test_daemon_without_a_signing_identity_still_runs(tmp_path: Path) -> None:
    daemon = start_daemon(write_sim_config(tmp_path))
    try:
        status, body = daemon.get("/api/status")
        assert status == 200 and body["ready"] and body["copies"]["available"] is False
        assert "signing key or certificate unusable" in body["copies"]["detail"]
    finally:
        assert daemon.stop() == 0


def test_update_revocations_command_installs_central_list(tmp_path: Path) -> None:
    with copy_service(tmp_path) as service:
        issued = service.issue([page_image(1)], {"id_number": "001099012345", "name": "An"})
        app = App(cfg.load(tmp_path / "config.toml"))
        app.parts = dataclasses.replace(app.parts, copies=service)
        command = fleet_commands(app)["update-revocations"]
        assert command({"revocations": {"codes": [issued.code]}}) == {"codes": 1, "certificates": 0}
        assert service.verify_qr(issued.qr).status == "revoked"
        with pytest.raises(BadArgs):
            command({"revocations": {"codes": [5]}})
        assert command({"revocations": {"codes": []}})["codes"] == 0
        assert service.verify_qr(issued.qr).status == "development"


def test_issued_copy_reaches_central_and_central_can_revoke_it(
    tmp_path: Path, broker, fleet_pki, central
) -> None:
    import base64

    from cryptography.hazmat.primitives.asymmetric import ec

    from edge.copies.verify import TrustStore, verify_pdf
    from tests.mqtt_broker import assert_valid
    from tests.test_daemon_fleet import BASE, command, fleet_config

    operator_key = ec.generate_private_key(ec.SECP256R1())
    config = fleet_config(tmp_path, broker, fleet_pki, operator_key)
    with config.open("a", encoding="utf-8") as f:
        f.write("\n[copies]\ndevelopment_ca = true\n")
    daemon = start_daemon(config)
    try:
        central.wait_for(f"{BASE}/state", lambda m: m.json()["state"] == "online")
        pages = [str(p) for p in write_pages(tmp_path, 2)]
        out = tmp_path / "copy.pdf"
        result = subprocess.run(
            [sys.executable, "-m", "edge", "copy", "issue", "--config", str(config), "--pages",
             *pages, "--citizen-qr", CITIZEN_QR, "--out", str(out), "--json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        code = json.loads(result.stdout)["code"]
        record = central.wait_for(f"{BASE}/records/copy", timeout=20).json()
        assert_valid(record, "record")
        assert_valid(record["data"], "copy")
        assert record["id"] == f"copy-{code}" and record["data"]["code"] == code
        pdf = base64.b64decode(record["data"]["pdf_base64"])
        assert pdf == out.read_bytes()
        # Central checks it with the kiosk's CA, as anyone can.
        trust = TrustStore(tmp_path / "state" / "copies" / "trust")
        assert verify_pdf(pdf, trust).status == "development"
        # Central revokes it; the kiosk's verifier says so from then on.
        reply = command(
            central, operator_key, "update-revocations", {"revocations": {"codes": [code]}}
        )
        assert reply["status"] == "ok" and reply["result"] == {"codes": 1, "certificates": 0}, reply
        verdict = subprocess.run(
            [sys.executable, "-m", "edge", "copy", "verify", "--config", str(config), str(out), "--json"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert verdict.returncode == 1 and json.loads(verdict.stdout)["status"] == "revoked"
    finally:
        assert daemon.stop() == 0


def test_app_copies_is_what_the_web_ui_calls(tmp_path: Path) -> None:
    from tests.conftest import wait_for

    config = cfg.load(write_sim_config(tmp_path, extra="\n[copies]\ndevelopment_ca = true\n"))
    app = App(config)
    try:
        app.start()
        issued = app.copies.issue([page_image(1)], {"id_number": "001099012345", "name": "An"})
        assert app.copies.verify_qr(issued.qr).status == "development"
        wait_for(lambda: app.counts_today().get("copy.issued") == 1)
        assert app.status()["copies"]["stored"] == 1
        outcome = app.copies.print_receipt(issued.code)
        assert outcome.printed and app.printer.jobs()[0]["kind"] == "receipt"
    finally:
        app.stop()
