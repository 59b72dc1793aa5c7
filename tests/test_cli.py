"""CLI conventions: --json everywhere, exit 2 for bad input, 3 for missing hardware, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_sim_config

REPO = Path(__file__).resolve().parent.parent


def kiosk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=60
    )


def test_unknown_command_is_one_line_exit_2() -> None:
    result = kiosk("frobnicate")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "invalid choice" in result.stderr
    result = kiosk("--json", "frobnicate")
    assert result.returncode == 2
    assert json.loads(result.stderr)["error"]["code"] == "bad_input"


def test_options_work_before_and_after_the_subcommand(tmp_path: Path) -> None:
    config = write_sim_config(tmp_path)
    before = kiosk("--json", "--config", str(config), "config", "show")
    after = kiosk("config", "show", "--json", "--config", str(config))
    assert before.returncode == after.returncode == 0
    assert json.loads(before.stdout) == json.loads(after.stdout)
    assert json.loads(before.stdout)["kiosk"]["id"] == "TEST-01"


def test_reprint_of_unknown_job_is_bad_input(tmp_path: Path) -> None:
    config = write_sim_config(tmp_path)
    result = kiosk("print", "reprint", "nosuchjob", "--json", "--config", str(config))
    assert result.returncode == 2
    assert json.loads(result.stderr)["error"]["message"] == "no print job 'nosuchjob'"


def test_print_test_without_daemon_prints_locally(tmp_path: Path) -> None:
    config = write_sim_config(tmp_path)
    result = kiosk("print", "test", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("printed (job ")
    assert len(list((tmp_path / "printer-out").glob("*.bin"))) == 1


def test_missing_hardware_exits_3_without_traceback(tmp_path: Path) -> None:
    # A real kiosk's config on a PC: Pi camera, GPIO and USB printer are all missing.
    config = tmp_path / "real.toml"
    config.write_text(
        (REPO / "config" / "config.example.toml")
        .read_text()
        .replace('"/var/lib/kiosk-edge"', f'"{tmp_path / "state"}"')
    )
    result = kiosk("selftest", "--config", str(config))
    assert result.returncode == 3
    assert "Traceback" not in result.stdout + result.stderr
    assert "camera    FAIL" in result.stdout
    result = kiosk("print", "test", "--json", "--config", str(config))
    assert result.returncode == 3
    assert json.loads(result.stdout)["printed"] is False


def test_daemon_that_stops_answering_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # running() saw the daemon, then it went away before the next request: one line, exit 1,
    # not a TypeError traceback from indexing None.
    from edge.cli import main
    from edge.cli.context import Daemon

    config = write_sim_config(tmp_path)
    monkeypatch.setattr(Daemon, "running", lambda self: True)
    monkeypatch.setattr(Daemon, "request", lambda self, *a, **kw: None)
    for command in (["fleet", "status"], ["print", "jobs"]):
        assert main([*command, "--config", str(config)]) == 1
        assert "the daemon stopped answering" in capsys.readouterr().err
