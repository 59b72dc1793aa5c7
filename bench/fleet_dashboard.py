"""The console's dashboard at fleet scale (issue 20): GET / with 20,000 kiosks on SQLite and on
PostgreSQL, one table.

    python -m bench.fleet_dashboard                 # 20,000 kiosks, both stores, 7 runs each
    python -m bench.fleet_dashboard --kiosks 2000 --runs 3 --stores sqlite

The kiosks are seeded through the store API (FleetStore.apply: a state/1 and a telemetry/1
message per kiosk, as ingest stores them; open alerts through sync_alerts), not through a broker:
this measures the page, the ingest figures are bench/fleet_console.py's. Each page is fetched
with Flask's test client in the console's own app, logged in, so the time is the server's
(routing, the SQL, the template), without a network. PostgreSQL 15 runs from a temp dir
(tests/fleet_console_helpers.Postgres) and is stopped at exit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

SITES = 400  # ~ Hanoi's 126 wards and Vietnam Post points: 50 kiosks a site at 20,000
VERSIONS = ("1.8.0", "1.9.0", "1.9.1", "2.0.0")
PASSWORD = "bench-password-1"


def kiosk_id(i: int) -> str:
    return f"{site_of(i)}-{i:05d}"


def site_of(i: int) -> str:
    return f"VN-P{i % SITES:03d}"


def is_offline(i: int) -> bool:
    return i % 10 == 3  # a tenth of the fleet


def is_alerting(i: int) -> bool:
    return i % 50 == 7  # one kiosk in fifty has an open alert


def version_of(i: int) -> str:
    return VERSIONS[i % len(VERSIONS)]


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat()


def seed(store: Any, kiosks: int, *, now: float, batch: int = 1000) -> None:
    """`kiosks` kiosks through the store API: online (a tenth offline), a version, a site, one
    telemetry sample each (its own temperature), and an open alert on one in fifty."""
    from fleet.store import Incoming

    def messages(i: int) -> list[Incoming]:
        k = kiosk_id(i)
        state = {
            "schema": "state/1",
            "kiosk_id": k,
            "state": "online",
            "time": _iso(now),
            "version": version_of(i),
            "protocol": "5",
            "capabilities": ["printer", "camera"],
            "status": {"site": site_of(i)},
            "seq": 1,
        }
        telemetry = {
            "schema": "telemetry/1",
            "kiosk_id": k,
            "time": _iso(now - 30),
            "system": {
                "uptime_s": 3600,
                "load": [0.5, 0.4, 0.3],
                "cpu_temp_c": 40.0 + (i * 7919) % 400 / 10,  # 40.0 .. 79.9, spread
                "memory": None,
                "disk": {"total_mb": 1000, "free_mb": 1000 - i % 900},
            },
            "outbox": {"record": i % 5, "event": 0, "telemetry": 0},
            "fleet": {"connected": True, "protocol": "5", "inflight": 0},
            "printer": {"paper": "out" if i % 97 == 5 else "ok", "online": True},
            "camera": {"ok": True},
            "id": f"tel-{k}-1",
            "seq": 2,
            "queued_at": _iso(now - 30),
        }
        out = [
            Incoming(f"kiosk/v1/{k}/state", k, "state", state, now),
            Incoming(f"kiosk/v1/{k}/telemetry", k, "telemetry", telemetry, now),
        ]
        if is_offline(i):
            offline = {"schema": "state/1", "kiosk_id": k, "state": "offline", "reason": "lwt"}
            out.append(Incoming(f"kiosk/v1/{k}/state", k, "state", offline, now + 1))
        return out

    pending: list[Incoming] = []
    for i in range(kiosks):
        pending += messages(i)
        if len(pending) >= batch:
            store.apply(pending)
            pending = []
    if pending:
        store.apply(pending)
    wanted = {
        (kiosk_id(i), "cpu_temp"): ("warning", "CPU nóng / hot")
        for i in range(kiosks)
        if is_alerting(i)
    }
    store.sync_alerts(wanted, now=now)


# What the bench asks for: the default page, page 2, filters, search, sorts.
QUERIES: list[tuple[str, str]] = [
    ("GET / (first page)", "/"),
    ("page 2", "/?page=2"),
    ("last page", "/?page=100000"),
    ("state offline", "/?state=offline"),
    ("state alerting", "/?state=alerting"),
    ("one site", f"/?site={site_of(123)}"),
    ("version filter, sort by temperature", f"/?version={VERSIONS[1]}&sort=temp"),
    ("search id prefix", f"/?q={kiosk_id(4321)[:-1]}"),
    ("sort by alerts, desc", "/?sort=alerts&dir=desc"),
]


@contextmanager
def console_app(url: str, root: Path) -> Iterator[Any]:
    """A logged-in Flask test client of a console on `url` (not connected to any broker)."""
    from fleet.config import FleetConfig, StoreSection, WebSection
    from fleet.console import build_console
    from fleet.operators import create_operator
    from fleet.web import create_app

    config = FleetConfig(
        store=StoreSection(url=url, data_key_file=root / "data.key"),
        web=WebSection(secret_key_file=root / "secret.key", cookie_secure=False),
    )
    console = build_console(config)
    console.store.create()
    try:
        if console.store.operator("bench.operator") is None:
            create_operator(console.store, "bench.operator", "Bench", PASSWORD)
        client = create_app(console).test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
        assert token is not None, "no CSRF token on the login page"
        done = client.post(
            "/login",
            data={"csrf_token": token.group(1), "operator": "bench.operator", "password": PASSWORD},
        )
        assert done.status_code == 302, "bench login failed"
        yield console, client
    finally:
        console.store.close()


def measure(client: Any, path: str, runs: int) -> tuple[float, float]:
    """(median, max) in ms over `runs` GETs after one warm-up."""
    samples = []
    for n in range(runs + 1):
        start = time.perf_counter()
        response = client.get(path)
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code != 200 or b'id="kiosks"' not in response.data:
            raise RuntimeError(f"GET {path} answered {response.status_code}")
        if n:
            samples.append(elapsed)
    return statistics.median(samples), max(samples)


def run(kiosks: int, runs: int, stores: list[str]) -> list[tuple[str, str, float, float]]:
    from tests.fleet_console_helpers import Postgres

    rows: list[tuple[str, str, float, float]] = []
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-dash-")))
        for kind in stores:
            if kind == "postgresql":
                pg = Postgres().start()
                stack.callback(pg.stop)
                url = pg.url
            else:
                url = f"sqlite:///{root / 'fleet.db'}"
            (root / kind).mkdir()
            with console_app(url, root / kind) as (console, client):
                start = time.perf_counter()
                seed(console.store, kiosks, now=time.time())
                print(
                    f"{kind}: seeded {kiosks} kiosks in {time.perf_counter() - start:.1f} s",
                    file=sys.stderr,
                )
                for label, path in QUERIES:
                    median, worst = measure(client, path, runs)
                    rows.append((kind, label, median, worst))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_dashboard", description=__doc__)
    parser.add_argument("--kiosks", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=7, help="GETs per query (after a warm-up)")
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args(argv)
    from bench.machine import describe

    rows = run(args.kiosks, args.runs, args.stores)
    print(f"Console dashboard, {args.kiosks} kiosks, {args.runs} runs per query (ms)")
    print(f"{'store':<11} {'query':<38} {'median':>8} {'max':>8}")
    for kind, label, median, worst in rows:
        print(f"{kind:<11} {label:<38} {median:8.1f} {worst:8.1f}")
    print(describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
