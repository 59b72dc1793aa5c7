"""Config: the example loads, bad keys are named with their line, env overrides apply."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge import config as cfg
from edge.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "config.example.toml"


def run_kiosk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=60
    )


def test_example_config_is_valid_and_typed() -> None:
    config = cfg.load(EXAMPLE, env={})
    assert config.kiosk.id == "HN-TAYHO-01"
    assert isinstance(config.camera, cfg.Picamera2Camera)
    assert isinstance(config.printer, cfg.UsbPrinter)
    assert (config.printer.vendor_id, config.printer.product_id) == (0x04B8, 0x0E15)
    assert config.buttons.pins.cancel == 19
    assert config.web.host == "127.0.0.1"


def test_bundled_simulation_config_is_all_simulated() -> None:
    config = cfg.load(cfg.SIMULATION_CONFIG, env={"KIOSK_STORAGE__STATE_DIR": '"/tmp/x"'})
    assert config.camera.type == "files"
    assert {config.buttons.type, config.tamper.type, config.led.type} == {"simulated"}
    assert config.printer.type == "simulated"
    assert config.storage.state_dir == Path("/tmp/x")


def test_unknown_key_and_bad_value_are_named_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[kiosk]\nid = "HN-01"\n\n[web]\nport = 99999\nhots = "x"\n\n'
        '[printer]\ntype = "network"\nhost = "10.0.0.5"\nport = "nine"\n'
    )
    with pytest.raises(ConfigError) as info:
        cfg.load(path, env={})
    problems = {p.key: p for p in info.value.problems}
    assert problems["web.port"].line == 5
    assert "less than or equal to 65535" in problems["web.port"].message
    assert problems["web.hots"].line == 6
    assert "unknown key" in problems["web.hots"].message
    assert problems["printer.port"].line == 11


def test_missing_required_key_points_at_its_block(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[kiosk]\nsite = "x"\n')
    with pytest.raises(ConfigError) as info:
        cfg.load(path, env={})
    (problem,) = info.value.problems
    assert (problem.key, problem.line) == ("kiosk.id", 1)
    assert "missing" in problem.message


def test_web_ui_refuses_non_loopback_address(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[kiosk]\nid = "HN-01"\n[web]\nhost = "0.0.0.0"\n')
    with pytest.raises(ConfigError, match="loopback only"):
        cfg.load(path, env={})


@pytest.mark.parametrize("name", ["localhost", "ip6-localhost", "kiosk.local"])
def test_web_ui_host_must_be_an_ip_literal_not_a_name(tmp_path: Path, name: str) -> None:
    """A name is resolved through /etc/hosts and NSS, which may map it off loopback."""
    path = tmp_path / "c.toml"
    path.write_text(f'[kiosk]\nid = "HN-01"\n\n[web]\nport = 8080\nhost = "{name}"\n')
    result = run_kiosk("config", "check", str(path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1  # one clear line, no traceback
    assert "line 6: web.host:" in result.stderr
    assert "give a loopback IP address, 127.0.0.1 or ::1" in result.stderr
    for literal in ("127.0.0.1", "::1", "127.0.0.2"):
        path.write_text(f'[kiosk]\nid = "HN-01"\n[web]\nhost = "{literal}"\n')
        assert cfg.load(path, env={}).web.host == literal


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[kiosk]\nid = "HN-01"\n[web\n')
    with pytest.raises(ConfigError) as info:
        cfg.load(path, env={})
    assert info.value.problems[0].line == 3


def test_env_overrides_take_precedence_and_are_typed(tmp_path: Path) -> None:
    # Switching the printer's type from the environment leaves the usb keys behind: refused,
    # and the message says the key came from the environment or the file.
    with pytest.raises(ConfigError) as info:
        cfg.load(EXAMPLE, env={"KIOSK_PRINTER__TYPE": "file"})
    assert {p.key for p in info.value.problems} == {"printer.vendor_id", "printer.product_id"}
    config = cfg.load(
        EXAMPLE, env={"KIOSK_WEB__PORT": "9123", "KIOSK_KIOSK__SITE": "Phường Hàng Bạc"}
    )
    assert config.web.port == 9123
    assert config.kiosk.site == "Phường Hàng Bạc"
    with pytest.raises(ConfigError) as info:
        cfg.load(EXAMPLE, env={"KIOSK_WEB__PORT": "0"})
    (problem,) = info.value.problems
    assert "KIOSK_WEB__PORT" in problem.message


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "c.toml"
    path.parent.mkdir()
    path.write_text('[kiosk]\nid = "HN-01"\n[storage]\nstate_dir = "state"\n')
    assert cfg.load(path, env={}).storage.state_dir == tmp_path / "sub" / "state"


def test_simulated_swaps_every_hardware_part() -> None:
    config = cfg.load(EXAMPLE, env={}).simulated()
    assert config.camera.type == "files"
    assert config.printer.type == "simulated"
    assert config.printer.paper_width_mm == 80
    assert {config.buttons.type, config.tamper.type, config.led.type} == {"simulated"}
    assert config.buttons.pins.ok == 13  # the pin map is kept


def test_cli_config_check_reports_key_line_and_exit_code(tmp_path: Path) -> None:
    ok = run_kiosk("config", "check", str(EXAMPLE))
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[kiosk]\nid = "HN-01"\n[camera]\ntype = "files"\nfsp = 5\n')
    result = run_kiosk("config", "check", str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1  # one clear line, no traceback
    assert "line 5: camera.fsp: unknown key" in result.stderr
    result = run_kiosk("--json", "config", "check", str(bad))
    assert result.returncode == 2
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "config_invalid"
    assert error["problems"] == [
        {"key": "camera.fsp", "line": 5, "message": error["problems"][0]["message"]}
    ]
    missing = run_kiosk("config", "check", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2
    assert "not found" in missing.stderr
