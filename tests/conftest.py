"""Shared fixtures: a simulated kiosk's config in a temp dir, a running daemon process, where
screenshots go; and the markers (browser, broker, daemon) given by the fixtures a test uses."""

from __future__ import annotations

import functools
import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge.config import SAMPLE_SCENES
from edge.localapi import token_headers
from tests.mqtt_broker import Broker, FleetPki, Peer, central_peer, running_broker

REPO = Path(__file__).resolve().parent.parent
DOCS_SCREENS = REPO / "docs" / "screens"
UPDATE_SCREENS_ENV = "KIOSK_UPDATE_SCREENS"

# Markers a test gets from what it uses, so `-m "not browser"` also leaves out the tests
# written after this list: a fixture by name (directly or through another fixture), or a call
# of one of the helpers in the test's body or in one of its fixtures' bodies.
MARKER_FIXTURES = {
    "browser": {"browser", "page", "screens"},
    "broker": {"broker", "central"},
    "daemon": {"daemon"},
}
MARKER_CALLS = {
    "browser": ("sync_playwright(",),
    "broker": ("running_broker(", "central_peer("),
    "daemon": ("start_daemon(", "running_kiosk("),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-screens",
        action="store_true",
        default=False,
        help=f"write the browser tests' screenshots to docs/screens/ (or {UPDATE_SCREENS_ENV}=1); "
        "otherwise they go to the run's temp dir and no tracked file changes",
    )


@functools.cache
def _source(func: Any) -> str:
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):
        return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info is not None else ()
        bodies = [_source(getattr(item, "function", None))]
        bodies += [_source(d.func) for ds in defs for d in ds]
        for marker in MARKER_FIXTURES:
            if used & MARKER_FIXTURES[marker] or any(
                call in body for body in bodies for call in MARKER_CALLS[marker]
            ):
                item.add_marker(marker)


@pytest.fixture(scope="session")
def screens(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests save screenshots: docs/screens/ only when asked
    (--update-screens or KIOSK_UPDATE_SCREENS=1), else a temp dir of this run. The screenshot
    is taken either way, so a page that cannot be rendered at a kiosk size still fails."""
    if pytestconfig.getoption("update_screens") or os.environ.get(UPDATE_SCREENS_ENV) == "1":
        DOCS_SCREENS.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENS
    return tmp_path_factory.mktemp("screens")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_sim_config(
    root: Path,
    *,
    port: int | None = None,
    extra: str = "",
    kiosk_id: str = "TEST-01",
    sample_scenes: bool = True,
    fps: int = 20,
    web_extra: str = "",
    buttons_extra: str = "",
) -> Path:
    """A whole simulated kiosk under root: its own scenes folder (a copy of the sample scenes,
    or empty for the test to fill), state dir and web port. `extra` is appended as is;
    `web_extra` and `buttons_extra` are lines added to those blocks."""
    scenes = root / "scenes"
    if sample_scenes and not scenes.exists():
        shutil.copytree(SAMPLE_SCENES, scenes)
    scenes.mkdir(parents=True, exist_ok=True)
    path = root / "config.toml"
    path.write_text(
        f"""
[kiosk]
id = "{kiosk_id}"
site = "Phường Thử nghiệm"

[storage]
state_dir = "state"

[web]
port = {port or free_port()}
{web_extra}

[camera]
type = "files"
path = "scenes"
fps = {fps}

[buttons]
type = "simulated"
long_press_s = 0.5
{buttons_extra}

[tamper]
type = "simulated"

[led]
type = "simulated"

[printer]
type = "simulated"
output_dir = "printer-out"

[logging]
format = "json"
level = "INFO"

[daemon]
developer_panel = true
{extra}
""",
        encoding="utf-8",
    )
    return path


# --- a real Mosquitto with mTLS and the shipped ACL (tests/mqtt_broker.py) ---------------------


@pytest.fixture(scope="module")
def fleet_pki(tmp_path_factory: pytest.TempPathFactory) -> FleetPki:
    return FleetPki(tmp_path_factory.mktemp("fleet-pki"))


@pytest.fixture
def broker(tmp_path: Path, fleet_pki: FleetPki) -> Iterator[Broker]:
    with running_broker(tmp_path / "broker", fleet_pki) as b:
        yield b


@pytest.fixture
def central(broker: Broker, fleet_pki: FleetPki) -> Iterator[Peer]:
    """Central, connected and subscribed to every kiosk's tree."""
    with central_peer(broker, fleet_pki) as peer:
        yield peer


@pytest.fixture
def sim_config(tmp_path: Path) -> Path:
    return write_sim_config(tmp_path)


def http(
    method: str, url: str, timeout: float = 10, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    base: str
    config: Path
    log_path: Path

    def log(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def get(self, path: str) -> tuple[int, Any]:
        return http("GET", self.base + path)

    def post(self, path: str) -> tuple[int, Any]:
        """As the kiosk CLI does: with the daemon's per-boot token from its state dir."""
        return http("POST", self.base + path, headers=token_headers(self.config.parent / "state"))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start_daemon(config: Path, *, env: dict[str, str] | None = None, timeout: float = 20) -> Daemon:
    text = config.read_text()
    port = int(text.split("port = ")[1].split()[0])
    log_path = config.parent / "daemon.log"
    log = log_path.open("w", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    daemon = Daemon(proc, f"http://127.0.0.1:{port}", config, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited early:\n{log_path.read_text()}")
        try:
            status, body = daemon.get("/api/health")
            if status == 200 and body["ready"]:
                return daemon
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"daemon not ready in {timeout} s:\n{log_path.read_text()}")


@pytest.fixture
def daemon(sim_config: Path) -> Iterator[Daemon]:
    d = start_daemon(sim_config)
    try:
        yield d
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(5)


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Poll until predicate() is truthy; return its value or fail with the last one."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout} s (last value: {value!r})")
