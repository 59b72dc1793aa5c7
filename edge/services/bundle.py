"""Builds the citizen services from the daemon's config and parts (used by App and the CLI)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from edge.config import Config
from edge.errors import PrinterError
from edge.printing import PrintQueue
from edge.services.catalog import CatalogService
from edge.services.dossier import DossierService
from edge.services.post import PostService
from edge.services.printouts import checklist_slip, post_confirmation_slip, ticket_slip
from edge.services.ratings import RatingService
from edge.services.tickets import TicketService
from edge.store import DataKey, Store
from edge.store.outbox import Outbox


@dataclass
class Services:
    """The services the web UI calls (docs/services.md)."""

    tickets: TicketService
    dossiers: DossierService
    catalog: CatalogService
    post: PostService
    config: Config
    printer: PrintQueue | None
    ratings: RatingService | None = None  # satisfaction counters (docs/fleet.md)

    def print_checklist(self, procedure_id: str):  # -> PrintOutcome
        """Print the papers-to-bring checklist of one procedure (kept for reprint on failure).

        Raises ProcedureNotFound; returns edge.printing.PrintOutcome.
        """
        if self.printer is None:
            raise PrinterError("no printer configured")
        procedure = self.catalog.get(procedure_id)
        c = self.config
        data = checklist_slip(
            procedure,
            site=c.kiosk.site,
            catalog_version=self.catalog.version,
            now=dt.datetime.now(ZoneInfo(c.kiosk.timezone)),
            paper_width_mm=c.printer.paper_width_mm,
            profile=c.printer.profile,
        )
        return self.printer.submit("checklist", f"Giấy tờ cần chuẩn bị: {procedure.id}", data)


def build_services(
    config: Config,
    *,
    store: Store,
    key: DataKey,
    outbox: Outbox,
    printer: PrintQueue | None,
    on_queued: Callable[[], None] | None = None,
    report: Callable[[str, dict[str, Any]], None] | None = None,
) -> Services:
    """Every service wired to the same store, key, outbox and print queue. No I/O here except
    reading the catalog file; the dossier service gets its fleet connection with attach()."""
    c = config
    paper = {"paper_width_mm": c.printer.paper_width_mm, "profile": c.printer.profile}
    tickets = TicketService(
        store=store,
        outbox=outbox,
        kiosk_id=c.kiosk.id,
        settings=c.services,
        timezone=c.kiosk.timezone,
        printer=printer,
        slip=lambda t, lang="vi": ticket_slip(t, site=c.kiosk.site, lang=lang, **paper),
        on_queued=on_queued,
    )
    dossiers = DossierService(
        store=store,
        key=key,
        kiosk_id=c.kiosk.id,
        settings=c.services,
        timezone=c.kiosk.timezone,
        report=report,
    )
    catalog = CatalogService(c.storage.state_dir / "catalog", timezone=c.kiosk.timezone)
    post = PostService(
        store=store,
        key=key,
        outbox=outbox,
        kiosk_id=c.kiosk.id,
        timezone=c.kiosk.timezone,
        printer=printer,
        slip=lambda r, lang="vi": post_confirmation_slip(r, site=c.kiosk.site, lang=lang, **paper),
        on_queued=on_queued,
    )
    ratings = RatingService(store=store, timezone=c.kiosk.timezone)
    return Services(tickets, dossiers, catalog, post, c, printer, ratings)
