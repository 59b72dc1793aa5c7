"""E-copies in the daemon: App.copies, status, a CLI issuing beside it, central's revocations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge import config as cfg
from edge.app import App, fleet_commands
from edge.fleet.commands import BadArgs
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
        app.copies = service
        command = fleet_commands(app)["update-revocations"]
        assert command({"revocations": {"codes": [issued.code]}}) == {"codes": 1, "certificates": 0}
        assert service.verify_qr(issued.qr).status == "revoked"
        with pytest.raises(BadArgs):
            command({"revocations": {"codes": [5]}})
        assert command({"revocations": {"codes": []}})["codes"] == 0
        assert service.verify_qr(issued.qr).status == "valid"
