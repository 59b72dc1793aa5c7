"""Child process for the power-cut test: takes tickets in one area until the area reaches a
number, printing each number once its transaction has committed."""

from __future__ import annotations

import sys
from pathlib import Path

from edge.config import ServicesSection
from edge.services.tickets import TicketService
from edge.store import DataKey, Store
from edge.store.outbox import Outbox


def main(state: Path, area: str, until: int) -> None:
    store = Store(state / "kiosk.db")
    store.open()
    outbox = Outbox(store, DataKey.load_or_create(state / "keys" / "data.key"))
    tickets = TicketService(
        store=store, outbox=outbox, kiosk_id="TEST-01", settings=ServicesSection()
    )
    tickets.requeue_unreported()  # what App.start() does after a power cut
    while True:
        ticket = tickets.take(area, print_ticket=False)
        print(ticket.number, flush=True)
        if ticket.seq >= until:
            break
    store.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
