"""The web UI's own parts without a browser: catalogs, security headers, CSRF, server-side
sessions and their wipe, the technician PIN lock, button events, heartbeat, form messages."""

from __future__ import annotations

import datetime as dt
import html
import re
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from flask import Blueprint, Flask, session
from werkzeug.security import check_password_hash

from edge.app import App
from edge.copies.verify import Verdict
from edge.services.dossier import DossierStatus, InvalidDossierCode, TimelineStep
from edge.texts import vietnamese
from tests.conftest import REPO
from tests.web_ui_helpers import TECH_PIN, LoopbackClient, in_process_kiosk
from web_ui.i18n import COMPILE_COMMAND
from web_ui.kiosk import screen
from web_ui.pin import PinGate
from web_ui.visits import COOKIE, VisitStore

WEB_UI = REPO / "web_ui"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with in_process_kiosk(tmp_path_factory.mktemp("ui")) as kiosk:
        yield kiosk


@pytest.fixture
def client(app: App):
    flask_app = app.web.app
    flask_app.config["TESTING"] = False  # keep CSRF on, as in service
    return LoopbackClient(flask_app, flask_app.response_class, use_cookies=True)


def csrf_token(client) -> str:
    html = client.get("/help").get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def kiosk_token(client) -> str:
    """The per-boot token the page carries for its /live and /api calls."""
    html = client.get("/help").get_data(as_text=True)
    return re.search(r'name="kiosk-token" content="([^"]+)"', html).group(1)


# --- catalogs ------------------------------------------------------------------------------


def test_every_string_has_a_vietnamese_translation_and_the_catalogs_are_current() -> None:
    extracted = {
        message[2] if isinstance(message[2], str) else message[2][0]
        for message in extract_from_dir(
            str(WEB_UI),
            method_map=[
                ("**.py", "python"),
                ("templates/**.html", "jinja2"),
                ("templates/**.svg", "jinja2"),
            ],
            keywords={"_": None, "_l": None, "gettext": None, "lazy_gettext": None},
        )
    }
    with (WEB_UI / "translations/vi/LC_MESSAGES/messages.po").open("rb") as f:
        vi = read_po(f, locale="vi")
    translated = {m.id: m.string for m in vi if m.id}
    assert extracted <= set(translated), sorted(extracted - set(translated))
    untranslated = [k for k in extracted if not translated[k]]
    assert not untranslated
    assert not [m.id for m in vi if m.id and m.fuzzy]
    # Vietnamese, not English left in place: diacritics in most of them.
    with_marks = [
        v
        for v in translated.values()
        if re.search(
            r"[àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ]", v.lower()
        )
    ]
    assert len(with_marks) > 0.9 * len(translated)
    for lang in ("vi", "en"):
        po = WEB_UI / f"translations/{lang}/LC_MESSAGES/messages.po"
        assert po.with_suffix(".mo").exists(), f"{lang} catalog not compiled: {COMPILE_COMMAND}"


def test_start_screen_speaks_vietnamese_by_default_and_english_on_request(client) -> None:
    html = client.get("/").get_data(as_text=True)
    assert "Xin chào! Bạn cần làm gì?" in html and 'lang="vi"' in html
    client.post("/lang", data={"lang": "en", "back": "/", "csrf_token": csrf_token(client)})
    assert "Welcome! What would you like to do?" in client.get("/").get_data(as_text=True)


# --- security ------------------------------------------------------------------------------


def test_headers_forbid_inline_script_framing_and_caching(client) -> None:
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "'unsafe" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = response.get_data(as_text=True)
    assert "<script>" not in html and " style=" not in html and "onclick" not in html


def test_every_form_needs_its_csrf_token(client) -> None:
    for path in ("/cancel", "/timeout", "/lang", "/help", "/technician/", "/a/identify/poll"):
        response = client.post(path, data={"lang": "en"})
        assert response.status_code == 400, path
        assert "Trang này đã hết hạn" in response.get_data(as_text=True)


def test_language_switch_only_returns_to_a_path_on_this_site(client) -> None:
    token = csrf_token(client)
    for back in ("//evil.example/", "https://evil.example/", "javascript:alert(1)"):
        response = client.post("/lang", data={"lang": "vi", "back": back, "csrf_token": token})
        assert response.status_code == 302 and response.headers["Location"] == "/"


def test_the_session_cookie_holds_a_random_id_only(client) -> None:
    client.get("/")
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", cookie.value)


def test_a_session_left_alone_is_wiped_with_its_live_objects() -> None:
    class Held:
        closed = False

        def close(self) -> None:
            self.closed = True

    held = Held()
    store = VisitStore(idle_s=0.05, grace_s=0.0, blueprints=frozenset({"flow"}))
    flask_app = Flask(__name__)
    flask_app.session_interface = store
    flow = Blueprint("flow", __name__)

    @flow.get("/a/identify")
    def identify() -> str:
        session["ecopy"] = held
        session["lang"] = "en"
        return "ok"

    flask_app.register_blueprint(flow)
    assert flask_app.test_client().get("/a/identify").status_code == 200
    assert store.count() == 1
    time.sleep(0.1)
    store.sweep()
    assert held.closed and store.count() == 0


# --- technician PIN -------------------------------------------------------------------------


def test_five_wrong_pins_lock_for_fifteen_minutes_even_after_a_restart(app: App) -> None:
    now = [1_000_000.0]
    gate = PinGate(app, clock=lambda: now[0])
    assert gate.check(TECH_PIN).verdict == "ok"
    results = [gate.check("9999") for _ in range(5)]
    assert [r.tries_left for r in results[:4]] == [4, 3, 2, 1]
    assert results[4].verdict == "locked" and results[4].locked_s == pytest.approx(900)
    assert gate.check(TECH_PIN).verdict == "locked"  # even the right PIN
    assert PinGate(app, clock=lambda: now[0]).check(TECH_PIN).verdict == "locked"  # new object
    now[0] += 14 * 60
    assert gate.check(TECH_PIN).verdict == "locked"
    now[0] += 61
    assert gate.check(TECH_PIN).verdict == "ok"
    assert gate.check("12ab").verdict == "malformed"


def test_pin_hash_command_reads_the_pin_from_stdin() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edge", "ui", "pin-hash", "--json"],
        input="4711\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert check_password_hash(re.search(r'"(scrypt:[^"]+)"', done.stdout).group(1), "4711")
    refused = subprocess.run(
        [sys.executable, "-m", "edge", "ui", "pin-hash"],
        input="12a\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "4 to 12 digits" in refused.stderr


# --- live feeds -----------------------------------------------------------------------------


def test_a_physical_button_reaches_the_page_as_a_server_sent_event(app: App, client) -> None:
    response = client.get("/live/events", buffered=False)
    chunks = response.response  # the stream's generator
    assert next(chunks).decode().startswith("retry:")
    threading.Timer(0.3, lambda: app.sim_pins.press("next", hold_s=0.05)).start()
    seen = ""
    deadline = time.monotonic() + 5
    while "event: button" not in seen and time.monotonic() < deadline:
        seen += next(chunks).decode()
    assert "event: button" in seen and '{"button": "next"}' in seen
    response.close()


def test_event_streams_are_capped_and_a_new_page_ends_the_oldest_at_once(app: App, client) -> None:
    """Each stream holds a server thread: past MAX_STREAMS the oldest ends, not 2 s later."""
    from web_ui.live import MAX_STREAMS

    def streams() -> int:
        return client.get("/api/browser").get_json()["event_streams"]

    opened = []
    for _ in range(MAX_STREAMS):
        response = client.get("/live/events", buffered=False)
        assert next(response.response).decode().startswith("retry:")
        opened.append(response)
    assert streams() == MAX_STREAMS
    first = iter(opened[0].response)
    next(first)  # the lock state, sent first
    newest = client.get("/live/events", buffered=False)
    started = time.monotonic()
    assert next(newest.response).decode().startswith("retry:")
    with pytest.raises(StopIteration):  # the oldest stream ends: its thread is free
        while True:
            next(first)
    assert time.monotonic() - started < 0.5
    assert streams() == MAX_STREAMS
    for response in [*opened, newest]:
        response.close()
    assert streams() == 0


def test_camera_preview_is_a_small_jpeg(client) -> None:
    deadline = time.monotonic() + 5
    response = client.get("/live/frame.jpg")
    while response.status_code == 204 and time.monotonic() < deadline:
        time.sleep(0.1)
        response = client.get("/live/frame.jpg")
    assert response.mimetype == "image/jpeg" and response.data[:2] == b"\xff\xd8"
    assert response.headers["Cache-Control"] == "no-store"


def test_heartbeat_is_reported_for_the_browser_watchdog(client) -> None:
    # Before the page's first heartbeat (no other test of this module's kiosk sends one) the
    # watchdog is told there was none, not a made-up age.
    # No page listens to the buttons either (the stream test above closed its stream).
    assert client.get("/api/browser").get_json() == {
        "heartbeat_age_s": None,
        "screen": "",
        "event_streams": 0,
    }
    response = client.post(
        "/live/heartbeat",
        json={"screen": "/a/pages"},
        headers={"X-Kiosk-Token": kiosk_token(client)},
    )
    assert response.status_code == 204
    body = client.get("/api/browser").get_json()
    assert body["screen"] == "/a/pages" and body["heartbeat_age_s"] < 5


# --- forms ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "message"),
    [
        ("0912345678", None),
        ("+84 912 345 678", None),
        ("091234567", "Số điện thoại di động Việt Nam gồm 10 chữ số, ví dụ 0912345678."),
        ("<b>0912345678</b>", "Vui lòng không dùng các ký tự < > { } [ ] \\ ` $."),
        ("9" * 40, "Tối đa 15 ký tự."),
    ],
)
def test_address_form_messages_are_vietnamese(app: App, phone: str, message: str | None) -> None:
    from web_ui.forms import AddressForm

    data = {
        "recipient": "Nguyễn Văn An",
        "phone": phone,
        "province": "Hà Nội",
        "ward": "Phường Tây Hồ",
        "street": "Số 1 Đường Thanh Niên",
    }
    flask_app = app.web.app
    with flask_app.test_request_context("/f/address", method="POST", data=data):
        form = AddressForm(meta={"csrf": False})
        assert form.validate() is (message is None)
        assert form.phone.errors[:1] == ([message] if message else [])


def test_address_form_drops_invisible_characters_a_citizen_cannot_see(app: App) -> None:
    from web_ui.forms import AddressForm

    data = {
        "recipient": unicodedata.normalize("NFD", "Nguyễn\u200b Thị Hoà\u202e"),
        "phone": "0912345678",
        "province": "Hà Nội",
        "ward": "Phường\u200b Tây Hồ",
        "street": "Số 1\u202e Đường Thanh Niên",
    }
    with app.web.app.test_request_context("/f/address", method="POST", data=data):
        form = AddressForm(meta={"csrf": False})
        assert form.validate(), form.errors
        assert form.recipient.data == "Nguyễn Thị Hoà"
        assert (form.ward.data, form.street.data) == ("Phường Tây Hồ", "Số 1 Đường Thanh Niên")


def test_markup_and_overlong_text_get_clear_messages(app: App) -> None:
    from web_ui.forms import SearchForm

    flask_app = app.web.app
    for q, message in (
        ("<script>alert(1)</script>", "Vui lòng không dùng các ký tự < > { } [ ] \\ ` $."),
        ("x" * 81, "Vui lòng nhập từ 2 đến 80 ký tự."),
        ("a", "Vui lòng nhập từ 2 đến 80 ký tự."),
        ("khai\u0000sinh", "Nội dung có ký tự không được phép."),
    ):
        with flask_app.test_request_context("/d/", method="POST", data={"q": q}):
            form = SearchForm(meta={"csrf": False})
            assert not form.validate()
            assert form.q.errors[:1] == [message], q


def test_no_personal_data_in_urls(tmp_path: Path) -> None:
    """Routes carry page numbers and procedure ids only; what a citizen types goes in POST
    bodies (forms) and nothing personal is ever a path or query parameter."""
    for path in sorted((WEB_UI / "flows").glob("*.py")):
        for rule in re.findall(r'@bp\.(?:get|post|route)\("([^"]*)"', path.read_text()):
            params = re.findall(r"<(?:\w+:)?(\w+)>", rule)
            # "index": a procedure field's place in the catalog (browse by field), nothing personal.
            assert set(params) <= {"n", "answer", "area", "procedure_id", "index"}, (
                path.name,
                rule,
            )


def test_back_at_the_start_screen_the_abandoned_flow_is_wiped(client) -> None:
    client.get("/a/identify")  # an e-copy begun: the identification session exists
    assert client.get("/a/consent").headers["Location"] == "/a/identify"
    client.get("/")
    assert client.get("/a/consent").headers["Location"] == "/a/"  # nothing left of it


# --- refusals and answers in the screen's language ---------------------------------------------


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_a_refusal_is_said_in_the_screens_language_never_as_its_log_line(client, lang) -> None:
    """Issue 15: the English screens showed a ServiceError's log text ("no service area 'ZZ'
    (configured: …)"); now its Text, translated. The Vietnamese is what it always was."""
    say = vietnamese if lang == "vi" else str
    client.post("/lang", data={"lang": lang, "back": "/", "csrf_token": csrf_token(client)})
    client.post("/b/take/ZZ", data={"csrf_token": csrf_token(client)})
    areas = html.unescape(client.get("/b/").get_data(as_text=True))
    assert say("This service area is not available here. Please choose again.") in areas
    assert "no service area" not in areas
    looked_up = client.post("/c/", data={"code": "ABC", "csrf_token": csrf_token(client)})
    page = html.unescape(looked_up.get_data(as_text=True))
    assert say(InvalidDossierCode("x").text.msgid) in page
    assert "dossier code refused" not in page


def test_dossier_status_and_copy_verdict_are_english_on_the_english_screen(app: App) -> None:
    now = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    found = DossierStatus(
        code="000.00.13.H26-241120-0007",
        found=True,
        source="cache",
        fetched_at=now,
        age_s=7200,
        status="ready",
        on_time=True,
        timeline=(TimelineStep(now, "received"),),
    )
    verdict = Verdict("invalid", reason="QR signature does not match")
    flask_app = app.web.app
    for lang in ("en", "vi"):
        with flask_app.test_request_context("/"):
            session["lang"] = lang
            status = html.unescape(screen("dossier/status.html", flow="dossier", s=found))
            result = html.unescape(screen("verify/result.html", flow="verify", v=verdict, tz=None))
        if lang == "en":
            assert "Result ready for pickup" in status and "On time" in status
            assert "updated 2 h ago" in status and "Received" in status
            assert (
                "The copy is NOT valid: the signature in the QR code does not match: "
                "the QR code may have been altered" in result
            )
            assert "QR signature does not match" not in result  # the log's words, never shown
        else:  # as before: the service's Vietnamese
            assert found.status_vi in status and found.on_time_vi in status
            assert f"({found.age_vi})" in status and found.timeline[0].status_vi in status
            assert "Bản sao KHÔNG hợp lệ: chữ ký trong mã QR không khớp" in result
            assert "QR signature does not match" not in result
