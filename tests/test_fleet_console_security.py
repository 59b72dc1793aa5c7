"""The console's web security (issue 21): login throttling kept in the store (atomic, per
operator and address, survives a restart), equal work for unknown operators, `next=` only to
the console's own pages, cookie and cache headers, /metrics behind a login or a token."""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.security import check_password_hash

import fleet.operators
from fleet.config import FleetConfig, StoreSection, WebSection
from fleet.console import Console, build_console
from fleet.operators import KeyRing, create_operator
from fleet.web import create_app
from tests.fleet_console_helpers import Postgres, database_url, running_postgres
from tests.mqtt_broker import Broker, FleetPki

OPERATOR, PASSWORD = "an", "mật-khẩu-đúng-1"
WRONG = "Sai tên đăng nhập hoặc mật khẩu"
LOCKED = "quá nhiều lần"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request, tmp_path)


@pytest.fixture
def make_console(tmp_path: Path) -> Iterator[Callable[..., Console]]:
    """Consoles on one store (a second one is the console after a restart)."""
    made: list[Console] = []

    def make(url: str | None = None, **web: Any) -> Console:
        config = FleetConfig(
            store=StoreSection(
                url=url or f"sqlite:///{tmp_path / 'fleet.db'}", data_key_file=tmp_path / "dk"
            ),
            web=WebSection(secret_key_file=tmp_path / "secret", **web),
        )
        console = Console(config)
        console.store.create()
        if console.store.operator(OPERATOR) is None:
            create_operator(console.store, OPERATOR, "An", PASSWORD)
        made.append(console)
        return console

    yield make
    for console in made:
        console.store.close()


def client_at(app: Any, address: str) -> Any:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def csrf(client: Any, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]* value="([^"]+)"', page).group(1)


def attempt(client: Any, password: str, operator: str = OPERATOR, query: str = "") -> Any:
    return client.post(
        "/login" + query,
        data={"csrf_token": csrf(client), "operator": operator, "password": password},
    )


# --- login throttling ---------------------------------------------------------------------


def test_simultaneous_wrong_logins_evaluate_at_most_the_allowed_number(
    make_console: Callable[..., Console], store_url: str
) -> None:
    console = make_console(store_url, login_attempts=5)
    app = create_app(console)
    clients = [client_at(app, "198.51.100.9") for _ in range(25)]
    tokens = [csrf(c) for c in clients]
    start = threading.Barrier(len(clients))
    answers: list[str] = []

    def guess(client: Any, token: str) -> None:
        start.wait()
        r = client.post(
            "/login", data={"csrf_token": token, "operator": OPERATOR, "password": "sai-sai"}
        )
        assert r.status_code == 401
        answers.append(r.get_data(as_text=True))

    threads = [threading.Thread(target=guess, args=ct) for ct in zip(clients, tokens, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 25
    evaluated = sum(WRONG in a for a in answers)
    refused = sum(LOCKED in a for a in answers)
    assert (evaluated, refused) == (5, 20)


def test_the_lockout_survives_a_restart_and_ends_after_lockout_s(
    make_console: Callable[..., Console], store_url: str
) -> None:
    console = make_console(store_url, login_attempts=3, lockout_s=60)
    client = client_at(create_app(console), "198.51.100.9")
    for _ in range(3):
        assert WRONG in attempt(client, "sai-sai").get_data(as_text=True)
    console.store.close()
    # A new console process on the same store: still locked, even with the right password.
    again = make_console(store_url, login_attempts=3, lockout_s=60)
    client = client_at(create_app(again), "198.51.100.9")
    locked = attempt(client, PASSWORD)
    assert locked.status_code == 401 and LOCKED in locked.get_data(as_text=True)
    # A minute later (the key ring's clock, the store's rows): the operator gets in.
    later = time.time() + 61
    again.keys = KeyRing(attempts=3, lockout_s=60, clock=lambda: later)
    assert attempt(client, PASSWORD).status_code == 302


def test_a_stranger_cannot_lock_the_operator_out_from_another_address(
    make_console: Callable[..., Console],
) -> None:
    console = make_console(login_attempts=3, address_attempts=6)
    app = create_app(console)
    stranger = client_at(app, "203.0.113.66")
    for _ in range(3):
        assert WRONG in attempt(stranger, "sai-sai").get_data(as_text=True)
    assert LOCKED in attempt(stranger, PASSWORD).get_data(as_text=True)
    # The operator at the desk, another address, is not locked out.
    desk = client_at(app, "192.0.2.10")
    assert attempt(desk, PASSWORD).status_code == 302
    # The stranger's address has a limit over all operator ids too (3 more, then refused).
    for name in ("binh", "chi", "dung"):
        assert WRONG in attempt(stranger, "sai-sai", operator=name).get_data(as_text=True)
    assert LOCKED in attempt(stranger, "sai-sai", operator="em").get_data(as_text=True)
    # A good login from an address is not counted against it.
    for _ in range(8):
        desk.post("/logout", data={"csrf_token": csrf(desk, "/")})
        assert attempt(desk, PASSWORD).status_code == 302


def test_an_unknown_operator_costs_the_same_password_hash(
    make_console: Callable[..., Console], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mechanism: an unknown (or disabled) id is checked against a dummy hash of the same
    method and cost; then a generous timing bound."""
    console = make_console(address_attempts=100)
    create_operator(console.store, "tat", "Tắt", PASSWORD)
    console.store.update_operator("tat", disabled=True)
    checked: list[str] = []

    def spy(pwhash: str, password: str) -> bool:  # werkzeug's, observed not replaced
        checked.append(pwhash)
        return check_password_hash(pwhash, password)

    monkeypatch.setattr(fleet.operators, "check_password_hash", spy)
    real = console.store.operator(OPERATOR)["password_hash"]
    method = real.split("$")[0]  # e.g. scrypt:32768:8:1
    keys = console.keys
    for who in ("khong.co", "tat", "x" * 300, ""):
        with pytest.raises(fleet.operators.LoginRefused):
            keys.login(console.store, who, PASSWORD, address="192.0.2.1")
        assert len(checked) == 1 and checked[0].split("$")[0] == method, who
        assert checked.pop() != real
    monkeypatch.undo()

    def timed(who: str, n: int) -> float:
        times = []
        for i in range(n):
            t = time.perf_counter()
            with pytest.raises(fleet.operators.LoginRefused):
                keys.login(console.store, who, "sai-sai", address=f"192.0.2.{i + 10}")
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    known, unknown = timed(OPERATOR, 3), timed("khong.co", 3)
    assert unknown > known * 0.3, (known, unknown)  # was 2 ms vs 90 ms


# --- redirects and bad input --------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("//example.com", "/"),
        ("https://example.com/", "/"),
        ("/\\example.com", "/"),
        ("///example.com", "/"),
        ("http:/example.com", "/"),
        ("/khong-co-trang-nay", "/"),
        ("/logout", "/"),
        ("/static/fleet.css", "/"),
        ("/alerts", "/alerts"),
        ("/?site=HN-TAYHO&sort=temp", "/?site=HN-TAYHO&sort=temp"),
        ("/kiosks/HN-TAYHO-01", "/kiosks/HN-TAYHO-01"),
    ],
)
def test_next_goes_only_to_the_consoles_own_pages(
    make_console: Callable[..., Console], target: str, expected: str
) -> None:
    from urllib.parse import quote

    client = client_at(create_app(make_console()), "192.0.2.10")
    r = attempt(client, PASSWORD, query="?next=" + quote(target, safe=""))
    assert r.status_code == 302
    assert r.headers["Location"] == expected


@pytest.mark.parametrize("target", ["/\t/example.com", "/\n/example.com", "/\r\nX: y", "/\x00"])
def test_next_with_a_control_character_is_a_400(
    make_console: Callable[..., Console], target: str, caplog: pytest.LogCaptureFixture
) -> None:
    from urllib.parse import quote

    client = client_at(create_app(make_console()), "192.0.2.10")
    query = "?next=" + quote(target, safe="")
    assert client.get("/login" + query).status_code == 400
    r = attempt(client, PASSWORD, query=query)
    assert r.status_code == 400 and "Location" not in r.headers
    assert "không hợp lệ" in r.get_data(as_text=True)
    assert any("bad redirect target" in rec.getMessage() for rec in caplog.records)
    assert client.get("/").status_code == 302  # and the login was not done


def test_the_command_forms_back_field_is_no_open_redirect(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki
) -> None:
    """The kiosk page's command form says where to go back to: the same rule as `next`."""
    from tests.test_fleet_console import console_config

    console = build_console(console_config(tmp_path, broker, fleet_pki)).start()
    try:
        assert console.ingest.wait_connected(10)
        create_operator(console.store, OPERATOR, "An", PASSWORD)
        client = client_at(create_app(console), "192.0.2.10")
        assert attempt(client, PASSWORD).status_code == 302
        token = csrf(client, "/commands")

        def send(back: str) -> Any:
            form = {"csrf_token": token, "name": "print-test", "back": back, "kiosk": "HN-X-01"}
            return client.post("/commands", data=form)

        for back in ("/\t/example.com", "/\n", "/x\x00"):
            r = send(back)
            assert r.status_code == 400 and "Location" not in r.headers, back
        assert console.store.commands() == []  # nothing was sent
        for back, goes_to in (
            ("//example.com", "/commands"),
            ("https://example.com/kiosks/HN-X-01", "/commands"),
            ("/kiosks/HN-X-01", "/kiosks/HN-X-01"),
        ):
            r = send(back)
            assert (r.status_code, r.headers["Location"]) == (302, goes_to), back
        assert len(console.store.commands()) == 3
    finally:
        console.stop()


def test_without_a_broker_a_command_is_a_clear_refusal(
    make_console: Callable[..., Console],
) -> None:
    """`serve --no-mqtt`: the command form says there is no broker (it was a 500)."""
    client = client_at(create_app(make_console()), "192.0.2.10")
    assert attempt(client, PASSWORD).status_code == 302
    form = {"csrf_token": csrf(client, "/commands"), "name": "print-test", "kiosk": "HN-X-01"}
    r = client.post("/commands", data=form)
    assert r.status_code == 400 and "no broker" in r.get_data(as_text=True)


# --- cookie, cache, /metrics --------------------------------------------------------------


def test_session_cookie_is_secure_httponly_samesite_by_default(
    make_console: Callable[..., Console],
) -> None:
    client = client_at(create_app(make_console()), "192.0.2.10")
    cookie = attempt(client, PASSWORD).headers["Set-Cookie"]
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "SameSite=Strict" in cookie
    # Plain HTTP on the loopback (tests, development) says so explicitly.
    plain = client_at(create_app(make_console(cookie_secure=False)), "192.0.2.10")
    cookie = attempt(plain, PASSWORD).headers["Set-Cookie"]
    assert "Secure" not in cookie and "; HttpOnly" in cookie


def test_every_page_but_static_assets_is_no_store(make_console: Callable[..., Console]) -> None:
    client = client_at(create_app(make_console()), "192.0.2.10")
    assert client.get("/login").headers["Cache-Control"] == "no-store"
    assert attempt(client, "sai").headers["Cache-Control"] == "no-store"
    assert attempt(client, PASSWORD).headers["Cache-Control"] == "no-store"
    for path in ("/", "/alerts", "/commands", "/records", "/queues", "/metrics", "/healthz"):
        assert client.get(path).headers["Cache-Control"] == "no-store", path
    assert client.get("/kiosks/HN-NONE-01").headers["Cache-Control"] == "no-store"
    static = client.get("/static/fleet.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")


def test_metrics_need_a_session_or_the_bearer_token_by_default(
    make_console: Callable[..., Console], tmp_path: Path
) -> None:
    anonymous = client_at(create_app(make_console()), "192.0.2.10")
    assert anonymous.get("/metrics").status_code == 401
    token_file = tmp_path / "metrics.token"
    token_file.write_text("s3cr3t-scraper-token\n")
    app = create_app(make_console(metrics_token_file=token_file))
    scraper = client_at(app, "192.0.2.20")
    ok = scraper.get("/metrics", headers={"Authorization": "Bearer s3cr3t-scraper-token"})
    assert ok.status_code == 200 and "fleet_kiosks" in ok.get_data(as_text=True)
    for bad in ("Bearer wrong", "Bearer ", "Basic czNjcjN0", "s3cr3t-scraper-token", "Bearer ü"):
        assert scraper.get("/metrics", headers={"Authorization": bad}).status_code == 401, bad
    assert scraper.get("/metrics").status_code == 401
    operator = client_at(app, "192.0.2.10")
    assert attempt(operator, PASSWORD).status_code == 302
    assert operator.get("/metrics").status_code == 200
    # Public only when the config says so.
    public = client_at(create_app(make_console(metrics_public=True)), "192.0.2.30")
    assert public.get("/metrics").status_code == 200


def test_a_missing_or_empty_metrics_token_file_is_a_clear_config_error(
    make_console: Callable[..., Console], tmp_path: Path
) -> None:
    from edge.errors import ConfigError

    with pytest.raises(ConfigError, match="metrics_token_file"):
        create_app(make_console(metrics_token_file=tmp_path / "none"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="metrics_token_file"):
        create_app(make_console(metrics_token_file=tmp_path / "empty"))


def test_behind_the_proxy_the_forwarded_address_is_throttled(
    make_console: Callable[..., Console],
) -> None:
    """With proxy_hops = 1 (the TLS proxy in front), X-Forwarded-For names the client: a
    stranger locked out does not lock out the operator coming through the same proxy."""
    app = create_app(make_console(login_attempts=2, proxy_hops=1))
    proxy = client_at(app, "127.0.0.1")

    def via(address: str, password: str) -> Any:
        token = csrf(proxy)
        return proxy.post(
            "/login",
            data={"csrf_token": token, "operator": OPERATOR, "password": password},
            headers={"X-Forwarded-For": address},
        )

    for _ in range(2):
        assert via("203.0.113.66", "sai").status_code == 401
    assert LOCKED in via("203.0.113.66", PASSWORD).get_data(as_text=True)
    assert via("192.0.2.10", PASSWORD).status_code == 302
