"""The technician screen at /technician, behind a staff name and PIN (or the shared technician
PIN): calls for staff and their answer (audited), hardware status and self-test, printer test,
button test, recent events, provisioning state, print jobs and their reprint (audited), spoken
guidance on/off and volume (audited). Never citizens' personal data on the screen.

Roles (edge/store/staff.py): a "staff" account sees the calls, answers them and reprints slips;
only a "technician" account (or the shared technician PIN) reaches the hardware actions and the
speech settings."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, redirect, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

import web_ui.helpcalls as helpcalls
from edge.fleet.certificates import certificate_info
from edge.ports.speech import Language
from edge.printing import JobPurged
from edge.provisioned import STEPS, steps_done
from edge.speech_settings import save as save_speech
from edge.store import staff as audit
from edge.store.staff import SHARED
from web_ui.forms import StaffLoginForm
from web_ui.kiosk import kiosk, screen
from web_ui.pin import PinGate
from web_ui.ports import Kiosk

logger = logging.getLogger(__name__)
bp = Blueprint("technician", __name__, url_prefix="/technician")

SESSION_KEY = "technician_until"
ACTOR_KEY = "technician_actor"  # who signed in: a staff name, or "technician" (shared PIN)
ROLE_KEY = "technician_role"  # "staff" or "technician"
SESSION_S = 600.0
VOLUME_STEP = 10
SPEECH_ACTIONS = ("on", "off", "louder", "quieter", "test")
JOBS_SHOWN = 20
# Event kinds a technician may see; their details never carry personal data (see edge/app.py).
EVENT_FIELDS = ("id", "kind", "source", "at", "severity", "reason", "tries", "action")


def _authorised() -> bool:
    return session.get(SESSION_KEY, 0) > time.time()


def _technician() -> bool:
    """Signed in with the hardware actions: a technician account or the shared PIN."""
    return _authorised() and session.get(ROLE_KEY, "technician") == "technician"


@bp.route("/", methods=["GET", "POST"])
def login() -> Any:
    if _authorised():
        return redirect(url_for("technician.panel"))
    form = StaffLoginForm()
    k = kiosk()
    gate = PinGate(k)
    result = None
    if form.validate_on_submit():
        result = gate.check(form.pin.data, form.name.data or "")
        if result.verdict == "ok":
            session[SESSION_KEY] = time.time() + SESSION_S
            session[ACTOR_KEY] = result.actor
            session[ROLE_KEY] = result.role
            with k.store.transaction() as conn:
                audit.record(conn, at=time.time(), actor=result.actor, action="technician.login")
            return redirect(url_for("technician.panel"))
    # Each account has its own lock (web_ui/pin.py): the form stays for the others.
    locked_s = result.locked_s if result is not None and result.verdict == "locked" else 0.0
    return screen(
        "technician/login.html",
        form=form,
        result=result,
        locked_s=locked_s,
        shared_locked_s=gate.locked_for() if not locked_s else 0.0,
        available=gate.available(),
    )


@bp.get("/panel")
def panel() -> Any:
    if not _authorised():
        return redirect(url_for("technician.login"))
    k = kiosk()
    status = k.status()
    events = [
        {f: e.get(f) for f in EVENT_FIELDS if e.get(f) is not None}
        for e in status.pop("recent_events", [])
    ]
    return screen(
        "technician/panel.html",
        status=status,
        events=events,
        checks=session.pop("technician_checks", None),
        notice=session.pop("technician_notice", None),
        provisioning=_provisioning(k),
        buttons=current_app.extensions["kiosk_buttons"].recent(),
        actor=_actor(),
        shared=_actor() == SHARED,
        technician=_technician(),
        calls=[
            {**c, "where": screen_label(c["screen"]), "why": reason_label(c["reason"])}
            for c in helpcalls.desk().calls()
        ],
        answered=session.pop("technician_answered", None),
        jobs=_jobs(k),
        keep_personal_min=k.config.printer.keep_personal_min,
        reprint=session.pop("technician_reprint", None),
        speech=k.speech.status() if k.speech and _technician() else None,
    )


@bp.get("/calls")
def calls() -> Any:
    """The open calls' ids, for the panel's check for new calls (signed-in only)."""
    if not _authorised():
        return {"error": {"code": "unauthorised", "message": "sign in first"}}, 403
    return {"open": [c["id"] for c in helpcalls.desk().calls() if c["state"] == "open"]}


@bp.post("/calls/<call_id>/answer")
def answer_call(call_id: str) -> Any:
    """A member of staff takes the call: audited under the signed-in name; the citizen's
    waiting screen says staff are coming and moves on; central gets help.answered."""
    if not _authorised():
        return redirect(url_for("technician.login"))
    actor = _actor()
    call = helpcalls.desk().answer(call_id, actor=actor)
    if call is not None:
        helpcalls.audit(actor, "help.answered", subject=call.id, kind=call.reason)
        logger.info("staff call answered", extra={"reason": call.reason, "screen": call.screen})
    session["technician_answered"] = "answered" if call is not None else "gone"
    return redirect(url_for("technician.panel"))


@bp.post("/speech")
def speech() -> Any:
    """Spoken guidance on/off, volume up/down (kept over the config's, edge/speech_settings.py;
    audited), or a test sentence."""
    if not _technician():  # hardware actions: technician role only
        return redirect(url_for("technician.login"))
    k = kiosk()
    action = request.form.get("action", "")
    if k.speech is None or k.store is None or action not in SPEECH_ACTIONS:
        abort(400)
    if action == "test":
        lang: Language = "en" if str(get_locale()) == "en" else "vi"
        k.speech.say(
            _("This is the kiosk's voice. Volume %(v)d.", v=k.speech.status().volume), lang
        )
        return redirect(url_for("technician.panel"))
    now = k.speech.status()
    enabled = {"on": True, "off": False}.get(action, now.enabled)
    step = {"louder": VOLUME_STEP, "quieter": -VOLUME_STEP}.get(action, 0)
    volume = max(0, min(100, now.volume + step))
    with k.store.transaction() as conn:
        save_speech(conn, k.config.speech, enabled=enabled, volume=volume)
        audit.record(
            conn,
            at=time.time(),
            actor=_actor(),
            action="technician.speech",
            subject=f"enabled={int(enabled)} volume={volume}",
        )
    k.speech.configure(enabled=enabled, volume=volume)
    logger.info("speech set from the technician screen", extra={"on": enabled, "volume": volume})
    return redirect(url_for("technician.panel"))


@bp.post("/jobs/<job_id>/reprint")
def reprint(job_id: str) -> Any:
    """Print a kept slip again, audited under the signed-in name. A slip with personal data
    needs a named login (not the shared PIN), and is kept only minutes after it printed."""
    if not _authorised():
        return redirect(url_for("technician.login"))
    k = kiosk()
    actor = _actor()
    job = k.printer.job(job_id)
    if job is None:
        answer = {"state": "unknown"}
    elif job["personal"] and actor == SHARED:
        logger.info("reprint refused: personal slip, shared PIN", extra={"job": job_id})
        answer = {"state": "named"}
    else:
        try:
            outcome = k.printer.reprint(job_id, actor=actor)
        except JobPurged:
            logger.info("reprint refused: slip no longer kept", extra={"job": job_id})
            answer = {"state": "purged"}
        else:
            answer = {"state": "printed" if outcome.printed else "failed"}
            answer["error"] = outcome.error or ""
    session["technician_reprint"] = {"title": job["title"] if job else "", **answer}
    return redirect(url_for("technician.panel"))


@bp.post("/selftest")
def selftest() -> Any:
    if not _technician():  # hardware actions: technician role only
        return redirect(url_for("technician.login" if not _authorised() else "technician.panel"))
    checks = kiosk().selftest(print_test=False)
    session["technician_checks"] = [c.as_dict() for c in checks]
    logger.info("self-test run from the technician screen")
    return redirect(url_for("technician.panel"))


@bp.post("/print-test")
def print_test() -> Any:
    if not _technician():  # hardware actions: technician role only
        return redirect(url_for("technician.login" if not _authorised() else "technician.panel"))
    outcome = kiosk().print_test_page()
    session["technician_notice"] = {"printed": outcome.printed, "error": outcome.error or ""}
    return redirect(url_for("technician.panel"))


@bp.post("/lock")
def lock() -> Any:
    """Out of service while the technician works on the kiosk (central sees it in `state`)."""
    if not _technician():  # hardware actions: technician role only
        return redirect(url_for("technician.login" if not _authorised() else "technician.panel"))
    kiosk().set_locked(True)
    return redirect(url_for("technician.panel"))


@bp.post("/unlock")
def unlock() -> Any:
    if not _technician():  # hardware actions: technician role only
        return redirect(url_for("technician.login" if not _authorised() else "technician.panel"))
    kiosk().set_locked(False)
    return redirect(url_for("technician.panel"))


@bp.post("/logout")
def logout() -> Any:
    session.pop(SESSION_KEY, None)
    session.pop(ACTOR_KEY, None)
    session.pop(ROLE_KEY, None)
    return redirect(url_for("home.index"))


def _actor() -> str:
    return session.get(ACTOR_KEY) or SHARED


def _jobs(k: Any) -> list[dict[str, Any]]:
    """The latest print jobs: title (never personal data), state, whether it can be reprinted."""
    tz = ZoneInfo(k.config.kiosk.timezone)
    jobs = k.printer.jobs(limit=JOBS_SHOWN)
    for job in jobs:
        job["when"] = dt.datetime.fromtimestamp(job["created_at"], tz).strftime("%H:%M %d/%m")
    return jobs


def _provisioning(k: Kiosk) -> dict[str, Any]:
    """What a technician needs to know about this kiosk's identity, never a secret."""
    c = k.config
    m = c.mqtt
    state: dict[str, Any] = {
        "kiosk_id": c.kiosk.id,
        "site": c.kiosk.site,
        "location": c.kiosk.location,
        "mqtt": m.type,
        "broker": f"{m.host}:{m.port}" if m.type == "broker" else "",
        "certificate": bool(m.cert_file and m.cert_file.exists()),
        "ca": bool(m.ca_file and m.ca_file.exists()),
        "technician_pin": bool(c.ui.technician_pin_hash),
    }
    try:  # issue 9's provisioning record: which steps are done, the certificate's expiry
        done = steps_done(c.storage.state_dir)
        state["steps_done"] = done
        state["next_step"] = next((s for s in STEPS if s not in done), None)
        if m.cert_file:
            info = certificate_info(m.cert_file) or {}
            state["certificate_days_left"] = info.get("days_left")
            if info.get("warning"):
                state["certificate_warning"] = info["warning"]
    except Exception as err:  # an unreadable record must not hide the rest of the screen
        state["provisioning"] = f"unknown ({type(err).__name__})"
    return state


# What the panel says for a call's screen and reason code (the codes stay in the events).
SCREEN_LABELS = {
    "ecopy.staff": _l("Certified e-copy: identity check"),
    "ecopy.result": _l("Certified e-copy: the officer's answer"),
    "home.help_screen": _l("Help screen"),
}
REASON_LABELS = {
    "help_button": _l("pressed “Call staff”"),
    "long_press": _l("held Cancel"),
    "consent_declined": _l("declined the face check"),
    "no_portrait": _l("card without a photo"),
    "face_failures": _l("face check failed"),
    "chip_not_authentic": _l("chip not genuine"),
    "chip_mismatch": _l("chip does not match the card"),
    "see_staff": _l("the officer asks to see staff"),
}


def screen_label(endpoint: str) -> str:
    return str(SCREEN_LABELS[endpoint]) if endpoint in SCREEN_LABELS else endpoint


def reason_label(reason: str) -> str:
    return str(REASON_LABELS[reason]) if reason in REASON_LABELS else reason
