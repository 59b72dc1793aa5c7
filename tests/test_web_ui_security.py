"""The kiosk web app against callers that are not its own screen: open redirects, malformed
JSON, other sites and DNS rebinding, and sessions made by requests that need none (issue 21,
items 4 to 7)."""

from __future__ import annotations

import logging
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.localapi import TOKEN_FILE, read_token
from tests.web_ui_helpers import LoopbackClient, in_process_kiosk
from web_ui.visits import COOKIE


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with in_process_kiosk(tmp_path_factory.mktemp("ui-security")) as app:
        app.web.app.config["TESTING"] = False  # keep CSRF on, as in service
        yield app


@pytest.fixture
def client(kiosk: Any) -> LoopbackClient:
    flask_app = kiosk.web.app
    return LoopbackClient(flask_app, flask_app.response_class, use_cookies=True)


def origin(kiosk: Any) -> str:
    return f"http://127.0.0.1:{kiosk.config.web.port}"


def page_tokens(client: LoopbackClient) -> dict[str, str]:
    """What the kiosk's page sends with its own calls: the CSRF token and the per-boot token."""
    html = client.get("/help").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', html)
    token = re.search(r'name="kiosk-token" content="([^"]+)"', html)
    return {
        "X-CSRFToken": csrf.group(1) if csrf else "",
        "X-Kiosk-Token": token.group(1) if token else "",
    }


def printed(kiosk: Any) -> int:
    return len(list(Path(kiosk.config.printer.output_dir).glob("*.bin")))


# --- item 4: the language switch redirects to a screen of this app only ----------------------


@pytest.mark.parametrize(
    "back",
    [
        "/\t/example.com",
        "/\n/example.com",
        "//example.com",
        "https://example.com",
        "\\\\example.com",
        "/\\example.com",
        "/help\r\nSet-Cookie: x=1",
        "/api/status",
        "/static/kiosk.css",
        "/no/such/screen",
        "/help?next=//example.com",
        "/" + "a" * 300,
    ],
)
def test_language_switch_goes_to_the_start_screen_for_anything_but_a_known_screen(
    client: LoopbackClient, back: str
) -> None:
    csrf = page_tokens(client)["X-CSRFToken"]
    response = client.post("/lang", data={"lang": "en", "back": back, "csrf_token": csrf})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("back", ["/help", "/b/", "/d/"])
def test_language_switch_returns_to_the_screen_it_was_pressed_on(
    client: LoopbackClient, back: str
) -> None:
    csrf = page_tokens(client)["X-CSRFToken"]
    response = client.post("/lang", data={"lang": "en", "back": back, "csrf_token": csrf})
    assert response.status_code == 302 and response.headers["Location"] == back


# --- item 5: malformed JSON gets a 400 with a message, never a 500 ---------------------------


NOT_OBJECT = "Nội dung yêu cầu phải là một đối tượng JSON."
TOO_DEEP = "Nội dung yêu cầu quá lớn hoặc lồng nhau quá sâu."
NOT_JSON = "Nội dung yêu cầu không phải là JSON hợp lệ."
NOT_TEXT = "Trường screen phải là văn bản."
WRONG_TYPE = "Yêu cầu phải ở dạng JSON (Content-Type: application/json)."


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"[1]", "application/json", NOT_OBJECT),
        (b'"x"', "application/json", NOT_OBJECT),
        (b"1", "application/json", NOT_OBJECT),
        (b"null", "application/json", NOT_OBJECT),
        (b"[" * 5000 + b"]" * 5000, "application/json", TOO_DEEP),
        (b'{"a":' * 3000 + b"1" + b"}" * 3000, "application/json", TOO_DEEP),
        (b'{"s": "' + b"x" * 5000 + b'"}', "application/json", TOO_DEEP),
        (b"{bad", "application/json", NOT_JSON),
        (b"", "application/json", NOT_JSON),
        (b"\xff\xfe{}", "application/json", NOT_JSON),
        (b'{"screen": ["/a"]}', "application/json", NOT_TEXT),
        (b'{"screen": "/a"}', "text/plain", WRONG_TYPE),
        (b"screen=/a", "application/x-www-form-urlencoded", WRONG_TYPE),
    ],
)
def test_heartbeat_with_a_malformed_body_is_a_400_with_a_message(
    client: LoopbackClient,
    body: bytes,
    content_type: str,
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = page_tokens(client)
    with caplog.at_level(logging.INFO):
        response = client.post(
            "/live/heartbeat", data=body, content_type=content_type, headers=headers
        )
    assert response.status_code == 400
    assert response.get_json()["error"] == {"code": "bad_input", "message": message}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("request refused: bad_input" in r.getMessage() for r in caplog.records)


def test_heartbeat_messages_are_vietnamese_first_and_english_on_request(
    client: LoopbackClient,
) -> None:
    headers = page_tokens(client)
    vi = client.post("/live/heartbeat", json=[1], headers=headers).get_json()
    assert vi["error"]["message"] == "Nội dung yêu cầu phải là một đối tượng JSON."
    client.post("/lang", data={"lang": "en", "back": "/", "csrf_token": headers["X-CSRFToken"]})
    en = client.post("/live/heartbeat", json=[1], headers=headers).get_json()
    assert en["error"]["message"] == "The request body must be a JSON object."


@pytest.mark.parametrize("path", ["/c/", "/d/", "/f/", "/technician/"])
@pytest.mark.parametrize("body", [1, [1], "x", {"code": ["a"]}])
def test_a_screen_form_posted_as_json_is_shown_again_not_a_500(
    client: LoopbackClient, path: str, body: Any
) -> None:
    headers = page_tokens(client)
    response = client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 302)
    assert "<h1" in response.get_data(as_text=True) or response.status_code == 302


# --- item 6: only the kiosk's own page, or a holder of the token, changes anything ----------

CHANGES = ["/api/printer/test", "/api/fleet/test-event", "/api/dev/door/closed"]


@pytest.mark.parametrize("path", [*CHANGES, "/live/heartbeat"])
def test_a_page_of_another_site_cannot_call_the_api(
    kiosk: Any, client: LoopbackClient, path: str
) -> None:
    before = printed(kiosk)
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1:1"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "X-Kiosk-Token": page_tokens(client)["X-Kiosk-Token"]},
    ):
        response = client.post(path, json={}, headers=headers)
        assert response.status_code == 403, headers
        assert response.get_json()["error"]["code"] == "cross_origin"
    assert printed(kiosk) == before


@pytest.mark.parametrize("path", ["/api/status", "/api/health", "/", "/live/frame.jpg"])
def test_dns_rebinding_a_wrong_host_is_refused(client: LoopbackClient, path: str) -> None:
    for host in ("evil.example:8080", "evil.example", "127.0.0.1.nip.io", "127.0.0.1:1", ""):
        response = client.get(path, headers={"Host": host})
        assert response.status_code == 421, host


def test_a_call_without_origin_needs_the_token(kiosk: Any, client: LoopbackClient) -> None:
    before = printed(kiosk)
    response = client.post("/api/printer/test")
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "token_required"
    assert client.post("/api/printer/test", headers={"X-Kiosk-Token": "x"}).status_code == 403
    selftest = client.get("/api/selftest?print=1")
    assert selftest.status_code == 403
    assert printed(kiosk) == before
    # Reading stays open (the CLI's status, the browser watchdog).
    assert client.get("/api/status").status_code == 200


def test_the_page_the_cli_and_the_same_origin_get_through(
    kiosk: Any, client: LoopbackClient
) -> None:
    before = printed(kiosk)
    token_file = kiosk.config.storage.state_dir / TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = read_token(kiosk.config.storage.state_dir)
    assert token == page_tokens(client)["X-Kiosk-Token"]
    assert client.post("/api/printer/test", headers={"X-Kiosk-Token": token}).status_code == 200
    same = client.post("/api/printer/test", headers={"Origin": origin(kiosk)})
    assert same.status_code == 200
    fetch = client.post("/api/printer/test", headers={"Sec-Fetch-Site": "same-origin"})
    assert fetch.status_code == 200
    # Chromium's Origin under Referrer-Policy: no-referrer; the token decides.
    null = client.post("/api/printer/test", headers={"Origin": "null", "X-Kiosk-Token": token})
    assert null.status_code == 200
    assert printed(kiosk) == before + 4
    beat = client.post("/live/heartbeat", json={"screen": "/b/"}, headers={"Origin": "null"})
    assert beat.status_code == 403
    beat = client.post("/live/heartbeat", json={"screen": "/b/"}, headers={"X-Kiosk-Token": token})
    assert beat.status_code == 204
    assert client.get("/api/browser").get_json()["screen"] == "/b/"


# --- item 7: sessions only for the citizen's screens -----------------------------------------


def test_requests_outside_the_screens_make_no_session_and_no_log_line(
    kiosk: Any, client: LoopbackClient, caplog: pytest.LogCaptureFixture
) -> None:
    flask_app = kiosk.web.app
    store = flask_app.session_interface
    token = {"X-Kiosk-Token": read_token(kiosk.config.storage.state_dir)}
    before = store.count()
    with caplog.at_level(logging.INFO, logger="web_ui"):
        for i in range(200):
            fresh = LoopbackClient(flask_app, flask_app.response_class, use_cookies=True)
            path = ["/api/health", "/api/status", "/live/frame.jpg", "/static/kiosk.css"][i % 4]
            answers = [
                fresh.get(path),
                fresh.post("/live/heartbeat", json={"screen": "/"}, headers=token),
                fresh.get(f"/no/such/page/{i}"),
                fresh.get("/dev"),
            ]
            assert [a.status_code < 500 for a in answers] == [True] * 4
            assert not [a for a in answers if "Set-Cookie" in a.headers]
    assert store.count() == before
    assert not [r for r in caplog.records if r.name == "web_ui.visits"]


def test_the_start_screen_makes_one_session_and_their_number_is_bounded(kiosk: Any) -> None:
    flask_app = kiosk.web.app
    store = flask_app.session_interface
    first = LoopbackClient(flask_app, flask_app.response_class, use_cookies=True)
    first.get("/")
    assert first.get_cookie(COOKIE) is not None
    count = store.count()
    first.get("/help")
    assert store.count() == count  # the same session, not a new one
    for _ in range(100):
        LoopbackClient(flask_app, flask_app.response_class, use_cookies=True).get("/")
    assert store.count() <= 64
