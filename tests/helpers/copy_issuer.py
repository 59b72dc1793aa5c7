"""Child process for the kill -9 test: issues copies forever, printing each step as it passes.

Lines: "step <name> <n>" during the n-th issue of this process, "issued <code>" once committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from edge import config as cfg
from edge.copies.issue import CopyService
from edge.identity.cccd import parse_cccd
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from tests.copies_helpers import CITIZEN_QR, page_image


def main(config_path: Path) -> None:
    config = cfg.load(config_path)
    store = Store(config.storage.db_path)
    store.open()
    key = DataKey.load_or_create(config.storage.data_key_path)
    service = CopyService(config, store=store, key=key, outbox=Outbox(store, key))
    service.open()
    citizen = parse_cccd(CITIZEN_QR)
    page = page_image(1, width=900, height=1270)
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        issued = service.issue(
            [page], citizen, progress=lambda step, n=n: print(f"step {step} {n}", flush=True)
        )
        print(f"issued {issued.code}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
