"""Every route of the console's web app, logged out and logged in, with odd methods, path
values, query strings, bodies and headers (a fixed seed, a bounded count): no answer is a
500, and the app still works afterwards."""

from __future__ import annotations

import json
import logging
import random
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.config import (
    FleetConfig,
    PaymentsSection,
    ProvisioningSection,
    StoreSection,
    WebSection,
)
from fleet.console import Console, build_console
from fleet.operators import create_operator
from fleet.web import create_app

SEED = 21
PER_RULE_AND_CLIENT = 70  # 16 rules x 2 clients x 70, plus ~400 form mutations
OPERATOR, PASSWORD = "fuzz.op", "mật-khẩu-dài-9"
KIOSK = "HN-TAYHO-01"
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]

HOSTILE = [
    "",
    " ",
    "a" * 5000,
    "../../etc/passwd",
    "%00",
    "\x00",
    "\r\nSet-Cookie: x=1",
    "\t",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "Ω≈ç√∫",
    "\u202e\u200b",
    "\U0001f600",
    "1e309",
    "-1",
    "99999999999999999999999",
    "null",
    "[]",
    "{}",
    "//example.com",
    "https://example.com",
    "/\\example.com",
]
JSON_ARGS = [
    "[" * 3000 + "]" * 3000,
    '{"a": ' * 2000,
    '{"lines": 1e999}',
    '{"lines": NaN}',
    '{"lines": -Infinity}',
    "[1]",
    '"text"',
    "{",
    '{"changes": {"a": "' + "x" * 50000 + '"}}',
]
PLAUSIBLE = [KIOSK, "HN-X-01", "HN-TAYHO", "print-test", "A", "10", "0", "code", "certificate"]
FIELDS = [
    "csrf_token",
    "operator",
    "password",
    "name",
    "site",
    "args",
    "ttl",
    "kiosk",
    "back",
    "kind",
    "code",
    "reason",
    "kiosk_id",
    "serial",
    "area",
    "serving",
    "avg_service_s",
    "counters_open",
    "priority_serving",
    "push",
    "request_code",
    "reference",
    "status",
]
QUERY_KEYS = ["next", "site", "state", "sort", "dir", "kiosk", "request", "x"]
# Values the forms accept, so that half the time a form gets past its validation.
GOOD = {
    "name": ["print-test", "lock", "collect-logs", "set-config", "update"],
    "kind": ["code", "certificate"],
    "kiosk": [KIOSK, "HN-X-01"],
    "kiosk_id": ["HN-NEW-01"],
    "site": ["HN-TAYHO"],
    "area": ["A"],
    "serving": ["3"],
    "ttl": ["60"],
    "code": ["HN-A-261123-0001-X", "ff01"],
}


def value(rng: random.Random) -> str:
    return rng.choice(HOSTILE + PLAUSIBLE)


def path_for(rule: Any, rng: random.Random, command_id: str) -> str:
    path = rule.rule
    for arg in rule.arguments:
        plausible = command_id if arg == "command_id" else KIOSK
        v = plausible if rng.random() < 0.5 else value(rng)
        if arg == "filename":
            v = rng.choice(["fleet.css", "../fleet.css", "x" * 300, "%2e%2e/secret.key", v])
        quoted = "".join(c if c.isalnum() or c in "-._~" else f"%{ord(c) & 0xFF:02X}" for c in v)
        path = path.replace(f"<{arg}>", quoted or "x").replace(f"<string:{arg}>", quoted or "x")
        path = re.sub(rf"<[a-z]+:{arg}>", quoted or "x", path)
    if rng.random() < 0.6:
        pairs = [(rng.choice(QUERY_KEYS), value(rng)) for _ in range(rng.randint(1, 3))]
        raw = "&".join(
            f"{k}={''.join(c if c.isalnum() else f'%{ord(c) & 0xFF:02X}' for c in v)}"
            for k, v in pairs
        )
        path += "?" + rng.choice([raw, "%zz=%", "a=%ff%fe", "&&&=", "next=%0a"])
    return path


BODY_KINDS = ["mutant", "mutant", "form", "form", "json-bad", "json-types", "deep", "huge"]
BODY_KINDS += ["bytes", "multipart"]
# Each form as the page sends it; a mutant changes one or two fields of it.
VALID = {
    "auth.login": {"operator": OPERATOR, "password": "sai-sai-sai"},
    "views.commands": {"name": "print-test", "kiosk": KIOSK, "args": "{}", "ttl": "60"},
    "views.set_site": {"site": "HN-TAYHO"},
    "views.revocations": {"kind": "code", "code": "HN-A-261123-0001-X", "reason": "r"},
    "views.provisioning": {"kiosk_id": "HN-NEW-01", "site": "HN-NEW", "serial": "ab12"},
    "views.shipments": {
        "request_code": "1A2B3C4D",
        "reference": "EE473124829VN",
        "status": "accepted",
    },
    "views.queues": {
        "site": "HN-TAYHO",
        "area": "A",
        "serving": "3",
        "counters_open": "2",
        "priority_serving": "1",
    },
}


def body_for(rng: random.Random, token: str | None, endpoint: str) -> dict[str, Any]:
    """Keyword arguments for the test client: data and content type."""
    kind = rng.choice(BODY_KINDS)
    if kind == "mutant" and endpoint in VALID:
        form = dict(VALID[endpoint], csrf_token=token or "")
        for name in rng.sample(sorted(form), rng.randint(1, 2)):
            if name == "csrf_token" and rng.random() < 0.8:
                continue
            form[name] = rng.choice(JSON_ARGS) if name == "args" else value(rng)
        return {"data": form}
    form = {
        f: rng.choice(GOOD[f]) if f in GOOD and rng.random() < 0.5 else value(rng)
        for f in rng.sample(FIELDS, rng.randint(2, 12))
    }
    if rng.random() < 0.4:  # far enough for the login to run: throttle, hash, refusal
        form.update(operator=rng.choice([OPERATOR, value(rng)]), password=value(rng))
    if token and rng.random() < 0.6:
        form["csrf_token"] = token
    if kind == "form":
        return {"data": form}
    if kind == "json-bad":
        return {"data": '{"operator": "an", "password": ', "content_type": "application/json"}
    if kind == "json-types":
        doc = {f: rng.choice([[1, 2], {"a": None}, 1.5, True, None]) for f in FIELDS[:6]}
        return {"data": json.dumps(doc), "content_type": "application/json"}
    if kind == "deep":
        return {"data": "[" * 5000 + "]" * 5000, "content_type": "application/json"}
    if kind == "huge":
        return {"data": {**form, rng.choice(FIELDS): "x" * 300_000}}
    if kind == "bytes":
        return {
            "data": rng.choice(
                [b"\xff\xfe\x00\x80", b"operator=%ff&password=\xc3(", b"operator=%ED%A0%80&=&="]
            ),
            "content_type": rng.choice(
                [
                    "application/x-www-form-urlencoded",
                    "application/x-www-form-urlencoded; charset=latin-1",
                    "text/plain",
                    "application/octet-stream",
                ]
            ),
        }
    return {
        "data": b'--XX\r\nContent-Disposition: form-data; name="operator"\r\n\r\nan\r\n--YY',
        "content_type": rng.choice(["multipart/form-data; boundary=XX", "multipart/form-data"]),
    }


def headers_for(rng: random.Random, logged_in: bool) -> dict[str, str]:
    choices = {
        "Authorization": ["Bearer", "Bearer \x7f", "Basic ????", "Bearer " + "a" * 4000, "x y z"],
        "X-Forwarded-For": ["not-an-ip", "203.0.113.5, 10.0.0.1", "", "::1", "1.2.3.4" * 50],
        "X-Forwarded-Proto": ["gopher", "https", ""],
        "Accept-Language": ["vi;q=abc", "*", "x" * 500],
        "If-Modified-Since": ["yesterday", "Thu, 01 Jan 1970 00:00:00 GMT"],
        "Range": ["bytes=abc", "bytes=0-0,-1"],
        "Content-Encoding": ["gzip", "br"],
        "Referer": ["javascript:alert(1)", "//example.com"],
        "User-Agent": ["\u00ff" * 10, ""],
        "Cookie": ["session=garbage", "session=" + "A" * 5000, "session=.eJw.x.y"],
    }
    if logged_in:
        choices.pop("Cookie")  # the logged-in client keeps its own session cookie
    picked = rng.sample(sorted(choices), rng.randint(0, 3))
    return {k: rng.choice(choices[k]) for k in picked}


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    token = tmp_path / "metrics.token"
    token.write_text("fuzz-metrics-token\n")
    payos_key = tmp_path / "payos.key"
    payos_key.write_text("fuzz-payos-checksum-key\n")
    config = FleetConfig(
        store=StoreSection(url=f"sqlite:///{tmp_path / 'fleet.db'}", data_key_file=tmp_path / "dk"),
        web=WebSection(
            secret_key_file=tmp_path / "secret",
            proxy_hops=1,
            metrics_token_file=token,
            cookie_secure=False,
        ),
        # /provisioning makes claims: their key file in the temp dir, not the cwd.
        provisioning=ProvisioningSection(secrets_key_file=tmp_path / "claims.key"),
        # The bank's webhook with its checksum key, so the fuzz reaches its signature check
        # (without a key it answers 503 by design: docs/payments.md).
        payments=PaymentsSection(checksum_key_file=payos_key),
    )
    console = build_console(config).start(mqtt=False)
    create_operator(console.store, OPERATOR, "Fuzz", PASSWORD)
    console.store.set_site(KIOSK, "HN-TAYHO")
    yield console
    console.stop()


def csrf_of(client: Any, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]* value="([^"]+)"', page).group(1)


def log_in(app: Any) -> tuple[Any, str]:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "192.0.2.250"
    form = {"csrf_token": csrf_of(client), "operator": OPERATOR, "password": PASSWORD}
    r = client.post("/login", data=form)
    assert r.status_code == 302, r.get_data(as_text=True)
    return client, csrf_of(client, "/commands")  # the session's token after login


def test_no_route_answers_500_to_malformed_requests(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(console)
    command_id = str(uuid.uuid4())
    console.store.log_command(
        {
            "id": command_id,
            "name": "print-test",
            "args": {},
            "operator": OPERATOR,
            "expires_at": "2030-01-01T00:00:00+00:00",
        },
        kiosk_id=KIOSK,
        now=time.time(),
    )
    rules = sorted(app.url_map.iter_rules(), key=lambda r: r.rule)
    assert len(rules) >= 15, [r.rule for r in rules]
    rng = random.Random(SEED)
    anonymous = app.test_client()
    member, member_token = log_in(app)
    failures: list[str] = []
    sent = 0
    start = time.monotonic()
    caplog.set_level(logging.ERROR, logger="fleet.web")
    for rule in rules:
        for client, token, logged_in in (
            (anonymous, csrf_of(anonymous), False),  # anew: a protected page clears it
            (member, member_token, True),
        ):
            for _ in range(PER_RULE_AND_CLIENT):
                if logged_in and rule.endpoint in ("auth.logout", "auth.login"):
                    break  # stays logged in; the anonymous client covers these
                own = sorted(rule.methods - {"HEAD", "OPTIONS"})
                method = rng.choice(own if rng.random() < 0.5 else METHODS)
                path = path_for(rule, rng, command_id)
                kwargs = body_for(rng, token, rule.endpoint) if method != "GET" else {}
                headers = headers_for(rng, logged_in)
                response = client.open(path, method=method, headers=headers, **kwargs)
                sent += 1
                status = response.status_code
                if status >= 500 and not (rule.endpoint == "views.healthz" and status == 503):
                    failures.append(f"{status} {method} {path!r} {kwargs!r:.200} {headers!r:.200}")
    # Then every form, each field in turn given every hostile value, the rest as sent.
    for endpoint, valid in VALID.items():
        rule = next(r for r in rules if r.endpoint == endpoint)
        client = anonymous if endpoint == "auth.login" else member
        for field in valid:
            for bad in HOSTILE + (JSON_ARGS if field == "args" else []):
                token = csrf_of(anonymous) if client is anonymous else member_token
                path = rule.rule.replace("<kiosk_id>", KIOSK)
                response = client.post(path, data={**valid, field: bad, "csrf_token": token})
                sent += 1
                if response.status_code >= 500:
                    failures.append(f"{response.status_code} POST {path} {field}={bad!r:.80}")
    elapsed = time.monotonic() - start
    errors = [r.getMessage() + (r.exc_text or "") for r in caplog.records if r.exc_info]
    assert not failures, "\n".join(failures[:20]) + "\n" + "\n".join(errors[:3])
    # Bounded: about PER_RULE_AND_CLIENT requests per route and client, plus the forms' fields.
    bound = 2 * PER_RULE_AND_CLIENT * len(rules) + sum(
        len(v) * (len(HOSTILE) + len(JSON_ARGS)) for v in VALID.values()
    )
    assert 1500 <= sent <= bound and elapsed < 60, (sent, bound, elapsed)
    # Still working: the member's session, a new login, the pages.
    assert member.get("/").status_code == 200
    assert member.get(f"/kiosks/{KIOSK}").status_code == 200
    again, _ = log_in(app)
    assert again.get("/commands").status_code == 200
    assert anonymous.get("/").status_code == 302
