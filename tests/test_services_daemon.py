"""The citizen services inside the whole daemon, reporting to a real Mosquitto: the CLI takes a
ticket and looks a dossier up through the daemon's connection, central's queue figures reach
the kiosk, and the signed update-catalog command installs, refuses and rolls back catalogs."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from edge.services.catalog import BUNDLED_CATALOG
from tests.central_responder import CentralResponder
from tests.conftest import start_daemon
from tests.mqtt_broker import Broker, FleetPki, assert_valid, wait_until
from tests.test_daemon_fleet import BASE, command, fleet_config

BUNDLED_VERSION = json.loads(BUNDLED_CATALOG.read_text(encoding="utf-8"))["version"]

CODE = "000.00.13.H26-241120-0007"


@pytest.fixture
def operator_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def central(broker: Broker, fleet_pki: FleetPki) -> Iterator[Any]:
    """Central that answers dossier requests and sees the kiosk's whole tree."""
    responder = CentralResponder(broker, fleet_pki, also="kiosk/v1/#")
    yield responder
    responder.close()


def kiosk_cli(config: Path, *argv: str) -> tuple[int, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "edge", *argv, "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = done.stdout if done.stdout.strip() else done.stderr
    return done.returncode, json.loads(out)


def get(daemon: Any, path: str) -> Any:
    with urllib.request.urlopen(daemon.base + path, timeout=10) as response:
        return json.loads(response.read())


def test_services_in_the_daemon(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki, central: Any, operator_key
) -> None:
    config = fleet_config(tmp_path, broker, fleet_pki, operator_key)
    central.dossiers[CODE] = {
        "status": "ready",
        "received_at": "2024-11-20T08:10:00+07:00",
        "due_at": "2024-11-25T17:00:00+07:00",
        "completed_at": "2024-11-24T09:00:00+07:00",
        "on_time": True,
        "pickup": "Quầy số 3, Bộ phận Một cửa",
        "timeline": [{"at": "2024-11-20T08:10:00+07:00", "status": "received"}],
    }
    peer = central.peer
    daemon = start_daemon(config)
    try:
        birth = peer.wait_for(f"{BASE}/state", lambda m: m.json()["state"] == "online").json()
        assert {"tickets", "dossier-status"} <= set(birth["capabilities"])
        telemetry = peer.wait_for(f"{BASE}/telemetry").json()
        assert_valid(telemetry, "telemetry")
        assert telemetry["versions"]["catalog"] == BUNDLED_VERSION

        # Dossier status from the CLI goes through the daemon's MQTT connection.
        code, answer = kiosk_cli(config, "dossier", "status", CODE.lower())
        assert code == 0 and answer["source"] == "central"
        assert answer["status_vi"] == "Đã có kết quả, chờ trả" and answer["pickup"]
        assert central.requests[-1][0] == f"{BASE}/req/dossier-status"
        code, refused = kiosk_cli(config, "dossier", "status", "12345")
        assert code == 2 and refused["error"]["code"] == "invalid_dossier_code"
        assert refused["error"]["message_vi"].startswith("Mã hồ sơ không đúng định dạng")

        # A ticket from the CLI: its record reaches central through the daemon's outbox drain.
        code, ticket = kiosk_cli(config, "ticket", "take", "A")
        assert code == 0 and ticket["number"] == "A-001" and ticket["printed"]["printed"]
        record = peer.wait_for(f"{BASE}/records/ticket").json()
        assert_valid(record, "record")
        assert_valid(record["data"], "ticket-record")
        assert record["data"]["number"] == "A-001" and record["id"].startswith("ticket-TEST-01-")

        # Central's retained queue figures reach the daemon's ticket service.
        stats = {
            "schema": "queue-stats/1",
            "day": ticket["day"],
            "time": "2026-11-23T02:00:00+00:00",
            "areas": {"A": {"serving": 1, "avg_service_s": 120, "counters_open": 1}},
        }
        peer.publish(f"{BASE}/res/queue-stats", json.dumps(stats), retain=True)

        def waiting_in_a() -> int:
            areas = get(daemon, "/api/services/areas")["areas"]
            return next(a["waiting"] for a in areas if a["code"] == "A")

        wait_until(lambda: waiting_in_a() == 0, 10, "queue figures applied")

        # update-catalog: a new version (gzip'd, as a large catalog must be), telemetry says so.
        document = json.loads(BUNDLED_CATALOG.read_text(encoding="utf-8"))
        bundled_version = document["version"]
        document["version"] = "2027.01.1"
        document["procedures"][0]["fee"]["text"] = "Miễn lệ phí (cập nhật)"
        packed = base64.b64encode(gzip.compress(json.dumps(document).encode())).decode()
        reply = command(peer, operator_key, "update-catalog", {"catalog_gzip_b64": packed})
        assert reply["status"] == "ok", reply
        assert reply["result"] == {
            "version": "2027.01.1",
            "previous": bundled_version,
            "procedures": len(document["procedures"]),
        }
        peer.wait_for(
            f"{BASE}/telemetry", lambda m: m.json()["versions"].get("catalog") == "2027.01.1"
        )
        shown = get(daemon, "/api/services/guide/HT-001")
        assert shown["fee"]["text"] == "Miễn lệ phí (cập nhật)"
        assert get(daemon, "/api/services/guide/search?q=khai%20sin")["hits"][0]["id"] == "HT-001"

        # An invalid catalog is refused with the reason; nothing changes.
        broken = {**document, "version": "2099.1", "procedures": [{"id": "bad"}]}
        reply = command(peer, operator_key, "update-catalog", {"catalog": broken})
        assert (reply["status"], reply["reason"]) == ("refused", "bad_args")
        assert "procedures/0" in reply["message"]
        assert get(daemon, "/api/services/guide/search?q=x")["version"] == "2027.01.1"

        # Rollback: the previous catalog is back, and survives a restart of the service.
        reply = command(peer, operator_key, "update-catalog", {"rollback": True})
        assert reply["result"]["version"] == BUNDLED_VERSION
        code, info = kiosk_cli(config, "guide", "info")
        assert info["version"] == BUNDLED_VERSION and info["previous"] is True
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(5)
