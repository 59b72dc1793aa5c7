"""Staff accounts from central and calls for staff to central, through a real Mosquitto (mutual
TLS, the shipped ACL) and the whole daemon: the signed set-staff command provisions accounts
made with `kiosk-fleet staff-account` (a hash, never the PIN), which then sign in; a citizen's
call reaches central as a schema-valid help.requested, its answer as help.answered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import start_daemon
from tests.mqtt_broker import Broker, FleetPki, Peer, assert_valid
from tests.test_daemon_fleet import BASE, ONLINE_S, command, fleet_config
from tests.test_technician import Browser, verdict

LAN, LAN_PIN = "lan.nguyen", "135790"
MINH, MINH_PIN = "minh.do", "246802"


@pytest.fixture
def operator_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def staff_account(name: str, pin: str, role: str) -> dict:
    """What an operator runs on central: `kiosk-fleet staff-account NAME --role ROLE`."""
    made = subprocess.run(
        [sys.executable, "-c", "import sys; from fleet.cli import main; sys.exit(main())",
         "staff-account", name, "--role", role],
        input=f"{pin}\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    entry = json.loads(made.stdout)
    assert pin not in made.stdout and entry["pin_hash"].startswith("scrypt:")
    return entry


def kiosk_cli(config: Path, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "edge", *args, "--json", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_set_staff_provisions_accounts_and_calls_reach_central(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki, central: Peer, operator_key
) -> None:
    config = fleet_config(tmp_path, broker, fleet_pki, operator_key)
    daemon = start_daemon(config)
    try:
        central.wait_for(f"{BASE}/state", lambda m: m.json()["state"] == "online", timeout=ONLINE_S)
        lan = staff_account(LAN, LAN_PIN, "staff")
        minh = staff_account(MINH, MINH_PIN, "technician")

        # A clear PIN instead of a hash is refused, and nothing is applied.
        clear = {**minh, "pin_hash": MINH_PIN}
        refused = command(central, operator_key, "set-staff", {"accounts": [lan, clear]})
        assert (refused["status"], refused["reason"]) == ("refused", "bad_args")
        assert MINH_PIN not in json.dumps(refused)
        assert kiosk_cli(config, "staff", "list")["staff"] == []

        reply = command(central, operator_key, "set-staff", {"accounts": [lan, minh]})
        assert reply["status"] == "ok", reply
        assert reply["result"] == {"accounts": 2, "changed": [LAN, MINH], "removed": []}
        listed = {a["name"]: a for a in kiosk_cli(config, "staff", "list")["staff"]}
        assert {n: (a["role"], a["origin"]) for n, a in listed.items()} == {
            LAN: ("staff", "central"),
            MINH: ("technician", "central"),
        }

        # The provisioned accounts sign in on the technician screen with their PINs.
        for name, pin in ((LAN, LAN_PIN), (MINH, MINH_PIN)):
            person = Browser(daemon.base)
            person.open_login()
            assert verdict(*person.post("/technician/", name=name, pin=pin)) == "ok"
        audit = kiosk_cli(config, "staff", "audit")["audit"]
        assert [(r["actor"], r["action"], r["subject"]) for r in audit[-2:]] == [
            ("central", "staff.set", MINH),
            ("central", "staff.set", LAN),
        ]  # newest first: the audit lists both, by central, before the sign-ins

        # A citizen calls staff: central gets help.requested with the screen and reason.
        citizen = Browser(daemon.base)
        citizen.open_login()  # any screen: its form token
        citizen.get("/d/")
        assert citizen.post("/help", reason="help_button")[0] == 302
        requested = central.wait_for(
            f"{BASE}/events", lambda m: m.json()["kind"] == "help.requested", timeout=20
        ).json()
        assert_valid(requested, "event")
        detail = requested["detail"]
        assert (detail["screen"], detail["reason"]) == ("guide.start", "help_button")

        # Lan answers it on the technician screen: central gets help.answered, without her name.
        staff = Browser(daemon.base)
        staff.open_login()
        assert verdict(*staff.post("/technician/", name=LAN, pin=LAN_PIN)) == "ok"
        panel = staff.get("/technician/panel")[1]
        assert f'data-call="{detail["call"]}" data-state="open"' in panel
        staff.token = panel.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        assert staff.post(f"/technician/calls/{detail['call']}/answer")[0] == 302
        answered = central.wait_for(
            f"{BASE}/events", lambda m: m.json()["kind"] == "help.answered", timeout=20
        ).json()
        assert_valid(answered, "event")
        assert answered["detail"]["call"] == detail["call"] and answered["detail"]["by"] == "staff"
        assert LAN not in json.dumps(answered)

        # The next list from central replaces its accounts: Lan is removed, and cannot sign in.
        assert command(central, operator_key, "set-staff", {"accounts": [minh]})["result"] == {
            "accounts": 1,
            "changed": [],
            "removed": [LAN],
        }
        gone = Browser(daemon.base)
        gone.open_login()
        assert verdict(*gone.post("/technician/", name=LAN, pin=LAN_PIN)) == "wrong:4"
    finally:
        if daemon.proc.poll() is None:
            daemon.stop()
        if daemon.proc.poll() is None:
            daemon.proc.kill()
