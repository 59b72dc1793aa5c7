"""Flow B, queue ticket: pick a service area -> a number, people ahead, printed slip."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, redirect, session, url_for

from edge.errors import BadInput
from web_ui.i18n import current_lang, refusal
from web_ui.kiosk import end_flow, guard, kiosk, part_ok, screen

logger = logging.getLogger(__name__)
bp = Blueprint("ticket", __name__, url_prefix="/b")
KEY = "ticket"


@bp.get("/")
@guard("ticket")
def start() -> Any:
    areas = kiosk().tickets.areas()
    return screen(
        "ticket/areas.html",
        flow="ticket",
        step=1,
        areas=areas,
        printer_ok=part_ok("printer"),
        problem=session.pop("ticket_problem", None),  # why the last tap gave no number
    )


@bp.post("/take/<area>")
@guard("ticket")
def take(area: str) -> Any:
    if len(area) > 8 or not area.isalnum():
        return redirect(url_for("ticket.start"))
    try:
        ticket = kiosk().tickets.take(area, lang=current_lang())
    except BadInput as err:
        logger.warning("ticket refused: %s", err)
        session["ticket_problem"] = refusal(err)
        return redirect(url_for("ticket.start"))
    printed = ticket.printed
    session[KEY] = {
        "number": ticket.number,
        "area_name": ticket.area_name,
        "waiting_ahead": ticket.waiting_ahead,
        "estimated_wait_min": ticket.estimated_wait_min,
        "printed": bool(printed and printed.printed),
        "print_tried": printed is not None,
    }
    return redirect(url_for("ticket.show"))


@bp.get("/ticket")
@guard("ticket")
def show() -> Any:
    ticket = session.get(KEY)
    if ticket is None:
        return redirect(url_for("ticket.start"))
    return screen("ticket/ticket.html", flow="ticket", step=2, ticket=ticket)


@bp.post("/done")
def done() -> Any:
    end_flow("ticket")
    return redirect(url_for("home.index"))
