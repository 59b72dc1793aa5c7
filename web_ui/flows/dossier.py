"""Flow C, dossier status: type the code or scan the QR of the dossier receipt -> status and
timeline from central; offline, the last known status with its age."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify, redirect, session, url_for
from flask_babel import gettext as _

from edge.errors import BadInput
from web_ui.forms import DossierForm
from web_ui.i18n import refusal
from web_ui.kiosk import end_flow, guard, kiosk, part_ok, scan_qr, screen

logger = logging.getLogger(__name__)
bp = Blueprint("dossier", __name__, url_prefix="/c")
KEY = "dossier"


def _lookup(text: str) -> str | None:
    """Ask the service; keep the answer in the session; None or the citizen's message."""
    try:
        status = kiosk().dossiers.lookup(text, session_id=session.sid)
    except BadInput as err:  # bad code, too many tries, no answer and nothing cached
        logger.info("dossier lookup refused: %s", getattr(err, "code", "bad_input"))
        return refusal(err)
    session[KEY] = status
    return None


@bp.route("/", methods=["GET", "POST"])
@guard("dossier")
def start() -> Any:
    form = DossierForm()
    problem = None
    if form.validate_on_submit():
        problem = _lookup(form.code.data)
        if problem is None:
            return redirect(url_for("dossier.status"))
    return screen(
        "dossier/code.html",
        flow="dossier",
        step=1,
        form=form,
        problem=problem,
        camera=part_ok("camera"),
    )


@bp.get("/scan")
@guard("dossier")
def scan() -> Any:
    return screen("dossier/scan.html", flow="dossier", step=1)


@bp.post("/scan/poll")
@guard("dossier")
def scan_poll() -> Any:
    text, waiting = scan_qr(_("No QR code yet. Place the dossier receipt under the camera."))
    if text is None:
        return jsonify(**waiting)
    problem = _lookup(text)
    if problem is None:
        return jsonify(next=url_for("dossier.status"))
    return jsonify(message=problem, tone="bad", wait_ms=2000)


@bp.get("/status")
@guard("dossier")
def status() -> Any:
    found = session.get(KEY)
    if found is None:
        return redirect(url_for("dossier.start"))
    return screen("dossier/status.html", flow="dossier", step=2, s=found)


@bp.post("/done")
def done() -> Any:
    end_flow("dossier")
    return redirect(url_for("home.index"))
