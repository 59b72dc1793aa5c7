"""The systemd units pass `systemd-analyze verify`; the daemon unit's measured exposure is at
most 3.0 and is the figure the README states; the shell scripts pass shellcheck; the kiosk
browser launcher waits for the UI, starts Chromium in kiosk mode and restarts it when the UI
comes back after an outage."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent
UNITS = sorted(
    p.name for p in (REPO / "systemd").iterdir() if p.suffix in (".service", ".timer", ".path")
)
ANALYZE = shutil.which("systemd-analyze")
SHELLCHECK = shutil.which("shellcheck")
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


@pytest.fixture(scope="module")
def unit_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with the distribution's units, ours, and stand-ins for the binaries they run
    (so verify checks our files, not whether /opt/kiosk-edge is installed on this machine)."""
    root = tmp_path_factory.mktemp("unit-root")
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(REPO / "systemd" / unit, root / "etc/systemd/system" / unit)
    for binary in ("opt/kiosk-edge/current/.venv/bin/python", "usr/bin/cage"):
        path = root / binary
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return root


@pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)"
)
@pytest.mark.skipif(not SYSTEM_UNITS.is_dir(), reason="no systemd unit directory on this machine")
@pytest.mark.parametrize("unit", UNITS)
def test_unit_passes_systemd_analyze_verify(unit_root: Path, unit: str) -> None:
    result = subprocess.run(
        [ANALYZE, "verify", f"--root={unit_root}", unit],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    ours = [line for line in result.stderr.splitlines() if "kiosk" in line]
    assert ours == [], "\n".join(ours)  # no unknown keys, no bad values, nothing ignored


def test_verify_would_catch_a_broken_unit(unit_root: Path) -> None:
    if ANALYZE is None:
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    broken = unit_root / "etc/systemd/system/kiosk-broken.service"
    broken.write_text("[Service]\nExecStart=/opt/nowhere/kiosk\nRestart=sometimes\n")
    result = subprocess.run(
        [ANALYZE, "verify", f"--root={unit_root}", broken.name], capture_output=True, text=True
    )
    assert result.returncode != 0 and "not executable" in result.stderr


@pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)"
)
def test_daemon_unit_exposure_is_low_and_written_in_the_readme() -> None:
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(REPO / "systemd/kiosk-edge.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for kiosk-edge.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    score = float(match.group(1))
    assert score <= 3.0
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"exposure level[^\n]*?\*\*([0-9.]+)\*\*", readme)
    assert stated and float(stated.group(1)) == score, "README's systemd score is out of date"


@pytest.mark.skipif(
    SHELLCHECK is None, reason="shellcheck not installed (apt-get install shellcheck)"
)
def test_shell_scripts_pass_shellcheck() -> None:
    scripts = sorted((REPO / "firmware_scripts").glob("*.sh"))
    assert {p.name for p in scripts} >= {"bootstrap.sh", "setup-pi.sh", "kiosk-browser.sh"}
    result = subprocess.run([SHELLCHECK, *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# --- the browser launcher ---------------------------------------------------------------------


class _Health(http.server.BaseHTTPRequestHandler):
    beat_age: float | None = None  # what /api/browser says (the page's last heartbeat)

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        if self.path == "/api/browser":
            age = "null" if self.beat_age is None else str(self.beat_age)
            self.wfile.write(f'{{"heartbeat_age_s":{age},"screen":"/"}}'.encode())
        else:
            self.wfile.write(b'{"ready": true}')

    def log_message(self, *args: object) -> None:
        pass


class HealthServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.server: http.server.HTTPServer | None = None

    def start(self, beat_age: float | None = None) -> None:
        handler = type("Handler", (_Health,), {"beat_age": beat_age})
        self.server = http.server.HTTPServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def ui() -> Iterator[HealthServer]:
    server = HealthServer(free_port())
    yield server
    server.stop()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_kiosk_browser_waits_for_the_ui_then_restarts_after_an_outage(
    tmp_path: Path, ui: HealthServer
) -> None:
    args_file = tmp_path / "browser-args"
    fake = tmp_path / "chromium"  # the lowest part: a browser that records how it was started
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {args_file}\nexec sleep 60\n')
    fake.chmod(0o755)
    url = f"http://127.0.0.1:{ui.port}/"
    env = {
        **os.environ,
        "KIOSK_URL": url,
        "KIOSK_BROWSER": str(fake),
        "KIOSK_PROFILE_DIR": str(tmp_path / "profile"),
        "KIOSK_CHECK_S": "0.2",
        "HOME": str(tmp_path),
    }
    proc = subprocess.Popen(
        ["bash", str(REPO / "firmware_scripts/kiosk-browser.sh")],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        assert not args_file.exists()  # the UI is not up: no browser on an error page
        ui.start()
        deadline = time.monotonic() + 5
        while not args_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        args = args_file.read_text().split("\n")
        assert "--kiosk" in args and f"--app={url}" in args
        assert f"--user-data-dir={tmp_path / 'profile'}" in args
        assert proc.poll() is None  # the browser runs; the launcher watches
        ui.stop()
        time.sleep(0.6)
        assert proc.poll() is None  # the UI down: keep showing what there is
        ui.start()
        assert proc.wait(5) == 0  # the UI back: exit, so systemd starts a fresh page
        assert "restarting the browser" in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_kiosk_browser_restarts_a_page_that_stopped_beating(
    tmp_path: Path, ui: HealthServer
) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    env = {
        **os.environ,
        "KIOSK_URL": f"http://127.0.0.1:{ui.port}/",
        "KIOSK_BROWSER": str(fake),
        "KIOSK_PROFILE_DIR": str(tmp_path / "profile"),
        "KIOSK_CHECK_S": "0.2",
        "KIOSK_HEARTBEAT_MAX_S": "45",
        "KIOSK_HEARTBEAT_GRACE_S": "1",
        "HOME": str(tmp_path),
    }

    def launch() -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["bash", str(REPO / "firmware_scripts/kiosk-browser.sh")],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )

    # A page that beats (or never has yet) is left alone past the grace period.
    for age in (12.5, None):
        ui.start(beat_age=age)
        proc = launch()
        try:
            time.sleep(2.0)
            assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        finally:
            proc.terminate()  # its trap stops the browser too
            proc.wait(5)
            ui.stop()
    # A page silent for 90 s is restarted, once the grace period is over.
    ui.start(beat_age=90.3)
    proc = launch()
    try:
        assert proc.wait(10) == 0
        assert "has not beaten for 90 s" in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
