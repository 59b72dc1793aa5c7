"""The technician screen against a real kiosk (in-process daemon, its waitress server): the PIN
lockout under simultaneous requests, named staff logins, reprints only there and audited."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar

import pytest

from edge.app import App
from edge.localapi import token_headers
from tests.conftest import http
from tests.web_ui_helpers import TECH_PIN, in_process_kiosk
from web_ui.pin import FAILURES_KEY, LOCKED_UNTIL_KEY


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with in_process_kiosk(tmp_path_factory.mktemp("tech")) as kiosk:
        yield kiosk


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


# --- item 3: reprints only on the technician screen, by name, audited ----------------------------

STAFF, STAFF_PIN = "lan.nguyen", "135790"
POST_SLIP = b"\x1b@NGUYEN VAN MAU, 12 HANG BAC, HOAN KIEM"


def kiosk_cli(app: App, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args, "--config", str(app.config_path)],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def sign_in(app: App, pin: str, name: str = "") -> Browser:
    reset_lockout(app, 0)
    b = Browser(base(app))
    b.open_login()
    assert verdict(*b.post("/technician/", name=name, pin=pin)) == "ok"
    html = b.get("/technician/panel")[1]
    b.token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    return b


def sent(app: App, job_id: str) -> int:
    """How many times the job went to the printer (each time its bytes are in the output)."""
    files = list(app.config.printer.output_dir.glob(f"*-{job_id}.bin"))
    assert all(f.read_bytes() for f in files)
    return app.printer.job(job_id)["attempts"] if files else 0


def reprint_notice(b: Browser) -> str:
    html = b.get("/technician/panel")[1]
    return re.search(r'id="reprint-notice" data-state="(\w+)"', html).group(1)


@pytest.fixture(scope="module")
def staff(app: App) -> str:
    added = kiosk_cli(app, "staff", "add", STAFF, stdin=f"{STAFF_PIN}\n")
    assert added.returncode == 0, added.stderr
    return STAFF


def test_the_open_api_no_longer_reprints(app: App) -> None:
    job = app.printer.submit("post", "Gửi kết quả qua bưu điện R-9", POST_SLIP)
    # Even with the daemon's local token (what passes web_ui/guard.py), the route is gone.
    url = f"{base(app)}/api/printer/jobs/{job.job_id}/reprint"
    status, _ = http("POST", url, headers=token_headers(app.config.storage.state_dir))
    assert status in (404, 405)
    assert http("POST", url)[0] == 403  # and without it the guard refuses first
    assert sent(app, job.job_id) == 1
    # Nor the technician route without a sign-in (or without the form's token).
    anonymous = Browser(base(app))
    anonymous.open_login()
    answer = anonymous.post(f"/technician/jobs/{job.job_id}/reprint")
    assert answer[0] == 302 and answer[2].endswith("/technician/")
    assert anonymous.post(f"/technician/jobs/{job.job_id}/reprint", csrf_token="")[0] == 400
    assert sent(app, job.job_id) == 1


def test_named_staff_reprint_a_slip_and_it_is_audited(
    app: App, staff: str, caplog: pytest.LogCaptureFixture
) -> None:
    job = app.printer.submit("post", "Gửi kết quả qua bưu điện R-10", POST_SLIP)
    b = sign_in(app, STAFF_PIN, name="Lan.Nguyen ")  # typed with a capital and a space
    panel = b.get("/technician/panel")[1]
    assert f"Đăng nhập với tên {staff}" in panel
    assert f'id="reprint-{job.job_id}"' in panel and "NGUYEN VAN MAU" not in panel
    with caplog.at_level(logging.INFO):
        assert b.post(f"/technician/jobs/{job.job_id}/reprint")[0] == 302
    assert reprint_notice(b) == "printed"
    assert sent(app, job.job_id) == 2
    outputs = list(app.config.printer.output_dir.glob(f"*-{job.job_id}.bin"))  # one per second
    assert outputs and all(out.read_bytes() == POST_SLIP for out in outputs)
    done = json.loads(kiosk_cli(app, "staff", "audit", "--json").stdout)["audit"]
    assert done[0]["actor"] == staff and done[0]["action"] == "print.reprint"
    assert (done[0]["subject"], done[0]["kind"]) == (job.job_id, "post")
    assert (done[1]["actor"], done[1]["action"]) == (staff, "technician.login")
    # The operator's log says a reprint happened, never who by name.
    lines = [r for r in caplog.records if r.getMessage() == "print job reprint requested"]
    assert lines and all(staff not in repr(vars(r)) for r in caplog.records)
    assert lines[-1].by == "staff" and lines[-1].job == job.job_id


def test_the_shared_pin_reprints_tickets_but_not_personal_slips(app: App) -> None:
    post = app.printer.submit("post", "Gửi kết quả qua bưu điện R-11", POST_SLIP)
    ticket = app.printer.submit("ticket", "Số thứ tự B-031", b"\x1b@B-031")
    b = sign_in(app, TECH_PIN)
    panel = b.get("/technician/panel")[1]
    assert f'id="reprint-{post.job_id}"' not in panel and f'id="reprint-{ticket.job_id}"' in panel
    b.post(f"/technician/jobs/{post.job_id}/reprint")
    assert reprint_notice(b) == "named" and sent(app, post.job_id) == 1
    b.post(f"/technician/jobs/{ticket.job_id}/reprint")
    assert reprint_notice(b) == "printed" and sent(app, ticket.job_id) == 2
    b.post("/technician/jobs/nosuchjob/reprint")
    assert reprint_notice(b) == "unknown"


def test_an_erased_slip_answers_that_it_is_no_longer_kept(app: App, staff: str) -> None:
    job = app.printer.submit("post", "Gửi kết quả qua bưu điện R-12", POST_SLIP)
    keep_s = app.config.printer.keep_personal_min * 60
    assert app.printer.purge(now=time.time() + keep_s + 1) >= 1
    b = sign_in(app, STAFF_PIN, name=staff)
    assert f'id="reprint-{job.job_id}"' not in b.get("/technician/panel")[1]
    b.post(f"/technician/jobs/{job.job_id}/reprint")
    html = b.get("/technician/panel")[1]
    assert "Phiếu này không còn được lưu nên không thể in lại." in html
    assert sent(app, job.job_id) == 1
    refused = kiosk_cli(app, "print", "reprint", job.job_id)
    assert refused.returncode == 2 and "no longer kept" in refused.stderr


def test_the_command_line_reprints_as_cli(app: App) -> None:
    job = app.printer.submit("receipt", "Biên nhận bản sao K1-7", b"\x1b@receipt K1-7")
    done = kiosk_cli(app, "print", "reprint", job.job_id)
    assert done.returncode == 0, done.stderr
    assert sent(app, job.job_id) == 2
    last = json.loads(kiosk_cli(app, "staff", "audit", "--json").stdout)["audit"][0]
    assert (last["actor"], last["subject"], last["kind"]) == ("cli", job.job_id, "receipt")


def test_staff_logins_refuse_reserved_names_and_bad_pins(app: App) -> None:
    for name, pin, message in (
        ("technician", "4711", "reserved"),
        ("Lan Nguyen", "4711", "login name"),
        ("minh", "12a4", "4 to 12 digits"),
    ):
        refused = kiosk_cli(app, "staff", "add", name, stdin=f"{pin}\n")
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    listed = json.loads(kiosk_cli(app, "staff", "list", "--json").stdout)["staff"]
    assert "pin_hash" not in json.dumps(listed) and "scrypt" not in json.dumps(listed)
    assert "technician" not in [row["name"] for row in listed]
