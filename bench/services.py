"""Citizen-service figures (issue 7): procedure search latency and queue ticket issue latency."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench.registry import figure

SEARCHES = 200  # queries per sample, from the quality table of tests/test_catalog.py
TICKETS = 200  # tickets per sample, each a committed transaction + its outbox record


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def _search_times() -> list[float]:
    from edge.services.catalog import BUNDLED_CATALOG, Catalog
    from tests.test_catalog import SEARCH_TABLE

    catalog = Catalog.from_file(BUNDLED_CATALOG)
    queries = [q for q, _ in SEARCH_TABLE]
    times = []
    for i in range(SEARCHES):
        started = time.perf_counter()
        catalog.search(queries[i % len(queries)])
        times.append((time.perf_counter() - started) * 1000)
    return times


def _ticket_times() -> list[float]:
    from edge.config import ServicesSection
    from edge.services.tickets import TicketService
    from edge.store import DataKey, Store
    from edge.store.outbox import Outbox

    with tempfile.TemporaryDirectory(prefix="bench-tickets-") as tmp:
        root = Path(tmp)
        store = Store(root / "kiosk.db")
        store.open()
        try:
            outbox = Outbox(store, DataKey.load_or_create(root / "keys" / "data.key"))
            tickets = TicketService(
                store=store, outbox=outbox, kiosk_id="BENCH-01", settings=ServicesSection()
            )
            times = []
            for _ in range(TICKETS):
                started = time.perf_counter()
                tickets.take("A", print_ticket=False)
                times.append((time.perf_counter() - started) * 1000)
            return times
        finally:
            store.close()


@figure(f"catalog search, median of {SEARCHES} queries", unit="ms")
def search_median() -> float:
    return statistics.median(_search_times())


@figure(f"catalog search, p95 of {SEARCHES} queries", unit="ms")
def search_p95() -> float:
    return _percentile(_search_times(), 0.95)


@figure(f"ticket issue (commit + outbox record), median of {TICKETS}", unit="ms")
def ticket_median() -> float:
    return statistics.median(_ticket_times())


@figure(f"ticket issue (commit + outbox record), p95 of {TICKETS}", unit="ms")
def ticket_p95() -> float:
    return _percentile(_ticket_times(), 0.95)
