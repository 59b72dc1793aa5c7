"""Read-only JSON API of the citizen services, for the CLI and the screens (docs/services.md).

Registered by edge/app.py next to the web UI's own blueprints. Only GET routes: nothing here
changes state, so no CSRF token is involved; tickets, checklists and post requests are made
through the screens' own forms (or the CLI, which writes the database itself).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from edge.errors import BadInput
from edge.services.errors import ServiceError

bp = Blueprint("services_api", __name__, url_prefix="/api/services")


def _app() -> Any:
    return current_app.extensions["kiosk"]


@bp.errorhandler(ServiceError)
def service_error(err: ServiceError) -> Any:
    status = (
        503 if err.code == "dossier_unavailable" else 429 if err.code == "rate_limited" else 400
    )
    return jsonify({"error": {**err.as_dict(), "message": err.message_en}}), status


@bp.get("/areas")
def areas() -> Any:
    return jsonify({"areas": _app().tickets.areas()})


@bp.get("/dossier")
def dossier() -> Any:
    code = request.args.get("code", "")
    session = request.args.get("session", "api")[:64]
    return jsonify(_app().dossiers.lookup(code, session_id=session).as_dict())


@bp.get("/guide/search")
def guide_search() -> Any:
    try:
        limit = min(50, max(1, int(request.args.get("limit", 10))))
    except ValueError as err:
        raise BadInput("limit must be a number") from err
    catalog = _app().catalog
    hits = catalog.search(request.args.get("q", "")[:200], limit=limit)
    return jsonify({"version": catalog.version, "hits": [h.as_dict() for h in hits]})


@bp.get("/guide/<procedure_id>")
def guide_show(procedure_id: str) -> Any:
    return jsonify(_app().catalog.get(procedure_id).as_dict())
