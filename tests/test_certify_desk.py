"""The certifier's workstation (issue 16): officers' accounts (password + TOTP, lockout, a code
good once), sessions holding the token PIN in memory only, the queue, a request's screen and
its decisions, the admin's pages, the audit log, the CLI, and the public page /v/<code>.

The desk drives the real Certifier (fleet/certify/service.py) over a real FleetStore; an
approval signs the copy with the officer's and the agency's SoftHSM2 tokens
(tests/certify_helpers.TestSigner), with the PIN the officer gave at login.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
from flask.testing import FlaskClient

from fleet.certify.accounts import Accounts, LoginRefused, Sessions, create_officer
from fleet.certify.service import Certifier
from fleet.certify.statement import book_ref
from fleet.certify.web import DeskConfig, create_app
from fleet.store import FleetStore
from protocol.certify import REFUSAL_REASONS
from protocol.crypto import DataKey
from protocol.errors import BadInput
from tests.certify_helpers import (
    KEY_LABEL,
    OFFICER_TOKEN,
    TestSigner,
    certifier_for_tests,
    package,
    page_jpeg,
)
from tests.conftest import REPO, free_port
from tests.mqtt_broker import FleetPki
from tests.softhsm import PIN
from tests.test_certify_service import KIOSK, fleet_ca, record, signed

AGENCY, OTHER_AGENCY = "UBND-TAYHO", "UBND-BADINH"
PASSWORD = "mật-khẩu-dài-đủ"
TZ = dt.timezone(dt.timedelta(hours=7))  # Asia/Ho_Chi_Minh, the config's default
# The Certifier's clock: a Tuesday at 10:00, in office hours (its SLA is 3 minutes, "soon" in
# the last one).
NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=TZ).timestamp()
BOOK = book_ref(1, 2026)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FleetStore]:
    s = FleetStore(
        f"sqlite:///{tmp_path / 'fleet.db'}", data_key=DataKey.load_or_create(tmp_path / "dk")
    ).create()
    yield s
    s.close()


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> TestSigner:
    return TestSigner(tmp_path_factory.mktemp("signer"))


def add_officer(
    store: FleetStore, username: str, *, agency: str = AGENCY, role: str = "officer"
) -> str:
    """The officer's TOTP secret, read back from the provisioning URI the admin is shown. Every
    officer signs with the tests' officer token (tests/softhsm.py), PIN tests.softhsm.PIN."""
    uri = create_officer(
        store,
        username,
        full_name={"hoa": "Lê Thị Hoa", "minh": "Trần Văn Minh"}.get(username, username.title()),
        title="Phó Chủ tịch UBND phường",
        agency=agency,
        role=role,
        password=PASSWORD,
        token_label=OFFICER_TOKEN,
        key_label=KEY_LABEL,
    )
    secret = re.search(r"secret=([A-Z2-7]+)", uri)
    assert secret is not None and uri.startswith("otpauth://totp/")
    return secret.group(1)


def add_request(
    store: FleetStore,
    code: str,
    *,
    agency: str = AGENCY,
    received_at: float,
    pages: int = 2,
    flags: list[dict[str, Any]] | None = None,
) -> None:
    """A request as the Certifier's intake stores it: a cert-request/1 package (the citizen's
    fields and OCR text in it) and its queue row."""
    jpegs = [page_jpeg((620, 877), f"{code} trang {n}") for n in range(1, pages + 1)]
    pkg = package(code, jpegs[0], pages=pages)
    for page, jpeg in zip(pkg["pages"], jpegs, strict=True):
        page.update(
            jpeg_base64=base64.b64encode(jpeg).decode(), sha256=hashlib.sha256(jpeg).hexdigest()
        )
    pkg["fields"] = {"Số": "123/2019", "Nơi cấp": "UBND phường Tây Hồ"}
    pkg["ocr_text"] = "GIẤY KHAI SINH\nHọ, chữ đệm, tên: Nguyễn Văn An"
    row = dict(
        id=code,
        kiosk_id="HN-TAYHO-01",
        agency=agency,
        received_at=received_at,
        deadline=received_at + 8 * 3600,
        doc_type="Giấy khai sinh",  # what Certifier.receive keeps: the kiosk's doc_label
        pages=pages,
        flags=flags or [],
        package_sha256="0" * 64,
    )
    assert store.cert_add_request(row, package=json.dumps(pkg).encode())


class Codes:
    """TOTP codes as the officer's phone makes them, one time step apart (a code is good once)."""

    def __init__(self, secret: str) -> None:
        self.totp = pyotp.TOTP(secret)
        self.step = 0

    def next(self) -> str:
        # Steps -1, 0, +1 around now are accepted (drift); a later login needs a later step.
        self.step += 1
        if self.step > 3:
            raise AssertionError("this test logs in more than three times with one secret")
        return self.totp.at(time.time() + (self.step - 2) * 30)


@dataclass
class Desk:
    store: FleetStore
    certifier: Certifier
    app: Any
    codes: dict[str, Codes]
    published: list[tuple[str, dict[str, Any]]]

    def status(self, request_id: str) -> str:
        row = self.store.cert_request(request_id)
        assert row is not None
        return str(row["status"])

    def book(self) -> list[Any]:
        return self.certifier.book(AGENCY, year=2026)


@pytest.fixture
def desk(tmp_path: Path, store: FleetStore, signer: TestSigner, fleet_pki: FleetPki) -> Desk:
    published: list[tuple[str, dict[str, Any]]] = []
    certifier = certifier_for_tests(
        store,
        signer,
        published=published,
        clock=lambda: NOW,
        config=signer.config(agency_id=AGENCY),
        issuers=fleet_ca(fleet_pki),  # a kiosk's package is checked against the fleet CA
    )
    codes = {
        "hoa": Codes(add_officer(store, "hoa")),
        "minh": Codes(add_officer(store, "minh", agency=OTHER_AGENCY)),
        "quan.tri": Codes(add_officer(store, "quan.tri", role="admin")),
    }
    # SLA 3 minutes, "soon" in its last minute: 60 s old is ok, 150 s soon, an hour late.
    add_request(store, "REQ-0003", received_at=NOW - 60, flags=[{"check": "glare"}])
    add_request(
        store,
        "REQ-0001",
        received_at=NOW - 3600,
        flags=[{"check": "photocopy"}, {"check": "blur", "page": 2}],
    )
    add_request(store, "REQ-0002", received_at=NOW - 150, pages=1)
    add_request(store, "REQ-9001", agency=OTHER_AGENCY, received_at=NOW - 100)
    config = DeskConfig(secret_key_file=tmp_path / "secret", cookie_secure=False, idle_minutes=15)
    app = create_app(certifier, store, config, testing=True)
    return Desk(store, certifier, app, codes, published)


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def log_in(desk: Desk, client: FlaskClient, username: str, *, pin: str = PIN, **over: str) -> Any:
    page = client.get("/login")
    data = {
        "csrf_token": csrf(page.text),
        "username": username,
        "password": PASSWORD,
        "code": desk.codes[username].next() if username in desk.codes else "000000",
        "pin": pin,
    }
    data.update(over)
    return client.post("/login", data=data)


def audit_actions(store: FleetStore) -> list[tuple[str, str]]:
    return [(r["officer"], r["action"]) for r in reversed(store.audit_log())]


# -- accounts ---------------------------------------------------------------------------------


def test_totp_secret_is_sealed_and_a_code_is_good_once(store: FleetStore) -> None:
    secret = add_officer(store, "hoa")
    import sqlalchemy as sa

    from fleet.store.schema import officers

    with store.engine.connect() as conn:
        raw = conn.execute(sa.select(officers.c.totp_secret)).scalar_one()
    assert secret.encode() not in raw and store.totp_secret("hoa") == secret
    assert "totp_secret" not in (store.officer("hoa") or {})

    accounts = Accounts(store)
    code = pyotp.TOTP(secret).now()
    officer = accounts.login("hoa", PASSWORD, code, address="10.0.0.5")
    assert (officer.username, officer.agency, officer.role) == ("hoa", AGENCY, "officer")
    with pytest.raises(LoginRefused, match="wrong"):
        accounts.login("hoa", PASSWORD, code, address="10.0.0.5")  # replayed
    with pytest.raises(LoginRefused, match="wrong"):
        accounts.login("hoa", "sai-mật-khẩu-rồi", pyotp.TOTP(secret).now(), address="x")
    with pytest.raises(LoginRefused, match="wrong"):
        accounts.login("nobody", PASSWORD, code, address="x")


def test_five_failures_lock_the_account_then_it_opens_again(store: FleetStore) -> None:
    secret = add_officer(store, "hoa")
    now = [1_800_000_000.0]
    accounts = Accounts(store, lockout_s=900, clock=lambda: now[0])
    totp = pyotp.TOTP(secret)
    for _ in range(5):
        with pytest.raises(LoginRefused, match="wrong"):
            accounts.login("hoa", PASSWORD, "000000", address="a")
    assert (store.officer("hoa") or {})["locked_until"] == pytest.approx(now[0] + 900)
    with pytest.raises(LoginRefused, match="locked"):
        accounts.login("hoa", PASSWORD, totp.at(now[0]), address="a")  # right, but locked
    now[0] += 901
    assert accounts.login("hoa", PASSWORD, totp.at(now[0]), address="a").username == "hoa"
    row = store.officer("hoa") or {}
    assert row["failed_logins"] == 0 and row["locked_until"] is None


def test_create_officer_checks_its_input(store: FleetStore) -> None:
    kw: dict[str, Any] = dict(full_name="A B", title="T", agency=AGENCY, role="officer")
    with pytest.raises(BadInput, match="password"):
        create_officer(store, "hoa", password="short", key_label="k", **kw)
    with pytest.raises(BadInput, match="key"):
        create_officer(store, "hoa", password=PASSWORD, **kw)
    with pytest.raises(BadInput, match="username"):
        create_officer(store, "Hoa Lê", password=PASSWORD, key_label="k", **kw)
    create_officer(store, "hoa", password=PASSWORD, key_label="k", **kw)
    with pytest.raises(BadInput, match="exists"):
        create_officer(store, "hoa", password=PASSWORD, key_label="k", **kw)


def test_sessions_drop_the_pin_when_idle_or_closed() -> None:
    from fleet.certify.accounts import Officer

    now = [100.0]
    sessions = Sessions(idle_s=60, session_s=3600, clock=lambda: now[0])
    hoa = Officer("hoa", "Lê Thị Hoa", "t", AGENCY, "officer")
    handle = sessions.open(hoa, PIN)
    now[0] += 59
    assert sessions.get(handle) == hoa and sessions.pin(handle) == PIN
    now[0] += 59  # touched at 159: still alive at 218
    assert sessions.pin(handle) == PIN
    now[0] += 61
    assert sessions.get(handle) is None and sessions.pin(handle) is None and len(sessions) == 0
    other = sessions.open(hoa, PIN)
    assert sessions.close(other) == hoa and sessions.pin(other) is None


# -- the web app ------------------------------------------------------------------------------


def test_login_needs_password_code_and_pin_and_is_audited(desk: Desk) -> None:
    client = desk.app.test_client()
    assert client.get("/queue").headers["Location"].endswith("/login")
    bad = log_in(desk, client, "hoa", password="không-phải-mật-khẩu")
    assert bad.status_code == 401 and "Sai tên đăng nhập" in bad.text
    no_pin = log_in(desk, client, "hoa", pin="")
    assert no_pin.status_code == 401 and "cần nhập PIN thiết bị ký" in no_pin.text
    ok = log_in(desk, client, "hoa")
    assert ok.status_code == 302 and ok.headers["Location"].endswith("/queue")
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # The cookie holds a handle only: neither the PIN nor the officer's name.
    value = cookie.split(";")[0].split("=", 1)[1]
    held = desk.app.session_interface.get_signing_serializer(desk.app).loads(value)
    assert set(held) == {"h", "_permanent"} and PIN not in str(held) and "hoa" not in str(held)
    client.post("/logout", data={"csrf_token": csrf(client.get("/queue").text)})
    assert client.get("/queue").status_code == 302
    assert audit_actions(desk.store) == [
        ("hoa", "login_failed"),
        ("hoa", "login_failed"),
        ("hoa", "login"),
        ("hoa", "logout"),
    ]
    rows = desk.store.audit_log()
    assert all(r["remote_addr"] for r in rows)
    assert all(PIN not in str(r["detail"]) and PASSWORD not in str(r["detail"]) for r in rows)


def test_a_post_without_the_csrf_token_is_refused(desk: Desk) -> None:
    client = desk.app.test_client()
    log_in(desk, client, "hoa")
    answer = client.post("/requests/REQ-0001/approve")
    assert answer.status_code == 400
    assert desk.status("REQ-0001") == "queued" and desk.book() == []


def test_the_queue_is_oldest_first_with_sla_and_flags(desk: Desk) -> None:
    client = desk.app.test_client()
    log_in(desk, client, "hoa")
    page = client.get("/queue")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    ids = re.findall(r'<tr data-id="([^"]+)" class="sla-(\w+)"', page.text)
    assert ids == [("REQ-0001", "late"), ("REQ-0002", "soon"), ("REQ-0003", "ok")]
    assert re.search(r'id="count">3<', page.text)
    assert 'id="count-late">1 Quá hạn' in page.text
    assert 'data-flag="photocopy"' in page.text and "Nghi bản photo" in page.text
    assert "REQ-9001" not in page.text  # another agency's
    rows = client.get("/queue?rows=1")
    assert "<html" not in rows.text and 'data-id="REQ-0001"' in rows.text
    # The auto-refresh is told to log in again rather than given the login page as rows.
    client.post("/logout", data={"csrf_token": csrf(page.text)})
    assert client.get("/queue?rows=1", headers={"X-Requested-With": "fetch"}).status_code == 401


def test_request_screen_shows_pages_fields_flags_and_preloads_the_next(desk: Desk) -> None:
    client = desk.app.test_client()
    log_in(desk, client, "hoa")
    page = client.get("/requests/REQ-0001")
    assert page.status_code == 200
    html = page.text
    assert html.count('<figure class="page"') == 2
    assert "Nguyễn Văn An" in html and "123/2019" in html and "GIẤY KHAI SINH" in html
    assert "Nghi bản photo" in html and "trang/page 2" in html  # a flag's explanation and detail
    assert "ảnh trong chip (đã xác thực chip)" in html  # how the kiosk identified the requester
    assert re.search(r'rel="preload" as="image" href="/requests/REQ-0001/pages/1.jpg"', html)
    assert re.search(r'rel="prefetch" as="image" href="/requests/REQ-0002/pages/1.jpg"', html)
    assert 'data-next="/requests/REQ-0002"' in html and 'data-previous=""' in html
    for n, (code, (vi, _)) in enumerate(REFUSAL_REASONS.items(), start=1):
        assert f'value="{code}" data-digit="{n}"' in html and vi in html
    image = client.get("/requests/REQ-0001/pages/2.jpg")
    assert image.status_code == 200 and image.data[:3] == b"\xff\xd8\xff"
    assert image.headers["Cache-Control"] == "private, max-age=300"
    assert client.get("/requests/REQ-0001/pages/3.jpg").status_code == 404
    # Another agency's request is neither shown nor served.
    assert client.get("/requests/REQ-9001").status_code == 302
    assert client.get("/requests/REQ-9001/pages/1.jpg").status_code == 404


def test_decisions_reach_the_certifier_with_the_login_pin_and_go_to_the_next(desk: Desk) -> None:
    client = desk.app.test_client()
    log_in(desk, client, "hoa")
    token = csrf(client.get("/requests/REQ-0001").text)
    done = client.post("/requests/REQ-0001/approve", data={"csrf_token": token})
    assert done.headers["Location"].endswith("/requests/REQ-0002")
    assert "Đã chứng thực, số 1" in client.get("/requests/REQ-0002").text
    # "other" needs its text; a reason outside the list is refused by the app itself.
    for data in ({"reason": "other"}, {"reason": "ugly"}):
        again = client.post("/requests/REQ-0002/refuse", data={"csrf_token": token, **data})
        assert again.headers["Location"].endswith("/requests/REQ-0002")
    done = client.post(
        "/requests/REQ-0002/refuse",
        data={"csrf_token": token, "reason": "other", "text": "Thiếu trang 3"},
    )
    assert done.headers["Location"].endswith("/requests/REQ-0003")
    done = client.post(
        "/requests/REQ-0003/see-staff", data={"csrf_token": token, "note": "Mang bản chính"}
    )
    assert done.headers["Location"].endswith("/queue")
    decided = {
        code: {k: desk.store.cert_request(code)[k] for k in ("status", "officer", "reason_code")}
        | {"text": desk.store.cert_request(code)["reason_text"]}
        for code in ("REQ-0001", "REQ-0002", "REQ-0003")
    }
    assert decided == {
        "REQ-0001": {"status": "approved", "officer": "hoa", "reason_code": None, "text": None},
        "REQ-0002": {
            "status": "refused",
            "officer": "hoa",
            "reason_code": "other",
            "text": "Thiếu trang 3",
        },
        "REQ-0003": {
            "status": "see_staff",
            "officer": "hoa",
            "reason_code": None,
            "text": "Mang bản chính",
        },
    }
    [entry] = desk.book()
    assert (entry.number, entry.book, entry.officer, entry.request_id) == (
        1,
        BOOK,
        "hoa",
        "REQ-0001",
    )
    # The kiosk heard each decision; the approval carries the copy, signed on the tokens.
    answers = [(m["request_id"], m["status"]) for _, m in desk.published]
    assert answers == [("REQ-0001", "approved"), ("REQ-0002", "refused"), ("REQ-0003", "see_staff")]
    pdf = base64.b64decode(desk.published[0][1]["pdf"])
    assert pdf.startswith(b"%PDF") and pdf.count(b"/ByteRange") == 2
    # A decided request is not decided twice.
    client.post("/requests/REQ-0001/approve", data={"csrf_token": token})
    assert len(desk.book()) == 1 and len(desk.published) == 3
    # The decisions are audited at the Certifier's clock (a fixed day), the login at the desk's.
    actions = [a for _, a in audit_actions(desk.store)]
    assert sorted(actions) == ["approve", "login", "refuse", "see_staff"]
    assert [a for a in actions if a != "login"] == ["approve", "refuse", "see_staff"]


def test_a_kiosks_signed_request_reaches_the_desk_and_is_approved(
    desk: Desk, fleet_pki: FleetPki
) -> None:
    """From the kiosk's outbox record (its package signed with the kiosk's fleet key) through
    Certifier.receive to the officer's queue, request screen and approval."""
    code = f"{KIOSK}-261201-000001-7"
    jpeg = page_jpeg((620, 877), "GIẤY KHAI SINH")
    assert desk.certifier.receive(KIOSK, record(signed(fleet_pki, KIOSK, code, jpeg, pages=2)))
    assert desk.published[-1][1]["status"] == "queued"
    assert desk.published[-1][1]["position"] == 4  # behind the three waiting already
    client = desk.app.test_client()
    log_in(desk, client, "hoa")
    queue = client.get("/queue").text
    ids = re.findall(r'<tr data-id="([^"]+)" class="sla-(\w+)"', queue)
    assert ids[-1] == (code, "ok")  # received just now by the Certifier's clock
    screen = client.get(f"/requests/{code}")
    assert screen.status_code == 200 and screen.text.count('<figure class="page"') == 2
    assert "Nguyễn Văn An" in screen.text
    image = client.get(f"/requests/{code}/pages/1.jpg")
    assert image.data == jpeg
    client.post(f"/requests/{code}/approve", data={"csrf_token": csrf(screen.text)})
    assert desk.status(code) == "approved"
    topic, approved = desk.published[-1]
    assert topic == f"kiosk/v1/{KIOSK}/cert" and approved["status"] == "approved"
    assert approved["number"] == 1 and approved["book"] == BOOK
    page = desk.app.test_client().get(f"/v/{code}")
    assert 'data-status="valid"' in page.text and "Lê Thị Hoa" in page.text


def test_a_wrong_pin_shows_the_error_and_keeps_the_request(desk: Desk) -> None:
    client = desk.app.test_client()
    log_in(desk, client, "hoa", pin="999999")
    token = csrf(client.get("/requests/REQ-0001").text)
    answer = client.post("/requests/REQ-0001/approve", data={"csrf_token": token})
    assert answer.headers["Location"].endswith("/requests/REQ-0001")
    assert "Không thực hiện được" in client.get("/requests/REQ-0001").text
    assert desk.book() == [] and desk.status("REQ-0001") == "queued" and desk.published == []


def test_roles_an_admin_manages_officers_and_reads_the_audit_and_book(desk: Desk) -> None:
    admin = desk.app.test_client()
    assert log_in(desk, admin, "quan.tri", pin="").headers["Location"].endswith("/admin")
    assert admin.get("/queue").status_code == 403  # admins do not decide
    page = admin.get("/admin")
    assert "hoa" in page.text and "minh" not in page.text  # own agency's officers only
    made = admin.post(
        "/admin",
        data={
            "csrf_token": csrf(page.text),
            "username": "thu",
            "full_name": "Phạm Thị Thu",
            "title": "Công chức Tư pháp - Hộ tịch",
            "role": "officer",
            "password": PASSWORD,
            "token_label": "officer-token",
            "key_label": "thu-sign",
        },
    )
    assert made.status_code == 200
    assert re.search(r'id="totp-uri">otpauth://totp/[^<]*secret=[A-Z2-7]+', made.text)
    assert 'src="data:image/svg+xml;base64,' in made.text
    assert (desk.store.officer("thu") or {})["agency"] == AGENCY

    officer = desk.app.test_client()
    log_in(desk, officer, "hoa")
    assert officer.get("/admin").status_code == 403
    officer_token = csrf(officer.get("/queue").text)
    officer.post("/requests/REQ-0001/approve", data={"csrf_token": officer_token})
    book_page = admin.get("/admin/book?year=2026")
    assert book_page.status_code == 200 and BOOK in book_page.text
    assert "Lê Thị Hoa" in book_page.text
    assert admin.get("/admin/book?year=x").status_code == 400
    token = csrf(admin.get("/admin").text)
    assert admin.post("/admin/officers/minh/disable", data={"csrf_token": token}).status_code == 404
    admin.post("/admin/officers/hoa/disable", data={"csrf_token": token})
    assert officer.get("/queue").status_code == 302  # the session ended with the account
    assert not (desk.store.officer("hoa") or {})["active"]

    audit = admin.get("/admin/audit").text
    for action in ("officer_add", "officer_disable", "login"):
        assert f'data-action="{action}"' in audit
    assert "minh" not in audit
    book = admin.get("/admin/book?year=2026&fmt=csv")
    assert book.status_code == 200 and book.data.decode("utf-8-sig").startswith("Số chứng thực")
    assert BOOK in book.data.decode("utf-8-sig") and "REQ-0001" in book.data.decode("utf-8-sig")
    assert "attachment" in book.headers["Content-Disposition"]
    assert ("quan.tri", "book_export") in audit_actions(desk.store)


def test_logins_from_one_address_are_rate_limited(desk: Desk, tmp_path: Path) -> None:
    app = create_app(
        desk.certifier,
        desk.store,
        DeskConfig(secret_key_file=tmp_path / "s2", cookie_secure=True, address_attempts=3),
    )
    client = app.test_client()
    assert "; Secure" in client.get("/login").headers["Set-Cookie"]
    answers = [log_in(desk, client, "minh", password="sai-mật-khẩu-mãi") for _ in range(2)]
    answers += [log_in(desk, client, "nobody", password="sai-mật-khẩu-mãi") for _ in range(2)]
    assert [a.status_code for a in answers] == [401] * 4
    assert "quá nhiều lần" in answers[-1].text and "quá nhiều lần" not in answers[-2].text


def test_public_verification_page(desk: Desk) -> None:
    client = desk.app.test_client()
    log_in(desk, client, "hoa")
    client.post("/requests/REQ-0001/approve", data={"csrf_token": csrf(client.get("/queue").text)})
    code = desk.book()[0].copy_code
    anyone = desk.app.test_client()
    for path in (f"/v/{code}", f"/v/{code.lower()}", f"/V/{code}/ban-sao.pdf?x=1"):
        page = anyone.get(path)
        assert page.status_code == 200, path
        assert 'data-status="valid"' in page.text and "Bản sao hợp lệ" in page.text
        assert 'id="doc-type">Giấy khai sinh<' in page.text and "Lê Thị Hoa" in page.text
        assert 'id="number">1<' in page.text and BOOK in page.text
        assert 'id="thumbnail"' in page.text
        # Nothing else personal: not the citizen's name, the fields or the OCR text.
        assert "Nguyễn Văn An" not in page.text and "123/2019" not in page.text
        assert page.text.index("Bản sao hợp lệ") < page.text.index("Valid certified copy")
    # A refused request's code says so, and nothing more.
    client.post(
        "/requests/REQ-0002/refuse",
        data={"csrf_token": csrf(client.get("/queue").text), "reason": "damaged"},
    )
    refused = anyone.get("/v/REQ-0002")
    assert 'data-status="refused"' in refused.text and 'id="thumbnail"' not in refused.text
    assert "Nguyễn Văn An" not in refused.text
    assert desk.store.revoke_copy(code, reason="cấp nhầm", operator="quan.tri", now=NOW + 60)
    revoked = anyone.get(f"/v/{code}")
    assert "Bản sao đã bị thu hồi" in revoked.text and 'id="thumbnail"' not in revoked.text
    unknown = anyone.get("/v/ZZZZ9999")
    assert unknown.status_code == 404 and "Không tìm thấy mã này" in unknown.text
    assert anyone.get("/v/%3Cscript%3E").status_code == 404


# -- the CLI ----------------------------------------------------------------------------------


def test_cli_officer_add_list_disable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleet.cli import main

    config = tmp_path / "fleet.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "f.db"}"\ndata_key_file = "{tmp_path / "dk"}"\n'
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert (
        main(
            [
                "-c",
                str(config),
                "certify",
                "officer",
                "add",
                "hoa",
                "--full-name",
                "Lê Thị Hoa",
                "--title",
                "Phó Chủ tịch",
                "--agency",
                AGENCY,
                "--key-label",
                "hoa-sign",
                "--password-stdin",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    uri = re.search(r"^otpauth://totp/\S+$", out, re.M)
    assert uri and "secret=" in uri.group(0)
    assert "▀" in out or "█" in out  # the QR as text for the authenticator app
    assert main(["-c", str(config), "certify", "officer", "list"]) == 0
    assert capsys.readouterr().out == f"hoa\t{AGENCY}\tofficer\tLê Thị Hoa\tactive\n"
    assert main(["-c", str(config), "certify", "officer", "disable", "hoa"]) == 0
    assert main(["-c", str(config), "certify", "officer", "disable", "nobody"]) == 2
    capsys.readouterr()
    main(["-c", str(config), "certify", "officer", "list"])
    assert capsys.readouterr().out.endswith("disabled\n")
    store = FleetStore(f"sqlite:///{tmp_path / 'f.db'}", data_key=tmp_path / "dk").create()
    try:
        secret = re.search(r"secret=([A-Z2-7]+)", uri.group(0))
        assert secret and store.totp_secret("hoa") == secret.group(1)
        with pytest.raises(LoginRefused):
            Accounts(store).login("hoa", PASSWORD, pyotp.TOTP(secret.group(1)).now(), address="a")
    finally:
        store.close()


# -- the same accounts on PostgreSQL, at the same instant -------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[Any]:
    from tests.fleet_console_helpers import running_postgres

    with running_postgres() as pg:
        yield pg


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_simultaneous_logins_with_one_code_let_one_in(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two logins with the same code at once (a shoulder-surfed code replayed in a race): the
    store takes the time step in one statement, so exactly one gets in; and five failures at
    once lock the account however they interleave."""
    import threading

    from tests.fleet_console_helpers import database_url

    url = database_url(request, tmp_path, engine)
    store = FleetStore(url, data_key=DataKey.load_or_create(tmp_path / "dk")).create()
    try:
        secret = add_officer(store, "hoa")
        accounts = Accounts(store)
        code = pyotp.TOTP(secret).now()
        barrier = threading.Barrier(4)
        outcomes: list[str] = []

        def attempt(password: str) -> None:
            barrier.wait()
            try:
                accounts.login("hoa", password, code, address="10.1.1.1")
            except LoginRefused:
                outcomes.append("refused")
            else:
                outcomes.append("in")

        threads = [threading.Thread(target=attempt, args=(PASSWORD,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(outcomes) == ["in", "refused", "refused", "refused"]

        barrier = threading.Barrier(5)
        threads = [threading.Thread(target=attempt, args=("sai-mật-khẩu-x",)) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        row = store.officer("hoa") or {}
        # The three replays above count as failures too: 3 + 5 = 8, the 5th locked it.
        assert row["locked_until"] is not None and row["locked_until"] > time.time()
    finally:
        store.close()


def test_an_idle_session_ends_and_forgets_the_pin(desk: Desk) -> None:
    sessions = desk.app.extensions["certify_desk"].sessions
    now = [1000.0]
    sessions.clock = lambda: now[0]
    client = desk.app.test_client()
    log_in(desk, client, "hoa")
    handle = next(iter(sessions._by_handle))
    assert sessions.pin(handle) == PIN
    now[0] += 14 * 60
    assert client.get("/queue").status_code == 200  # a request keeps it alive
    now[0] += 15 * 60 + 1
    assert client.get("/queue").headers["Location"].endswith("/login")
    assert sessions.pin(handle) is None and len(sessions) == 0


def test_cli_certify_serve_needs_an_agency_then_serves_the_desk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    from fleet.cli import main

    config = tmp_path / "fleet.toml"
    base = (
        f'[store]\nurl = "sqlite:///{tmp_path / "f.db"}"\ndata_key_file = "{tmp_path / "dk"}"\n'
        f'[web]\nsecret_key_file = "{tmp_path / "s.key"}"\n'
    )
    config.write_text(base)
    assert main(["-c", str(config), "certify", "serve", "--no-mqtt", "--port", "0"]) == 2
    assert "agency_id is empty" in capsys.readouterr().err
    # With an agency: the real process serves the login page and /v/<code>, and stops on TERM.
    config.write_text(base + '[certify]\nagency_id = "HN-TAYHO"\nagency_name = "UBND"\n')
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet.cli", "-c", str(config), "certify", "serve", "--no-mqtt",
         "--port", str(port)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    assert r.status == 200 and "Đăng nhập" in r.read().decode()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "desk did not start"
                time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as unknown:  # an unknown code: 404 and a page
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v/HN-X-261205-000001-A")
        assert unknown.value.code == 404
        assert 'data-status="unknown"' in unknown.value.read().decode()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-2000:]
