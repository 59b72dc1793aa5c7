"""set-config is allow-list only: every key the issue showed to be dangerous is refused by name
with its reason, blocks and unknown keys cannot smuggle anything in, the allowed keys apply.

The handler is driven as the daemon's fleet command calls it; tests/test_daemon_fleet.py sends
the same refusals as signed commands through a real Mosquitto to a running daemon."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from edge import config as cfg
from edge.fleet.commands import BadArgs
from edge.remote_config import ALLOWED, NOT_ALLOWED, apply_config_change, config_keys, refusal
from tests.conftest import write_sim_config

REPO = Path(__file__).resolve().parent.parent

TRUST = "it is a trust setting (TLS, certificates, keys, command checks); a technician sets it"
ENDPOINT = "it decides where and how the kiosk connects (where records go); a technician sets it"
STORAGE = "it is a storage path (database, copy numbers, keys, models); a technician sets it"
DEVELOPER = "it is a developer or simulation switch, never on in service"
UPDATE = "it steers the root-run updater"

# Issue 21 item 1, key by key: what was accepted (or refused without a reason) and why it must not be.
REFUSED: list[tuple[str, Any, str]] = [
    ("mqtt.tls", False, TRUST),  # records with ID numbers and names in plaintext
    ("mqtt.host", "broker.example.invalid", ENDPOINT),  # ... to another broker
    ("mqtt.port", 1883, ENDPOINT),
    ("storage.state_dir", "/tmp/other-state", STORAGE),  # copy code reissued, replay re-run
    ("copies.trust_dir", "/tmp/my-ca", TRUST),  # which CA makes a copy "valid"
    ("daemon.developer_panel", True, DEVELOPER),  # /api/dev/* and "payment received"
    ("kiosk.id", "HN-OTHER-01", "it is the kiosk's identity, fixed at provisioning"),
    ("mqtt.trust_dir", "/tmp/operators", TRUST),
    ("mqtt.ca_file", "/tmp/ca.pem", TRUST),
    ("mqtt.cert_file", "/tmp/kiosk.crt", TRUST),
    ("mqtt.key_file", "/tmp/kiosk.key", TRUST),
    ("update.restart_command", ["/bin/sh", "-c", "id"], UPDATE),
    ("update.keys_dir", "/tmp/mine", UPDATE),
    ("copies.development_ca", True, DEVELOPER),
    ("copies.signing_key", "/tmp/key.pem", TRUST),
    ("copies.sequence_floor", "/tmp/floor", STORAGE),
    ("copies.vietqr.account", "999999999", "it decides where citizens' fees are paid"),
    ("ui.technician_pin_hash", "", "it guards technician access to the kiosk"),
    ("printer.type", "file", "it describes the device's hardware and where print jobs go"),
    ("web.host", "::1", "it is a local setting of the device"),
    ("copies.retention_days", 365, "it decides how long personal data stays on the kiosk"),
    ("printer.keep_personal_min", 1440, "it decides how long personal data stays on the kiosk"),
]


class Kiosk:
    """The two things the handler uses of the daemon's App: its config file and a restart."""

    def __init__(self, root: Path) -> None:
        self.config_path = write_sim_config(root)
        self.restarts = 0

    def request_restart(self) -> None:
        self.restarts += 1


@pytest.fixture
def kiosk(tmp_path: Path) -> Kiosk:
    return Kiosk(tmp_path)


def refused_message(kiosk: Kiosk, changes: dict[str, Any]) -> str:
    before = kiosk.config_path.read_bytes()
    with pytest.raises(BadArgs) as refused:
        apply_config_change(kiosk, {"changes": changes})
    assert kiosk.config_path.read_bytes() == before  # nothing changed
    assert not kiosk.config_path.with_name("config.toml.bak").exists()
    assert kiosk.restarts == 0
    assert len(str(refused.value)) <= 200  # a command result's message is cut there
    return str(refused.value)


@pytest.mark.parametrize(("key", "value", "reason"), REFUSED, ids=[k for k, _, _ in REFUSED])
def test_each_fixed_key_is_refused_by_name_with_its_reason(
    kiosk: Kiosk, key: str, value: Any, reason: str
) -> None:
    message = refused_message(kiosk, {key: value})
    assert message.startswith(f"nothing changed: {key} cannot be changed remotely: {reason}")


def test_a_block_cannot_smuggle_keys(kiosk: Kiosk) -> None:
    message = refused_message(kiosk, {"mqtt": {"tls": False, "host": "broker.example.invalid"}})
    assert message.startswith(
        "nothing changed: mqtt cannot be changed remotely: it is a whole block"
    )
    # Even a block whose only key would be allowed on its own: the key is named, not the block.
    message = refused_message(kiosk, {"kiosk": {"site": "Phường Mới"}})
    assert "kiosk cannot be changed remotely: it is a whole block" in message
    message = refused_message(kiosk, {"copies.vietqr": {"purpose_prefix": "X"}})
    assert "copies.vietqr cannot be changed remotely: it is a whole block" in message
    # An allowed key given a block as its value.
    message = refused_message(kiosk, {"kiosk.site": {"tls": False}})
    assert (
        "kiosk.site cannot be changed remotely: give it a value (not null, not a block)" in message
    )


def test_unknown_keys_are_refused(kiosk: Kiosk) -> None:
    for key in ("mqtt.tls_off", "services.areas.0.name", "kiosk.site.x", "", "MQTT.TLS"):
        message = refused_message(kiosk, {key: 1})
        assert "there is no such configuration key" in message, key


def test_one_refused_key_refuses_the_whole_command_and_names_the_others(kiosk: Kiosk) -> None:
    message = refused_message(
        kiosk,
        {
            "printer.paper_width_mm": 58,  # allowed, but not applied: the command is refused
            "mqtt.tls": False,
            "mqtt.host": "broker.example.invalid",
            "storage.state_dir": "/tmp/x",
        },
    )
    assert message.startswith(f"nothing changed: mqtt.tls cannot be changed remotely: {TRUST}")
    assert message.endswith("; also refused: mqtt.host, storage.state_dir")


def test_allowed_keys_are_applied_and_validated(kiosk: Kiosk) -> None:
    changes = {
        "printer.paper_width_mm": 58,
        "mqtt.telemetry_interval_s": 300,
        "logging.level": "WARNING",
        "kiosk.site": "Trung tâm Phục vụ hành chính công - Chi nhánh 2",
        "ui.idle_timeout_s": 120,
        "copies.fee_channel": "online",
        "services.areas": [
            {"code": "A", "name": "Hộ tịch", "name_en": "Civil status"},
            {"code": "G", "name": "Tư pháp"},
        ],
    }
    result = apply_config_change(kiosk, {"changes": changes})
    assert result["applied"] == sorted(changes) and result["restarting"] is True
    assert kiosk.restarts == 1
    loaded = cfg.load(kiosk.config_path)
    assert loaded.digest() == result["digest"]
    assert loaded.printer.paper_width_mm == 58
    assert loaded.mqtt.telemetry_interval_s == 300
    assert loaded.logging.level == "WARNING"
    assert loaded.kiosk.site == changes["kiosk.site"]
    assert loaded.ui.idle_timeout_s == 120
    assert loaded.copies.fee_channel == "online"
    assert [a.code for a in loaded.services.areas] == ["A", "G"]
    # An allowed key with a bad value is still refused by the config's own validation.
    before = kiosk.config_path.read_bytes()
    with pytest.raises(BadArgs, match=r"nothing changed: .*printer\.paper_width_mm"):
        apply_config_change(kiosk, {"changes": {"printer.paper_width_mm": 60}})
    assert kiosk.config_path.read_bytes() == before and kiosk.restarts == 1
    with pytest.raises(BadArgs, match=r"nothing changed: .*copies\.fee_channel"):
        apply_config_change(kiosk, {"changes": {"copies.fee_channel": "by-pigeon"}})
    # The fee rules file is the device's: checked when loaded, never set remotely.
    with pytest.raises(BadArgs, match=r"copies\.fee_rules cannot be changed remotely"):
        apply_config_change(kiosk, {"changes": {"copies.fee_rules": "/tmp/rules.toml"}})
    assert kiosk.config_path.read_bytes() == before and kiosk.restarts == 1


def test_every_config_key_is_allowed_or_refused_for_a_stated_reason() -> None:
    """A key added to edge/config.py later must get a decision here, not the fallback."""
    leaves, _blocks = config_keys()
    assert set(ALLOWED) <= leaves
    undecided = sorted(k for k in leaves - set(ALLOWED) if refusal(k, 1) == NOT_ALLOWED)
    assert undecided == []
    assert all(refusal(k, 1) is None for k in ALLOWED)


def test_docs_list_exactly_the_allow_list() -> None:
    text = (REPO / "docs" / "fleet.md").read_text(encoding="utf-8")
    section = text.split("### Remote configuration: the allow-list", 1)[1].split("\n#", 1)[0]
    documented = re.findall(r"^\| `([a-z_.]+)` \|", section, flags=re.MULTILINE)
    assert sorted(documented) == sorted(ALLOWED)
