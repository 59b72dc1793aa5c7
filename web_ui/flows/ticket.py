"""Flow B, queue ticket: pick a service area -> a number, people ahead, printed slip."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, redirect, request, session, url_for

from edge.errors import BadInput
from edge.services.tickets import TicketService
from web_ui.i18n import current_lang, refusal
from web_ui.kiosk import end_flow, guard, kiosk, part_ok, screen

logger = logging.getLogger(__name__)
bp = Blueprint("ticket", __name__, url_prefix="/b")
KEY = "ticket"
PRIORITY = "ticket_priority"  # the group the citizen tapped, until the number is taken


def _tickets() -> TicketService:
    tickets = kiosk().tickets
    if tickets is None:  # guard("ticket") lets no view run without it
        raise RuntimeError("the ticket service is not running")
    return tickets


@bp.get("/")
@guard("ticket")
def start() -> Any:
    tickets = _tickets()
    areas = tickets.areas()
    groups = {g["code"]: g["label"] for g in tickets.priority_groups()}
    chosen = session.get(PRIORITY)
    return screen(
        "ticket/areas.html",
        flow="ticket",
        step=1,
        areas=areas,
        printer_ok=part_ok("printer"),
        problem=session.pop("ticket_problem", None),  # why the last tap gave no number
        priority_offered=bool(groups),
        priority=groups.get(chosen) if chosen else None,
    )


@bp.get("/priority")
@guard("ticket")
def priority() -> Any:
    """Priority tickets: the citizen says with one tap which group they belong to."""
    groups = _tickets().priority_groups()
    if not groups:
        return redirect(url_for("ticket.start"))
    return screen("ticket/priority.html", flow="ticket", step=1, groups=groups)


@bp.post("/priority")
@guard("ticket")
def choose_priority() -> Any:
    group = request.form.get("group", "")
    if group == "none":
        session.pop(PRIORITY, None)
    elif group in {g["code"] for g in _tickets().priority_groups()}:
        session[PRIORITY] = group
    return redirect(url_for("ticket.start"))


@bp.post("/take/<area>")
@guard("ticket")
def take(area: str) -> Any:
    if len(area) > 8 or not area.isalnum():
        return redirect(url_for("ticket.start"))
    try:
        ticket = _tickets().take(area, priority=session.get(PRIORITY), lang=current_lang())
    except BadInput as err:
        logger.warning("ticket refused: %s", err)
        session["ticket_problem"] = refusal(err)
        return redirect(url_for("ticket.start"))
    printed = ticket.printed
    session.pop(PRIORITY, None)
    session[KEY] = {
        "number": ticket.number,
        "priority": ticket.priority_label,
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
