"""The technician screen against a real kiosk (in-process daemon, its waitress server): the PIN
lockout under simultaneous requests, named staff logins, reprints only there and audited."""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar

import pytest

from edge import config as cfg
from edge.app import App
from tests.web_ui_helpers import TECH_PIN, kiosk_config
from web_ui.pin import FAILURES_KEY, LOCKED_UNTIL_KEY


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    root = tmp_path_factory.mktemp("tech")
    path = kiosk_config(root)
    kiosk = App(cfg.load(path), config_path=path)
    kiosk.start()
    try:
        yield kiosk
    finally:
        kiosk.stop()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """One person's browser: its own cookies (session) and CSRF token, no redirects followed."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(CookieJar()), _NoRedirect()
        )
        self.token = ""

    def get(self, path: str) -> tuple[int, str, str]:
        return self._send(urllib.request.Request(self.base + path))

    def post(self, path: str, **fields: str) -> tuple[int, str, str]:
        body = urllib.parse.urlencode({"csrf_token": self.token, **fields}).encode()
        return self._send(urllib.request.Request(self.base + path, data=body, method="POST"))

    def open_login(self) -> str:
        status, html, _ = self.get("/technician/")
        assert status == 200, html
        self.token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        return html

    def _send(self, request: urllib.request.Request) -> tuple[int, str, str]:
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode(), ""
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(), err.headers.get("Location", "")


def verdict(status: int, html: str, location: str) -> str:
    """What the person sees after sending a PIN: "ok" (in), "wrong:<tries left>", or "locked"."""
    if status == 302 and location.endswith("/technician/panel"):
        return "ok"
    wrong = re.search(r"Sai mã PIN. Còn (\d+) lần thử", html)
    if wrong:
        return f"wrong:{wrong.group(1)}"
    if "quá nhiều lần" in html:
        return "locked"
    raise AssertionError(f"unexpected answer {status}: {html[:300]}")


def base(app: App) -> str:
    return f"http://127.0.0.1:{app.web.port}"


def reset_lockout(app: App, failures: int) -> None:
    """The state after `failures` wrong PINs (through the store, as a restart would find it)."""
    app.store.set_kv(LOCKED_UNTIL_KEY, "0")
    app.store.set_kv(FAILURES_KEY, str(failures))


# --- item 2: the lockout holds under simultaneous guesses ----------------------------------------


def burst(app: App, pins: list[str]) -> list[str]:
    """Each PIN from its own browser (signed-in page open), all sent at the same instant."""
    browsers = [Browser(base(app)) for _ in pins]
    for b in browsers:
        b.open_login()
    barrier = threading.Barrier(len(pins))
    answers = [""] * len(pins)

    def send(i: int) -> None:
        barrier.wait()
        answers[i] = verdict(*browsers[i].post("/technician/", pin=pins[i]))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(pins))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


def test_simultaneous_guesses_get_no_more_tries_than_are_left(app: App) -> None:
    """With 3 tries left, 6 browsers send at the same instant (5 wrong PINs and the right one).
    At most 3 PINs are tried: each try counts before the next is looked at, so every "wrong"
    answer shows a different number of tries left, and once locked even the right PIN waits."""
    max_tries = app.config.ui.technician_max_tries
    left = 3
    senders = 6  # the kiosk config's waitress threads
    for _ in range(4):
        reset_lockout(app, max_tries - left)
        answers = burst(app, [TECH_PIN] + [f"{9000 + i}" for i in range(senders - 1)])
        wrong = [a for a in answers if a.startswith("wrong:")]
        assert len(wrong) <= left - 1 and len(set(wrong)) == len(wrong), answers
        assert answers.count("locked") >= senders - left, answers
        if answers[0] != "ok":  # the tries went to wrong PINs: now even the right one waits
            late = Browser(base(app))
            late.open_login()
            assert verdict(*late.post("/technician/", pin=TECH_PIN)) == "locked", answers
    reset_lockout(app, 0)
