"""E-copy figures (issue 5): issue a 3-page copy (render + sign + store), verify it, a receipt."""

from __future__ import annotations

import atexit
import datetime as dt
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from bench.registry import BenchError, figure

INNER = 3  # timed calls per sample; the sample is their median


def _ms(call: Callable[[], object], inner: int = INNER) -> float:
    times = []
    for _ in range(inner):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@cache
def _kiosk() -> tuple[Any, Any, list[Any]]:
    """A copy service on a throwaway state dir (development CA), three A4 pages at 200 dpi."""
    from edge import config as cfg
    from edge.copies.issue import CopyService
    from edge.identity.cccd import parse_cccd
    from edge.store import DataKey, Store
    from edge.store.outbox import Outbox
    from tests.copies_helpers import CITIZEN_QR, page_image, write_config

    root = Path(tempfile.mkdtemp(prefix="bench-copies-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    config = cfg.load(write_config(root))
    config.storage.state_dir.mkdir(parents=True, mode=0o700)
    key = DataKey.load_or_create(config.storage.data_key_path)
    store = Store(config.storage.db_path)
    store.open()
    atexit.register(store.close)
    service = CopyService(config, store=store, key=key, outbox=Outbox(store, key))
    service.open()
    citizen = parse_cccd(CITIZEN_QR, today=dt.date(2026, 1, 1))
    pages = [page_image(n) for n in (1, 2, 3)]
    service.issue(pages, citizen)  # fonts and signer loaded once, as in the daemon
    return service, citizen, pages


@figure("e-copy issue, 3 A4 pages (render + sign + store)", unit="ms", below=1000.0)
def copy_issue() -> float:
    service, citizen, pages = _kiosk()
    return _ms(lambda: service.issue(pages, citizen))


@figure("e-copy verify (PDF signature, chain, QR, page hash)", unit="ms")
def copy_verify() -> float:
    service, citizen, pages = _kiosk()
    issued = service.issue(pages, citizen)

    def verify() -> None:
        if service.verify_pdf(issued.pdf).status != "valid":
            raise BenchError("the bench copy did not verify")

    return _ms(verify, inner=5)


@figure("e-copy receipt render, 80 mm ESC/POS", unit="ms")
def copy_receipt() -> float:
    service = _kiosk()[0]
    code = service.list(limit=1)[0].code
    return _ms(lambda: service.receipt(code), inner=5)
