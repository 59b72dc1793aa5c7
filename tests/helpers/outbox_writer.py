"""Child process for the power-cut test: adds outbox records forever, printing each committed id."""

from __future__ import annotations

import sys
from pathlib import Path

from edge.store import DataKey, Store
from edge.store.outbox import Outbox


def main(state: Path) -> None:
    store = Store(state / "kiosk.db")
    store.open()
    outbox = Outbox(store, DataKey.load_or_create(state / "keys" / "data.key"))
    n = 0
    while True:
        n += 1
        # Big enough that a kill often lands inside a write, not between two.
        message = outbox.add("record", "records/copy", {"n": n, "pad": "x" * 4000})
        print(message.id, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
