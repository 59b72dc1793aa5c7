"""Flow E, verify a copy: scan the QR of a receipt or e-copy -> valid / not valid / revoked,
checked offline with the kiosk's trust store."""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, jsonify, redirect, session, url_for
from flask_babel import gettext as _

from edge.errors import BadInput
from edge.qrkind import ADVICE, HEADLINES, kind_of
from edge.texts import Text
from web_ui.i18n import refusal
from web_ui.kiosk import end_flow, guard, kiosk, scan_qr, screen

logger = logging.getLogger(__name__)
bp = Blueprint("verify", __name__, url_prefix="/e")
KEY = "verdict"
OTHER = "verify_other"  # the kind of a QR that is not a copy's (edge.qrkind)


@bp.get("/")
@guard("verify")
def start() -> Any:
    return screen("verify/scan.html", flow="verify", step=1)


@bp.post("/poll")
@guard("verify")
def poll() -> Any:
    text, waiting = scan_qr(_("No QR code yet. Place the copy's QR code under the camera."))
    if text is None:
        return jsonify(**waiting)
    settings = getattr(kiosk().config, "services", None)
    kind = kind_of(text, ticket_follow_url=getattr(settings, "ticket_follow_url", "") or "")
    if kind != "copy":
        # Say what it is instead (a ticket, a card...): the kind only, never the text, which
        # for a card holds the citizen's name and ID number.
        logger.info("not a copy's QR", extra={"kind": kind})
        session.pop(KEY, None)
        session[OTHER] = kind
        return jsonify(next=url_for("verify.result"))
    try:
        verdict = kiosk().copies.verify_qr(text)
    except BadInput as err:
        return jsonify(message=refusal(err), tone="bad")
    logger.info("copy verified", extra={"verdict": verdict.status})
    session.pop(OTHER, None)
    session[KEY] = verdict
    return jsonify(next=url_for("verify.result"))


@bp.get("/result")
@guard("verify")
def result() -> Any:
    other = session.get(OTHER)
    if other in HEADLINES:
        return screen(
            "verify/other.html",
            flow="verify",
            step=2,
            kind=other,
            headline=Text(HEADLINES[other]),
            advice=Text(ADVICE[other]),
        )
    verdict = session.get(KEY)
    if verdict is None:
        return redirect(url_for("verify.start"))
    tz = ZoneInfo(kiosk().config.kiosk.timezone)
    return screen("verify/result.html", flow="verify", step=2, v=verdict, tz=tz)


@bp.post("/done")
def done() -> Any:
    end_flow("verify")
    return redirect(url_for("home.index"))
