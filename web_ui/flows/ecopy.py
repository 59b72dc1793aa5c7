"""Flow A, the certified e-copy, as screens: the views parse forms, feed the session
(edge.services.ecopy) camera frames and answers, and render what it says."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
import segno
from flask import Blueprint, Response, abort, current_app, jsonify, redirect, session, url_for
from flask_babel import lazy_gettext as _l

from edge.adapters.payment_sim import SimulatedPayment
from edge.errors import KioskError
from edge.services.consent import CONSENT_TEXT, PURPOSE_FACE, ConsentStore
from edge.services.ecopy import MAX_PAGES, EcopySession, Message, Poll, Vision
from edge.services.identify import State, VerificationSession
from edge.texts import Text
from web_ui.forms import ContactForm, PinForm
from web_ui.i18n import pick, translate
from web_ui.kiosk import end_flow, guard, kiosk, screen, service_ready
from web_ui.pin import PinGate
from web_ui.visits import touch

bp = Blueprint("ecopy", __name__, url_prefix="/a")
KEY = "ecopy"
FIELD_LABELS = {
    "name": _l("Full name"),
    "date_of_birth": _l("Date of birth"),
    "number": _l("Number"),
    "issuer": _l("Issued by"),
    "issue_date": _l("Issue date"),
    "mother_name": _l("Mother's name"),
    "father_name": _l("Father's name"),
    "spouse_name": _l("Spouse's name"),
}


def _shared(name: str, make: Any) -> Any:
    """One per app, made on first use: the face models, the payment adapter."""
    ext = current_app.extensions
    if name not in ext:
        ext[name] = make()
    return ext[name]


def _new_work() -> EcopySession:
    from edge.vision.liveness import new_challenge

    k = kiosk()
    vision = _shared("kiosk_vision", lambda: Vision(k.config))
    identity = VerificationSession(
        consents=ConsentStore(k.store, k.key, kiosk_id=k.config.kiosk.id),
        verifier=vision.verifier,
        new_challenge=functools.partial(
            new_challenge, time_limit_s=k.config.ui.liveness_time_limit_s
        ),
        bus=k.bus,
    )
    return EcopySession(identity, copies=k.copies, payment=_payment(), bus=k.bus)


def _payment() -> SimulatedPayment:
    # Central's payment confirmation is not built yet: the QR is real, paying is simulated.
    return _shared("kiosk_payment", lambda: SimulatedPayment(qr=kiosk().copies.payment_qr))


def _work(*, create: bool = False) -> EcopySession | None:
    work = session.get(KEY)
    if work is None and create:
        work = session[KEY] = _new_work()
    return work


def _frame() -> np.ndarray | None:
    camera = kiosk().camera
    return camera.latest() if camera is not None else None


def _url(step: str) -> str:
    return url_for("home.index") if step == "home" else url_for(f"ecopy.{step}")


def _text(message: Text | Message | None) -> str:
    if isinstance(message, Text):
        return translate(message)
    return pick(*message) if message else ""


def _answer(poll: Poll) -> Response:
    """A poll's answer as the screen's script reads it: only what was said."""
    if poll.touch:
        touch(session)
    out = {k: v for k, v in dataclasses.asdict(poll).items() if v is not None}
    out.pop("touch")
    if poll.next is not None:
        out["next"] = _url(poll.next)
    if poll.message is not None:
        out["message"] = _text(poll.message)
    return jsonify(**out)


def _need(work: EcopySession | None, *, verified: bool = False) -> Any:
    """Where to send a citizen who skipped a step (a bookmark, the Back button)."""
    if work is None:
        return redirect(url_for("ecopy.start"))
    if verified and not work.verified:
        return redirect(url_for("ecopy.identify"))
    return None


def _identifying(work: EcopySession | None, *states: State) -> Any:
    """Send a citizen whose identification is not at one of states where it is."""
    if work is None:
        return redirect(url_for("ecopy.start"))
    if work.identity.state not in states:
        return redirect(_url(work.step()))
    return None


# --- 0. what you need ------------------------------------------------------------------


@bp.get("/")
@guard("ecopy")
def start() -> Any:
    return screen("ecopy/start.html", flow="ecopy", step=1)


# --- 1. identify -----------------------------------------------------------------------


@bp.get("/identify")
@guard("ecopy")
def identify() -> Any:
    work = _work(create=True)
    if work.identity.state != State.WAITING_CARD:
        return redirect(_url(work.step()))
    return screen("ecopy/identify.html", flow="ecopy", step=1)


@bp.post("/identify/poll")
@guard("ecopy")
def identify_poll() -> Any:
    work = _work(create=True)
    return _answer(work.card(_frame() if work.identity.state == State.WAITING_CARD else None))


# --- 2. consent and face ---------------------------------------------------------------


@bp.get("/consent")
@guard("ecopy")
def consent() -> Any:
    if (r := _identifying(_work(), State.CONSENT)) is not None:
        return r
    texts = CONSENT_TEXT[PURPOSE_FACE]
    return screen("ecopy/consent.html", flow="ecopy", step=2, text=pick(texts["vi"], texts["en"]))


@bp.post("/consent/<answer>")
@guard("ecopy")
def give_consent(answer: str) -> Any:
    work = _work()
    if work is None or work.identity.state != State.CONSENT or answer not in ("yes", "no"):
        return redirect(url_for("ecopy.start"))
    return redirect(_url(work.consent(answer == "yes")))


@bp.get("/face")
@guard("ecopy")
def face() -> Any:
    work = _work()
    if (r := _identifying(work, State.FACE, State.LIVENESS)) is not None:
        return r
    return screen("ecopy/face.html", flow="ecopy", step=2, tries=work.identity.max_tries)


@bp.post("/face/poll")
@guard("ecopy")
def face_poll() -> Any:
    work = _work()
    if work is None:
        return jsonify(next=url_for("ecopy.start"))
    looking = work.identity.state in (State.FACE, State.LIVENESS)
    return _answer(work.face(_frame() if looking else None))


@bp.get("/expired")
def expired() -> Any:
    end_flow("ecopy")
    return screen("ecopy/expired.html")


@bp.route("/staff", methods=["GET", "POST"])
@guard("ecopy")
def staff() -> Any:
    """Face check declined or failed 3 times: staff check the card and confirm with their PIN."""
    work = _work()
    if (r := _identifying(work, State.STAFF, State.DECLINED)) is not None:
        return r
    form = PinForm()
    problem = None
    if form.validate_on_submit():
        result = PinGate(kiosk()).check(form.pin.data)
        if result.verdict == "ok":
            work.confirm_by_staff()
            return redirect(url_for("ecopy.pages"))
        problem = result
    elif form.is_submitted():
        problem = "form"
    declined = work.identity.state == State.DECLINED
    return screen(
        "ecopy/staff.html", flow="ecopy", step=2, form=form, problem=problem, declined=declined
    )


# --- 3. pages --------------------------------------------------------------------------


@bp.get("/pages")
@guard("ecopy")
def pages() -> Any:
    work = _work()
    if (r := _need(work, verified=True)) is not None:
        return r
    problem = session.pop("ecopy_problem", None)
    return screen(
        "ecopy/pages.html",
        flow="ecopy",
        step=3,
        pages=len(work.pages),
        max_pages=MAX_PAGES,
        problem=problem,
    )


@bp.post("/pages/poll")
@guard("ecopy")
def pages_poll() -> Any:
    work = _work()
    if work is None or not work.verified:
        return jsonify(next=url_for("ecopy.start"))
    return _answer(work.feed_page(_frame()))


@bp.post("/pages/capture")
@guard("ecopy")
def capture_now() -> Any:
    """OK pressed: take the page as it is now (blur or glare only warn)."""
    work = _work()
    if (r := _need(work, verified=True)) is not None:
        return r
    if (problem := work.capture_page(_frame())) is not None:
        session["ecopy_problem"] = _text(problem)
    return redirect(url_for("ecopy.pages"))


@bp.post("/pages/<int:n>/delete")
@guard("ecopy")
def retake(n: int) -> Any:
    work = _work()
    if (r := _need(work, verified=True)) is not None:
        return r
    work.remove_page(n)
    return redirect(url_for("ecopy.pages"))


@bp.get("/pages/<int:n>.jpg")
def page_image(n: int) -> Any:
    work = _work()
    data = work.thumbnail(n) if work is not None else None
    if data is None:
        abort(404)
    return Response(data, mimetype="image/jpeg", headers={"Cache-Control": "no-store"})


# --- 4. read and check -----------------------------------------------------------------


@bp.post("/pages/done")
@guard("ecopy")
def read_pages() -> Any:
    work = _work()
    if (r := _need(work, verified=True)) is not None:
        return r
    if (problem := work.read_pages()) is not None:
        session["ecopy_problem"] = _text(problem)
        return redirect(url_for("ecopy.pages"))
    return redirect(url_for("ecopy.review"))


@bp.get("/review")
@guard("ecopy")
def review() -> Any:
    work = _work()
    if (r := _need(work, verified=True)) is not None:
        return r
    if not work.read_done:
        return redirect(url_for("ecopy.pages"))
    reads = [
        dataclasses.asdict(read)
        | {"label": _text(read.label), "name_message": _text(read.name_message)}
        for read in work.reads
    ]
    labels = {k: str(v) for k, v in FIELD_LABELS.items()}
    return screen("ecopy/review.html", flow="ecopy", step=4, reads=reads, labels=labels)


# --- 5-7. fee, issue, receipt (issue 5's App.copies) -------------------------------------


@bp.route("/fee", methods=["GET", "POST"])
@guard("ecopy")
def fee() -> Any:
    work = _work()
    if (r := _need(work, verified=True)) is not None:
        return r
    if not work.read_done:
        return redirect(url_for("ecopy.pages"))
    if not service_ready("copies"):
        return screen("unavailable.html", flow="ecopy", step=5), 503
    quote = work.quote()
    form = ContactForm()
    if form.validate_on_submit():
        work.contact = form.contact.data or ""
        if not work.may_issue(quote):
            return redirect(url_for("ecopy.fee"))
        return redirect(url_for("ecopy.issue"), code=307)
    payment = work.payment_request(quote)
    qr_image = segno.make(payment, error="m").svg_data_uri(scale=5) if payment else None
    return screen(
        "ecopy/fee.html",
        flow="ecopy",
        step=5,
        quote=quote,
        pages=len(work.pages),
        qr_image=qr_image,
        paid=work.paid,
        form=form,
        simulated=kiosk().config.daemon.developer_panel,
    )


@bp.post("/fee/paid")
@guard("ecopy")
def paid() -> Any:
    """Simulation only: stands for central's payment confirmation."""
    work = _work()
    if (r := _need(work, verified=True)) is not None:
        return r
    if not kiosk().config.daemon.developer_panel:
        abort(404)
    _payment().confirm(work.reference)
    return redirect(url_for("ecopy.fee"))


@bp.post("/issue")
@guard("ecopy")
def issue() -> Any:
    work = _work()
    if (r := _need(work, verified=True)) is not None:
        return r
    if not service_ready("copies"):
        return redirect(url_for("ecopy.fee"))
    try:
        return redirect(_url(work.issue()))
    except KioskError:
        return screen("error.html", code="part_down"), 503


@bp.get("/done")
def done() -> Any:
    work = _work()
    if work is None or work.issued is None:
        return redirect(url_for("home.index"))
    issued = dataclasses.asdict(work.issued) | {"fee": _text(work.issued.fee_label)}
    return screen(
        "ecopy/done.html",
        flow="ecopy",
        step=6,
        issued=issued,
        consent=work.consent_given,
        consent_printed=session.pop("consent_printed", None),
    )


@bp.post("/consent/print")
def print_consent() -> Any:
    """The citizen may take the record of their consent (Decree 13/2023/ND-CP)."""
    work = _work()
    if work is None or not work.consent_given:
        return redirect(url_for("home.index"))
    k = kiosk()
    printed = work.print_consent(
        k.printer,
        paper_width_mm=k.config.printer.paper_width_mm,
        profile=k.config.printer.profile,
        timezone=k.config.kiosk.timezone,
    )
    session["consent_printed"] = "ok" if printed else "failed"
    return redirect(url_for("ecopy.done"))


@bp.post("/finish")
def finish() -> Any:
    end_flow("ecopy")
    return redirect(url_for("home.index"))
