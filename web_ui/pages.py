"""The developer panel (simulation only)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template

bp = Blueprint("pages", __name__)


@bp.get("/dev")
def developer_panel() -> str:
    kiosk = current_app.extensions["kiosk"]
    if not kiosk.config.daemon.developer_panel:
        abort(404)
    return render_template("dev.html", kiosk_id=kiosk.config.kiosk.id)
