"""JSON API of the daemon: health, status, self-test, printer jobs, developer controls."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, abort, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from edge.controls import BUTTON_NAMES
from edge.errors import BadInput, KioskError
from edge.selftest import exit_code
from web_ui.guard import require_caller_proof, wants_json
from web_ui.ports import Kiosk

logger = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api")


def _kiosk() -> Kiosk:
    return current_app.extensions["kiosk"]


@bp.get("/health")
def health() -> Any:
    kiosk = _kiosk()
    body = {"ready": kiosk.ready, "kiosk_id": kiosk.config.kiosk.id}
    return jsonify(body), (200 if kiosk.ready else 503)


@bp.get("/browser")
def browser() -> Any:
    """The kiosk browser's last heartbeat (kiosk-browser.sh can restart a page that stopped)
    and how many button event streams are open (each holds a server thread)."""
    streams = current_app.extensions["kiosk_buttons"].streams()
    return jsonify(
        {**current_app.extensions["kiosk_heartbeat"].as_dict(), "event_streams": streams}
    )


@bp.get("/status")
def status() -> Any:
    return jsonify(_kiosk().status())


@bp.get("/selftest")
def selftest() -> Any:
    print_test = request.args.get("print") in ("1", "true")
    if print_test:  # prints a page: a change, even on GET (the CLI's `kiosk selftest --print`)
        require_caller_proof()
    checks = _kiosk().selftest(print_test=print_test)
    return jsonify({"checks": [c.as_dict() for c in checks], "exit_code": exit_code(checks)})


@bp.get("/printer/jobs")
def print_jobs() -> Any:
    """Titles and states only (no personal data). Reprints are on the technician screen, by a
    named login, or `kiosk print reprint` on the device; never through this open API."""
    status = request.args.get("status")
    if status not in (None, "pending", "printed", "failed"):
        raise BadInput("status must be pending, printed or failed")
    return jsonify({"jobs": _kiosk().printer.jobs(status=status)})


@bp.post("/printer/test")
def printer_test() -> Any:
    outcome = _kiosk().print_test_page()
    return jsonify(outcome.as_dict()), (200 if outcome.printed else 503)


@bp.post("/fleet/test-event")
def fleet_test_event() -> Any:
    from edge.fleet import queue_event

    kiosk = _kiosk()
    message = queue_event(kiosk.outbox, kiosk.config.kiosk.id, "fleet.test", "info", {"by": "api"})
    if kiosk.fleet is not None:
        kiosk.fleet.kick()
    return jsonify({"queued": message.id, "seq": message.seq, "daemon": True})


# --- developer panel (simulation only) ---------------------------------------------------


def _dev_only() -> None:
    if not _kiosk().config.daemon.developer_panel:
        abort(404)


@bp.post("/dev/buttons/<name>/press")
def press(name: str) -> Any:
    _dev_only()
    if name not in BUTTON_NAMES:
        raise BadInput(f"no button named {name!r}")
    kiosk = _kiosk()
    if kiosk.sim_pins is None:
        raise BadInput("buttons are not simulated on this kiosk")
    try:
        hold_s = float(request.args.get("hold", "0.1"))
    except ValueError:
        hold_s = -1.0
    if not 0 <= hold_s <= 30:
        raise BadInput("hold must be between 0 and 30 seconds")
    kiosk.sim_pins.press(name, hold_s=hold_s)
    return jsonify({"pressed": name, "hold_s": hold_s})


@bp.post("/dev/door/<state>")
def door(state: str) -> Any:
    _dev_only()
    if state not in ("open", "closed"):
        raise BadInput("door state must be open or closed")
    kiosk = _kiosk()
    if kiosk.sim_pins is None:
        raise BadInput("the tamper switch is not simulated on this kiosk")
    kiosk.sim_pins.set_door(state)
    return jsonify({"door": state})


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(KioskError)
    def kiosk_error(err: KioskError) -> Any:
        status = 400 if isinstance(err, BadInput) else 503
        if status == 503:
            logger.warning("request failed: %s", err)
        else:  # the code only: the message may repeat what was sent
            logger.info("request refused: %s", err.code, extra={"path": request.path[:80]})
        if not wants_json():
            from flask import render_template

            return render_template("error.html", code="part_down"), status
        return jsonify({"error": {"code": err.code, "message": str(err)}}), status

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Any:
        if wants_json():
            return jsonify(
                {"error": {"code": err.name.lower().replace(" ", "_"), "message": err.description}}
            ), err.code
        return err

    @app.errorhandler(Exception)
    def unexpected(err: Exception) -> Any:
        # The traceback goes to the operator's log only, never into the answer.
        logger.exception("unhandled error in web request", extra={"path": request.path[:80]})
        if not wants_json():
            from flask import render_template

            return render_template("error.html", code="internal"), 500
        return jsonify({"error": {"code": "internal", "message": "internal error"}}), 500
