"""Helpers for the browser tests: a simulated kiosk daemon whose camera shows what the test puts
in front of it, headless Chromium, GPIO button presses and screenshots of every screen (into
docs/screens/ only with --update-screens; conftest's `screens` fixture)."""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from tests import pages as docs
from tests.conftest import REPO, Daemon, http, start_daemon, write_sim_config
from tests.test_face import load
from tests.test_identify import card_scene_with_portrait
from tests.test_liveness import turning_frames

# Where shoot() writes: set by the browser fixture from conftest's `screens` (docs/screens/ only
# when asked), so the many shoot(page, name) calls need no extra argument.
_screens: dict[str, Path] = {}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SIZES = ((1280, 800), (800, 480))
TECH_PIN = "246810"


def fleet_mqtt(broker: Any, fleet_pki: Any, kiosk_id: str = "TEST-UI", extra: str = "") -> str:
    """The [mqtt] block of a kiosk reporting to the tests' broker with its own client
    certificate (quick reconnects); `extra` lines follow the block."""
    me = fleet_pki.client(kiosk_id)
    return f"""
[mqtt]
type = "broker"
host = "127.0.0.1"
port = {broker.port}
ca_file = "{fleet_pki.ca_file}"
cert_file = "{me.cert}"
key_file = "{me.key}"
reconnect_min_s = 0.2
reconnect_max_s = 1.0
{extra}"""


def kiosk_config(root: Path, *, idle_s: float = 300, warn_s: float = 20, extra: str = "") -> Path:
    """A simulated kiosk whose camera plays root/scenes/scene.jpg (replaced by the test)."""
    pin_hash = generate_password_hash(TECH_PIN)
    return write_sim_config(
        root,
        kiosk_id="TEST-UI",
        sample_scenes=False,
        fps=8,
        web_extra="threads = 6",
        buttons_extra="bounce_ms = 0",
        extra=f"""
[copies]
development_ca = true

[copies.vietqr]
bank_bin = "970436"
account = "0011001234567"

[ui]
idle_timeout_s = {idle_s}
idle_warning_s = {warn_s}
technician_pin_hash = "{pin_hash}"
liveness_time_limit_s = 12
{extra}
""",
    )


class LoopbackClient(FlaskClient):
    """Flask's test client asking for the kiosk at the address its browser uses (the app
    refuses any other Host, web_ui/guard.py); a test may still pass its own base_url."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], str):
            web = self.application.extensions["kiosk"].config.web
            kwargs.setdefault("base_url", f"http://{web.host}:{web.port}")
        return super().open(*args, **kwargs)

    def get_cookie(self, key: str, domain: str = "", path: str = "/") -> Any:
        domain = domain or self.application.extensions["kiosk"].config.web.host
        return super().get_cookie(key, domain=domain, path=path)


@contextmanager
def in_process_kiosk(root: Path) -> Iterator[Any]:
    """The daemon (edge.app.App) started in this process on a simulated kiosk, its camera on an
    empty platen: for tests that drive its Flask app through LoopbackClient."""
    from edge import config as cfg
    from edge.app import App

    path = kiosk_config(root)
    (root / "scenes" / "scene.jpg").write_bytes(
        (REPO / "edge/sim/scenes/01-empty-platen.jpg").read_bytes()
    )
    kiosk = App(cfg.load(path), config_path=path)
    kiosk.start()
    try:
        yield kiosk
    finally:
        kiosk.stop()


def set_paper(root: Path, paper: str) -> None:
    """What the simulated printer's paper sensor reads: "ok", "near-end" or "out"."""
    out = root / "printer-out"
    out.mkdir(exist_ok=True)
    (out / "sensors.json").write_text(json.dumps({"paper": paper, "cover_open": False}))


class Scenes:
    """What the camera sees: one file, replaced atomically (the camera never reads half a file)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "scene.jpg"
        self._player: threading.Thread | None = None
        self._stop = threading.Event()

    def show(self, image: np.ndarray) -> None:
        tmp = self.folder.parent / "scene.tmp.jpg"
        cv2.imwrite(str(tmp), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def play(self, frames: Iterable[np.ndarray], fps: float = 5.0) -> None:
        """Show frames one after the other in the background (a person moving)."""
        self.stop()
        self._stop.clear()
        frames = list(frames)

        def run() -> None:
            for frame in frames:
                if self._stop.is_set():
                    return
                self.show(frame)
                time.sleep(1 / fps)

        self._player = threading.Thread(target=run, daemon=True)
        self._player.start()

    def stop(self) -> None:
        self._stop.set()
        if self._player is not None:
            self._player.join(5)
            self._player = None


@contextmanager
def running_kiosk(root: Path, **kw: Any) -> Iterator[tuple[Daemon, Scenes]]:
    config = kiosk_config(root, **kw)
    scenes = Scenes(root / "scenes")
    scenes.show(np.full((960, 1280, 3), 60, np.uint8))  # an empty, dark platen
    daemon = start_daemon(config)
    try:
        yield daemon, scenes
    finally:
        scenes.stop()
        if daemon.proc.poll() is None:
            daemon.stop()
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(5)


def press(daemon: Daemon, name: str, hold_s: float = 0.05) -> None:
    """A finger on a physical button: gpiozero's mock pin goes low, then high."""
    status, body = daemon.post(f"/api/dev/buttons/{name}/press?hold={hold_s}")
    assert status == 200, body


def shoot(page: Any, name: str) -> None:
    """The screen as the citizen sees it, at both kiosk screen sizes, into the `screens` dir."""
    folder = _screens.get("dir")
    assert folder is not None, "shoot() needs the browser fixture (browser_session below)"
    # Every screen has a headline and the help button, in Vietnamese.
    assert page.locator("h1").count() >= 1
    assert page.inner_text("#help-button").strip() == "Trợ giúp / Gọi nhân viên"
    for w, h in SIZES:
        page.set_viewport_size({"width": w, "height": h})
        page.wait_for_timeout(150)
        page.screenshot(path=str(folder / f"{name}-{w}x{h}.png"))
    page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})


def wait_buttons(page: Any) -> None:
    """The page listens to the physical buttons (its event stream is open)."""
    page.wait_for_selector("body[data-buttons=connected]", timeout=10000)


# --- fixtures shared by the browser test modules (imported there) -------------------


def browser_session(screens: Path) -> Iterator[object]:
    """One headless Chromium per test module (fixture `browser`); shoot() saves into `screens`."""
    from playwright.sync_api import sync_playwright

    _screens["dir"] = screens

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        yield b
        b.close()


def kiosk_session(tmp_path_factory: pytest.TempPathFactory):
    """One simulated kiosk per test module (fixture `kiosk`): (daemon, scenes)."""
    with running_kiosk(tmp_path_factory.mktemp("kiosk")) as (daemon, scenes):
        yield daemon, scenes


def kiosk_page(browser, kiosk):
    """A fresh browser context (no cookies) on the kiosk (fixture `page`); fails the test on
    any Content-Security-Policy violation."""
    daemon, _ = kiosk
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=daemon.base, locale="vi-VN"
    )
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    csp = [e for e in errors if "Content Security Policy" in e]
    assert not csp, csp  # every script and style comes from our own static files


HOME = re.compile(r"^http://127\.0\.0\.1:\d+/$")


def start_over_by_buttons(page: Any, daemon: Daemon) -> None:
    """Cancel with the buttons: the question opens, ▶ to "Có, làm lại từ đầu", OK; back at
    the start screen."""
    press(daemon, "cancel")
    page.wait_for_selector("#cancel-confirm:not([hidden])")
    press(daemon, "next")
    page.wait_for_function("() => document.activeElement.id === 'cancel-yes'")
    press(daemon, "ok")
    page.wait_for_url(HOME)


def headline(pg) -> str:
    return pg.inner_text("h1").strip()


def focused_id(pg) -> str:
    return pg.evaluate("document.activeElement && document.activeElement.id")


@functools.cache
def card() -> tuple[np.ndarray, Any]:
    """A photographed CCCD whose portrait is a real photo, and the person it names."""
    return card_scene_with_portrait("obama.jpg")


def card_scene() -> np.ndarray:
    return card()[0]


def page_scene(seed: int = 2, kind: str = "birth_certificate") -> np.ndarray:
    return docs.photographed(seed, kind, size=docs.PREVIEW).image


def pass_face_check(pg, scenes) -> str:
    """Look at the camera and do what the screen asks; returns the URL it ends on. A blink
    cannot be acted by a photo, so that try fails (a still face) and the next challenge comes."""
    for _ in range(3):
        scenes.show(load("obama2.jpg"))
        pg.wait_for_function(
            "() => document.getElementById('guidance') && "
            "/quay đầu|chớp mắt/.test(document.getElementById('guidance').textContent)"
            " || !location.pathname.endsWith('/face')",
            timeout=30000,
        )
        if not pg.url.endswith("/face"):
            return pg.url
        text = pg.inner_text("#guidance")
        if "trái" in text:  # the citizen's left: the nose moves to the image's right
            scenes.play((f for f, _ in turning_frames("obama2.jpg", 5)), fps=5)
        elif "phải" in text:
            scenes.play((f for f, _ in turning_frames("obama2.jpg", -5)), fps=5)
        pg.wait_for_function(
            "() => !location.pathname.endsWith('/face') || "
            "/Chưa xác minh/.test(document.getElementById('guidance').textContent)",
            timeout=30000,
        )
        scenes.stop()
        if not pg.url.endswith("/face"):
            return pg.url
    pg.wait_for_url(re.compile(r"/a/(pages|staff)$"), timeout=30000)
    return pg.url


def wait_for_fleet(daemon: Daemon, timeout: float = 15.0) -> None:
    """The daemon is connected to its broker (status fleet.connected)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = http("GET", daemon.base + "/api/status")
        if status == 200 and body["fleet"].get("connected"):
            return
        time.sleep(0.1)
    raise AssertionError("the daemon did not connect to the broker")


def wait_new_frames(daemon: Daemon, count: int = 2, timeout: float = 5.0) -> None:
    """The camera has read `count` frames since now (what was just shown is what it sees)."""

    def frames() -> int:
        return http("GET", daemon.base + "/api/status")[1]["parts"]["camera"]["frames"]

    start = frames()
    deadline = time.monotonic() + timeout
    while frames() < start + count:
        if time.monotonic() > deadline:
            raise AssertionError("the camera did not read new frames")
        time.sleep(0.05)
