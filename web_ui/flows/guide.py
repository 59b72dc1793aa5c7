"""Flow D, procedure guide: accent-insensitive search -> papers, fee, time; print a checklist."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, redirect, session, url_for

from edge.errors import BadInput, PrinterError
from web_ui.forms import SearchForm
from web_ui.kiosk import end_flow, guard, kiosk, screen

logger = logging.getLogger(__name__)
bp = Blueprint("guide", __name__, url_prefix="/d")


@bp.route("/", methods=["GET", "POST"])
@guard("guide")
def start() -> Any:
    form = SearchForm()
    hits = None
    if form.validate_on_submit():
        hits = [h.procedure for h in kiosk().catalog.search(form.q.data, limit=8)]
        logger.info("procedure search", extra={"hits": len(hits)})
    service = kiosk().catalog
    fields = service.catalog.fields() if hits is None and service is not None else []
    return screen("guide/search.html", flow="guide", step=1, form=form, hits=hits, fields=fields)


@bp.get("/f/<int:index>")
@guard("guide")
def field(index: int) -> Any:
    """Browse by field (lĩnh vực): the procedures of the index-th field, referrals last."""
    service = kiosk().catalog
    if service is None:
        abort(404)
    catalog = service.catalog
    fields = catalog.fields()
    if not 0 <= index < len(fields):
        abort(404)
    return screen(
        "guide/field.html",
        flow="guide",
        step=1,
        field_name=fields[index],
        procedures=catalog.in_field(fields[index]),
    )


@bp.get("/p/<procedure_id>")
@guard("guide")
def procedure(procedure_id: str) -> Any:
    if len(procedure_id) > 64:
        abort(404)
    try:
        found = kiosk().catalog.get(procedure_id)
    except BadInput:
        abort(404)
    printed = session.pop("guide_printed", None)
    return screen("guide/procedure.html", flow="guide", step=2, p=found, printed=printed)


@bp.post("/p/<procedure_id>/print")
@guard("guide")
def print_checklist(procedure_id: str) -> Any:
    try:
        found = kiosk().catalog.get(procedure_id[:64])
        outcome = kiosk().services.print_checklist(found.id)  # edge.services.bundle.Services
    except PrinterError as err:
        logger.warning("checklist not printed: %s", err)
        session["guide_printed"] = "failed"
        return redirect(url_for("guide.procedure", procedure_id=procedure_id[:64]))
    except BadInput:
        abort(404)
    session["guide_printed"] = "ok" if outcome.printed else "failed"
    return redirect(url_for("guide.procedure", procedure_id=found.id))


@bp.post("/done")
def done() -> Any:
    end_flow("guide")
    return redirect(url_for("home.index"))
