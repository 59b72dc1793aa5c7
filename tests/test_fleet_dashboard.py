"""The dashboard at fleet scale (20,000 kiosks seeded through the store API, SQLite and a real
PostgreSQL): counts, pages, filters, search and sorts done in SQL; and queue figures computed
from the tickets real kiosks report through a real Mosquitto, called at the counter, and
published retained to each kiosk."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.fleet_dashboard import (
    console_app,
    is_alerting,
    is_offline,
    kiosk_id,
    seed,
    site_of,
    version_of,
)
from fleet.console import Console
from tests import test_fleet_console as base
from tests.fleet_console_helpers import SimKiosk, running_postgres
from tests.mqtt_broker import assert_valid, wait_until
from tests.test_fleet_console import RealKiosk, csrf_of, login

# The console's fixtures (a real Mosquitto with mTLS, real kiosk clients, SQLite/PostgreSQL).
make_console = base.make_console
real_kiosk = base.real_kiosk
sims = base.sims
store_url = base.store_url

N = 20000
PAGE = 50


def shown(page: str) -> list[str]:
    return re.findall(r'data-kiosk="([^"]+)"', page)


def pill(page: str, name: str) -> int:
    found = re.search(rf'id="count-{name}">(\d+)', page)
    assert found, name
    return int(found.group(1))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def big_fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    root = tmp_path_factory.mktemp(f"dash-{request.param}")
    with running_postgres() if request.param == "postgresql" else _nothing() as pg:
        url = pg.url if pg is not None else f"sqlite:///{root / 'fleet.db'}"
        with console_app(url, root) as (console, client):
            seed(console.store, N, now=time.time())
            yield client


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def timed_get(client: Any, path: str) -> tuple[str, float]:
    start = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - start
    assert response.status_code == 200, path
    return response.get_data(as_text=True), elapsed


def test_the_first_page_of_20000_kiosks_counts_all_and_answers_in_time(big_fleet: Any) -> None:
    timed_get(big_fleet, "/")  # warm-up: templates compiled, connections opened
    page, elapsed = timed_get(big_fleet, "/")
    # The product asks < 300 ms (bench/README.md has the figure); a generous bound here on a
    # shared 2-core machine: what fails is a page that lists every kiosk again.
    assert elapsed < 1.5, f"GET / took {elapsed:.2f} s"
    offline = sum(is_offline(i) for i in range(N))
    alerting = sum(is_alerting(i) for i in range(N))
    assert (pill(page, "online"), pill(page, "offline")) == (N - offline, offline)
    assert pill(page, "alerting") == alerting and pill(page, "alerts") == alerting
    assert f"{N} kiosk / 400 điểm" in page
    everyone = sorted(range(N), key=lambda i: (site_of(i), kiosk_id(i)))
    assert shown(page) == [kiosk_id(i) for i in everyone[:PAGE]]
    assert f"{PAGE} / {N} kiosk" in page and f"Trang 1/{N // PAGE}" in page
    # Per-site counts at the top, from one aggregate: one site's row.
    members = [i for i in range(N) if site_of(i) == site_of(7)]
    row = re.search(rf'<tr data-site="{site_of(7)}">(.*?)</tr>', page)
    assert row is not None
    numbers = [int(n) for n in re.findall(r'class="num">(\d+)<', row.group(1))]
    assert numbers == [
        len(members),
        sum(not is_offline(i) for i in members),
        sum(is_offline(i) for i in members),
        sum(is_alerting(i) for i in members),
    ]

    second, _ = timed_get(big_fleet, "/?page=2")
    assert shown(second) == [kiosk_id(i) for i in everyone[PAGE : 2 * PAGE]]
    assert 'rel="prev"' in second and 'rel="next"' in second
    last, _ = timed_get(big_fleet, "/?page=999999")  # past the end: the last page
    assert shown(last) == [kiosk_id(i) for i in everyone[-PAGE:]] and 'rel="next"' not in last


def test_filters_search_and_sorts_are_done_over_the_whole_fleet(big_fleet: Any) -> None:
    page, _ = timed_get(big_fleet, "/?state=offline&sort=kiosk")
    offline = sorted(kiosk_id(i) for i in range(N) if is_offline(i))
    assert shown(page) == offline[:PAGE] and f"/ {len(offline)} kiosk" in page
    # The next page keeps the filter and the sort.
    link = re.search(r'rel="next" href="([^"]+)"', page)
    assert link is not None
    nxt, _ = timed_get(big_fleet, link.group(1).replace("&amp;", "&"))
    assert shown(nxt) == offline[PAGE : 2 * PAGE]

    alerting, _ = timed_get(big_fleet, "/?state=alerting&sort=kiosk")
    expected = sorted(kiosk_id(i) for i in range(N) if is_alerting(i))
    assert shown(alerting) == expected[:PAGE] and f"/ {len(expected)} kiosk" in alerting
    assert alerting.count('data-rule="cpu_temp"') == PAGE

    site, _ = timed_get(big_fleet, f"/?site={site_of(123)}")
    assert shown(site) == sorted(kiosk_id(i) for i in range(N) if site_of(i) == site_of(123))

    # Search: a prefix of the id (lower case too), or of the site.
    prefix = kiosk_id(4321)[:-1].lower()
    found, _ = timed_get(big_fleet, f"/?q={prefix}")
    assert shown(found) == sorted(
        kiosk_id(i) for i in range(N) if kiosk_id(i).startswith(prefix.upper())
    )
    assert kiosk_id(4321) in shown(found)
    by_site, _ = timed_get(big_fleet, f"/?q={site_of(5)}&sort=kiosk")
    assert f"/ {sum(site_of(i) == site_of(5) for i in range(N))} kiosk" in by_site
    nothing, _ = timed_get(big_fleet, "/?q=%25")  # a LIKE wildcard is a character here
    assert shown(nothing) == []

    # Sorted by temperature, hottest first, within one version: the seeded temperatures.
    hot, _ = timed_get(big_fleet, f"/?version={version_of(1)}&sort=temp")
    members = [i for i in range(N) if version_of(i) == version_of(1)]
    temps = {i: 40.0 + (i * 7919) % 400 / 10 for i in members}
    order = sorted(members, key=lambda i: (-temps[i], kiosk_id(i)))
    assert shown(hot) == [kiosk_id(i) for i in order[:PAGE]]
    coolest, _ = timed_get(big_fleet, f"/?version={version_of(1)}&sort=temp&dir=desc")
    assert shown(coolest) == [kiosk_id(i) for i in order[::-1][:PAGE]]  # the whole order reversed


# --- queue figures from the kiosks ----------------------------------------------------------


class Listener:
    """A real kiosk's TicketService fed by its FleetClient, as edge/app.py wires it."""

    def __init__(self, kiosk: RealKiosk) -> None:
        from edge.config import ServicesSection
        from edge.services.tickets import TicketService

        self.tickets = TicketService(
            store=kiosk.store,
            outbox=kiosk.outbox,
            kiosk_id=kiosk.kiosk_id,
            settings=ServicesSection(),
        )
        self.documents: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        kiosk.client.listen("res/queue-stats", self.on_queue_stats)

    def on_queue_stats(self, suffix: str, payload: bytes, properties: Any) -> None:
        self.tickets.on_queue_stats(suffix, payload, properties)
        with self.lock:
            self.documents.append(json.loads(payload))

    def areas(self, timeout: float, want: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def check() -> bool:
            with self.lock:
                if self.documents and want(self.documents[-1]["areas"]):
                    found.update(self.documents[-1]["areas"])
                    return True
            return False

        wait_until(check, timeout, "queue figures at the kiosk")
        return found


def call(client: Any, token: str, site: str = "HN-TAYHO", area: str = "B") -> str:
    response = client.post("/queues/call", data={"csrf_token": token, "site": site, "area": area})
    assert response.status_code == 302, response.get_data(as_text=True)
    flashed = client.get("/queues").get_data(as_text=True)
    return flashed


def figures_of(console: Console, site: str = "HN-TAYHO") -> dict[str, Any]:
    from fleet.queues import today

    rows = [f for f in console.store.ticket_figures(today(), site=site) if f["area"] == "B"]
    assert len(rows) <= 1
    return rows[0] if rows else {"issued": 0}


def test_tickets_taken_on_kiosks_move_centrals_figures_and_the_retained_queue_stats(
    store_url: str,
    make_console: Callable[..., Console],
    real_kiosk: Callable[..., RealKiosk],
    sims: Callable[[str], SimKiosk],
) -> None:
    console = make_console(url=store_url)
    one, two = real_kiosk("HN-TAYHO-91"), real_kiosk("HN-TAYHO-92")
    late = sims("HN-TAYHO-93")  # a kiosk of the site with no ticket, subscribing later
    late.telemetry()
    first, second = Listener(one), Listener(two)
    wait_until(
        lambda: (
            {k["kiosk_id"] for k in console.store.kiosks(site="HN-TAYHO")}
            == {"HN-TAYHO-91", "HN-TAYHO-92", "HN-TAYHO-93"}
        ),
        10,
        "the three kiosks seen at their site",
    )
    # Kiosk 91: B-001..B-003 and the priority B-UT001; kiosk 92: its own B-001, B-002.
    for _ in range(3):
        first.tickets.take("B", print_ticket=False)
    first.tickets.take("B", priority="elderly", print_ticket=False)
    for _ in range(2):
        second.tickets.take("B", print_ticket=False)
    wait_until(lambda: figures_of(console)["issued"] == 5, 15, "the ticket records at central")
    figures = figures_of(console)
    assert (figures["priority_issued"], figures["called"], figures["waiting"]) == (1, 0, 6)

    client, _ = login(console)
    page = client.get("/queues").get_data(as_text=True)
    row = page.split('data-site="HN-TAYHO" data-area="B"')[1].split("</tr>")[0]
    assert '<td class="num issued">6</td>' in row and '<td class="num waiting">6</td>' in row
    token = csrf_of(client, "/queues")

    # The counter calls: the priority ticket first, then in the order issued.
    assert "Mời số B-UT001" in call(client, token)
    assert first.areas(10, lambda a: a.get("B", {}).get("priority_serving") == 1)["B"] == {
        "serving": 0,
        "priority_serving": 1,
    }
    assert "Mời số B-001" in call(client, token)
    assert "Mời số B-002" in call(client, token)
    areas = first.areas(10, lambda a: a.get("B", {}).get("serving") == 2)
    assert areas["B"]["priority_serving"] == 1
    assert areas["B"]["avg_service_s"] == figures_of(console)["call_interval_s"] >= 0
    # Kiosk 92's own numbering: none of its tickets called yet.
    assert second.areas(10, lambda a: "B" in a)["B"]["serving"] == 0
    # The kiosk's wait for a new ticket follows: B-004 waits for B-003 only.
    assert first.tickets.take("B", print_ticket=False).waiting_ahead == 1

    assert "Mời số B-003" in call(client, token)
    assert "Mời số B-001" in call(client, token)  # kiosk 92's first
    assert second.areas(10, lambda a: a.get("B", {}).get("serving") == 1)["B"]["serving"] == 1
    wait_until(lambda: figures_of(console)["issued"] == 6, 15, "B-004 at central")
    figures = figures_of(console)
    assert (figures["called"], figures["priority_called"], figures["waiting"]) == (4, 1, 2)

    # A late subscriber of the site (a kiosk after a restart) has its figures retained.
    late.peer.subscribe("kiosk/v1/HN-TAYHO-93/res/queue-stats")
    got = late.peer.wait_for("kiosk/v1/HN-TAYHO-93/res/queue-stats", lambda m: m.retain).json()
    assert_valid(got, "queue-stats")
    assert (got["areas"]["B"]["serving"], got["areas"]["B"]["priority_serving"]) == (0, 0)

    # A typed override, marked as such, holds until the next call.
    response = client.post(
        "/queues",
        data={"csrf_token": token, "site": "HN-TAYHO", "area": "B", "serving": "9"},
    )
    assert response.status_code == 302
    assert second.areas(10, lambda a: a.get("B") == {"serving": 9})
    assert "Mời số B-002" in call(client, token)  # kiosk 92's second
    assert second.areas(10, lambda a: a.get("B", {}).get("serving") == 2)

    # A ticket record delivered twice (an outbox replay) is counted once.
    from fleet.store import Incoming, records

    with console.store.engine.connect() as conn:
        ticket_ids = [
            r.id for r in conn.execute(records.select().where(records.c.kind == "ticket"))
        ]
    stored = {r["id"]: r for r in console.store.records(kiosk_id="HN-TAYHO-92", with_data=True)}
    again = stored[next(i for i in ticket_ids if i.startswith("ticket-HN-TAYHO-92"))]
    console.store.apply(
        [
            Incoming(
                "kiosk/v1/HN-TAYHO-92/records/ticket",
                "HN-TAYHO-92",
                "record",
                {"id": again["id"], "kind": "ticket", "seq": again["seq"], "data": again["data"]},
                time.time(),
                "ticket",
            )
        ]
    )
    assert figures_of(console)["issued"] == 6
    # Everyone called: "call next" says nobody is waiting and changes nothing.
    assert "Mời số B-004" in call(client, token)
    assert "Không còn ai chờ" in call(client, token)
    figures = figures_of(console)
    assert (figures["called"] + figures["priority_called"], figures["waiting"]) == (7, 0)


def test_call_next_refuses_a_bad_area(make_console: Callable[..., Console], tmp_path: Path) -> None:
    console = make_console()
    client, _ = login(console)
    token = csrf_of(client, "/queues")
    bad = client.post("/queues/call", data={"csrf_token": token, "site": "X", "area": "1"})
    assert bad.status_code == 400
    no_token = client.post("/queues/call", data={"site": "X", "area": "B"})
    assert no_token.status_code == 400


def test_the_time_between_calls_is_the_mean_of_the_last_calls_of_the_area(
    store_url: str, tmp_path: Path
) -> None:
    """Priority first, then the order issued across the site's kiosks; the interval published
    as avg_service_s is the mean gap of the last 11 calls, on SQLite and PostgreSQL."""
    from fleet.store import FleetStore, Incoming

    store = FleetStore(store_url, data_key=tmp_path / "data.key").create()
    try:
        day = "2026-12-06"
        batch = []
        for n in range(1, 15):  # two kiosks of one site, issuing in turn; B-UT001 last
            kiosk = f"HN-TAYHO-{n % 2 + 1:02d}"
            seq = (n + 1) // 2
            priority = n == 14
            data = {
                "number": f"B-{'UT' if priority else ''}{seq:03d}",
                "area": "B",
                "area_name": "Tư pháp",
                "day": day,
                "seq": 1 if priority else seq,
                "issued_at": f"2026-12-06T08:{n:02d}:00+07:00",
                "waiting_ahead": None,
                "estimated_wait_min": None,
                "priority": priority,
                **({"priority_group": "elderly"} if priority else {}),
            }
            record_id = f"ticket-{kiosk}-{day}-B{'UT' if priority else ''}-{data['seq']}"
            batch.append(
                Incoming(
                    f"kiosk/v1/{kiosk}/records/ticket",
                    kiosk,
                    "record",
                    {"id": record_id, "kind": "ticket", "data": data},
                    1000.0,
                    "ticket",
                )
            )
        store.apply(batch)
        gaps = [30, 60, 90, 120, 30, 60, 90, 120, 30, 60, 90, 120, 600]
        now, order = 10_000.0, []
        for gap in [0, *gaps]:
            now += gap
            called = store.call_next(day, "HN-TAYHO", "B", by="quay.1", now=now)
            assert called is not None
            order.append((called["kiosk_id"], called["series"], called["seq"]))
        assert store.call_next(day, "HN-TAYHO", "B", by="quay.1", now=now + 1) is None
        assert order[0] == ("HN-TAYHO-01", "UT", 1)
        assert order[1:5] == [
            ("HN-TAYHO-02", "", 1),
            ("HN-TAYHO-01", "", 1),
            ("HN-TAYHO-02", "", 2),
            ("HN-TAYHO-01", "", 2),
        ]
        (figures,) = store.ticket_figures(day, site="HN-TAYHO")
        assert (figures["issued"], figures["priority_issued"], figures["waiting"]) == (13, 1, 0)
        assert figures["call_interval_s"] == round(sum(gaps[-10:]) / 10, 1)
        serving = store.serving_by_kiosk(day, "HN-TAYHO")
        assert serving["HN-TAYHO-01"]["B"] == {"serving": 6, "priority_serving": 1}
        assert serving["HN-TAYHO-02"]["B"] == {"serving": 7}
    finally:
        store.close()
