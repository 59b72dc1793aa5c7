"""The start screen (the menu of services), language, help, cancel and the idle timeout."""

from __future__ import annotations

import logging
import unicodedata
from typing import Any, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

import web_ui.helpcalls as helpcalls
from web_ui.guard import wants_json
from web_ui.i18n import LANGUAGES
from web_ui.kiosk import FLOWS, SCREEN_BLUEPRINTS, flow_state, kiosk, out_of_service, screen
from web_ui.visits import KEEP_ON_FLOW_END, Visit, touch, wipe

logger = logging.getLogger(__name__)
bp = Blueprint("home", __name__)


@bp.get("/")
def index() -> Any:
    if kiosk().locked:
        return out_of_service("locked", None)
    # Back at the start means the flow in progress is abandoned: what it held goes now.
    helpcalls.cancel_session_call()
    if any(k not in KEEP_ON_FLOW_END for k in session):
        wipe(session, keep=KEEP_ON_FLOW_END)
        session.modified = True
    tiles = [(flow, flow_state(flow)[0]) for flow in FLOWS.values()]
    fresh = "lang" not in session or session["lang"] == kiosk().config.ui.default_language
    return screen("home.html", tiles=tiles, idle_free=fresh)


@bp.post("/lang")
def language() -> Any:
    lang = request.form.get("lang", "")
    if lang in LANGUAGES:
        session["lang"] = lang
    return redirect(known_screen(request.form.get("back", "")) or url_for("home.index"))


def known_screen(target: str) -> str | None:
    """The URL of the screen `target` names, built by the app itself; None for anything that is
    not a plain path to one of the screens (another host, a scheme, control characters)."""
    if not target.startswith("/") or len(target) > 200:
        return None
    if any(c == "\\" or unicodedata.category(c)[0] in "CZ" for c in target):
        return None  # browsers drop tabs and newlines and read a backslash as /: "/\t/x" is "//x"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.query or parts.fragment or target.startswith("//"):
        return None
    adapter = current_app.url_map.bind("localhost")
    try:
        endpoint, args = adapter.match(parts.path, method="GET")
    except HTTPException:  # not found, not a GET screen, or a redirect to add a slash
        return None
    if endpoint.partition(".")[0] not in SCREEN_BLUEPRINTS:
        return None
    return url_for(endpoint, **args)


def _help_back() -> str:
    """Where Help's "Quay lại" goes: the screen the citizen came from (its session is kept, so
    the flow resumes there), or the start."""
    return known_screen(session.get(helpcalls.LAST_SCREEN, "")) or url_for("home.index")


def _screen_of(path: str) -> str:
    """The endpoint (body data-screen) of a screen's path; the help screen's own if none."""
    try:
        endpoint, _args = current_app.url_map.bind("localhost").match(path, method="GET")
    except HTTPException:
        return "home.help_screen"
    return endpoint if endpoint != "home.index" else "home.help_screen"


@bp.get("/help")
def help_screen() -> Any:
    call = helpcalls.session_call()
    return screen(
        "help.html",
        called=call is not None,
        back=_help_back(),
        idle_free=call is not None and call.state == "open",  # no idle wipe while staff come
    )


@bp.post("/help")
def call_staff() -> Any:
    """ "Gọi nhân viên" (or holding Cancel 5 s, reason long_press): one call per waiting
    citizen, so a reload or a second press posts no second help.requested."""
    if not helpcalls.waiting():
        reason = request.form.get("reason", "")
        back = _help_back()
        call = helpcalls.desk().call(
            screen=_screen_of(back),
            reason=reason if reason in helpcalls.REASONS else "help_button",
        )
        session[helpcalls.SESSION_CALL] = call.id
        session.modified = True
        logger.info("citizen asked for staff", extra={"reason": call.reason})
    return redirect(url_for("home.help_screen"))


@bp.post("/help/poll")
def help_poll() -> Any:
    """The help screen's poll while staff are called: keeps the session (no wipe while staff
    come); once staff answered, says so, then goes back to where the citizen was."""
    call = helpcalls.session_call()
    if call is None:
        return jsonify(next=url_for("home.help_screen"))
    touch(cast(Visit, session))
    if call.state == "open":
        message = _("Staff have been called. Please stay at the kiosk.")
        return jsonify(message=message, tone="good", wait_ms=3000)
    if not call.told:
        call.told = True
        message = _("A member of staff has answered and is coming to you.")
        return jsonify(message=message, tone="good", answered=True, wait_ms=4000)
    if call.source == "ui":  # a service's call stays with its screen (it shows the answer)
        session.pop(helpcalls.SESSION_CALL, None)
    return jsonify(next=_help_back())


@bp.post("/help/cancel")
def cancel_call() -> Any:
    """The citizen no longer waits for staff: the call closes (help.cancelled)."""
    helpcalls.cancel_session_call()
    return redirect(url_for("home.help_screen"))


@bp.post("/cancel")
def cancel() -> Any:
    helpcalls.cancel_session_call()
    wipe(session, keep=KEEP_ON_FLOW_END)
    session.modified = True
    logger.info("flow cancelled by the citizen")
    return redirect(url_for("home.index"))


@bp.post("/timeout")
def timeout() -> Any:
    """The idle countdown ran out: everything goes, the language too (a new citizen comes)."""
    helpcalls.cancel_session_call()
    wipe(session, keep=("csrf_token",))
    session.modified = True
    logger.info("idle timeout: session wiped")
    return redirect(url_for("home.index"))


def register_error_pages(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(err: CSRFError) -> Any:
        logger.warning("form refused: %s", err.description)
        if wants_json():
            return {"error": {"code": "csrf", "message": err.description}}, 400
        return render_template("error.html", code="csrf"), 400

    @app.errorhandler(404)
    def not_found(err: HTTPException) -> Any:
        if wants_json():
            return {"error": {"code": "not_found", "message": err.description}}, 404
        return render_template("error.html", code="not_found"), 404

    @app.errorhandler(405)
    def not_allowed(err: HTTPException) -> Any:
        if wants_json():
            return {"error": {"code": "method_not_allowed", "message": err.description}}, 405
        return render_template("error.html", code="not_found"), 405

    @app.errorhandler(413)
    def too_large(err: HTTPException) -> Any:
        logger.warning("request too large", extra={"path": request.path[:80]})
        if wants_json():
            return {"error": {"code": "too_large", "message": err.description}}, 413
        return render_template("error.html", code="too_large"), 413
