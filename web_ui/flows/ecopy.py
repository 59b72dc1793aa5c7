"""Flow A, the certified e-copy, as screens: the views parse forms, feed the session
(edge.services.ecopy) camera frames and answers, and render what it says. It ends in one
certification request per original, answered by central's officer (issue 16): the waiting
screen, then the result or, with no answer in time, a request slip."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, cast

import numpy as np
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    request,
    session,
    url_for,
)

import web_ui.helpcalls as helpcalls
from edge.adapters.payment_sim import SimulatedPayment
from edge.fees import format_vnd
from edge.ports.payment import Payment
from edge.services.consent import ConsentStore, Lang
from edge.services.ecopy import (
    FIELD_LABELS,
    MAX_PAGES,
    NO_PAGES,
    EcopySession,
    Message,
    Poll,
    Vision,
)
from edge.services.identify import State, VerificationSession
from edge.services.jobs import Worker
from edge.texts import N_, Text
from web_ui.flows.post import identifying as post_identifying
from web_ui.forms import ContactForm, StaffLoginForm
from web_ui.i18n import current_lang, pick, translate
from web_ui.kiosk import end_flow, guard, kiosk, screen, service_ready
from web_ui.pin import SHARED, PinGate, PinResult
from web_ui.visits import Visit, touch

bp = Blueprint("ecopy", __name__, url_prefix="/a")
STAFF_CALLED = Text(N_("Staff have been called. Please stay at the kiosk."))
STAFF_ANSWERED = Text(N_("A member of staff has answered and is coming to check your card."))
KEY = "ecopy"
P = ParamSpec("P")


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
        chip=getattr(k, "chip_reader", None),
    )
    c = k.config
    fleet = k.fleet
    return EcopySession(
        identity,
        copies=k.copies,
        payment=_payment(),
        bus=k.bus,
        certify=getattr(k, "certify", None),
        wait_s=c.certify.wait_s,
        central_up=(lambda: fleet.connected) if fleet is not None else (lambda: False),
        printer=k.printer,
        a4printer=getattr(k, "a4printer", None),
        print_copy=c.certify.print_copy,
        payments=getattr(k, "payments", None),
        slip_options={
            "site": c.kiosk.site,
            "paper_width_mm": c.printer.paper_width_mm,
            "profile": c.printer.profile,
            "lang": current_lang(),
        },
    )


def _worker() -> Worker:
    """The kiosk's one thread for long work (the pages' OCR, issuing): off the request."""
    return cast(Worker, _shared("kiosk_worker", Worker))


def _payment() -> Payment:
    """Central's bank confirmation when the kiosk reports to central (edge/app.py), else the
    simulation (its button confirms; the developer panel only)."""
    k = kiosk()
    central = getattr(k, "payment", None)
    if central is not None:
        return cast(Payment, central)
    return cast(
        Payment,
        _shared(
            "kiosk_payment",
            lambda: SimulatedPayment(qr=k.copies.payment_qr, payments=getattr(k, "payments", None)),
        ),
    )


def _work() -> EcopySession | None:
    work = session.get(KEY)
    if work is not None:  # the slips follow the language the citizen reads the screen in
        work.slip_options["lang"] = current_lang()
    return work


def _started() -> EcopySession:
    """The citizen's session, made when identification starts."""
    work = _work()
    if work is None:
        work = session[KEY] = _new_work()
    return work


def _frame() -> np.ndarray | None:
    camera = kiosk().camera
    return camera.latest() if camera is not None else None


def _url(step: str) -> str:
    if step == "pages" and post_identifying():  # identified for results by post
        return url_for("post.owner")
    return url_for("home.index") if step == "home" else url_for(f"ecopy.{step}")


def _text(message: Text | Message | None) -> str:
    if isinstance(message, Text):
        return translate(message)
    return pick(*message) if message else ""


def _shown(model: dict[str, Any]) -> dict[str, Any]:
    """A view model from the session with its texts in the citizen's language."""
    return {k: _text(v) if isinstance(v, Text | Message) else v for k, v in model.items()}


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


def _needs(
    *, states: tuple[State, ...] = (), verified: bool = False, read: bool = False
) -> Callable[[Callable[Concatenate[EcopySession, P], Any]], Callable[P, Any]]:
    """The view gets the citizen's session; a citizen without one, or who skipped a step (see
    EcopySession.detour), is sent where they belong instead."""

    def wrap(view: Callable[Concatenate[EcopySession, P], Any]) -> Callable[P, Any]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            work = _work()
            if work is None:
                return redirect(url_for("ecopy.start"))
            if (step := work.detour(states=states, verified=verified, read=read)) is not None:
                return redirect(_url(step))
            return view(work, *args, **kwargs)

        return wrapper

    return wrap


# --- 0. what you need ------------------------------------------------------------------


@bp.get("/")
@guard("ecopy")
def start() -> Any:
    if post_identifying():  # an e-copy now, not the post request given up
        session["post"].pop("identifying", None)
        session.modified = True
    return screen("ecopy/start.html", flow="ecopy", step=1)


# --- 1. identify -----------------------------------------------------------------------


@bp.get("/identify")
@guard("ecopy")
def identify() -> Any:
    work = _started()
    if work.identity.state != State.WAITING_CARD:
        return redirect(_url(work.step()))
    return screen("ecopy/identify.html", flow="ecopy", step=1)


@bp.post("/identify/poll")
@guard("ecopy")
def identify_poll() -> Any:
    work = _started()
    return _answer(work.card(_frame() if work.identity.state == State.WAITING_CARD else None))


# --- 2. consent and face ---------------------------------------------------------------


@bp.get("/consent")
@guard("ecopy")
@_needs(states=(State.CONSENT,))
def consent(work: EcopySession) -> Any:
    blocks = [_text(block) for block in work.consent_text]
    return screen("ecopy/consent.html", flow="ecopy", step=2, blocks=blocks)


@bp.post("/consent/<answer>")
@guard("ecopy")
def give_consent(answer: str) -> Any:
    work = _work()
    if work is None or work.identity.state != State.CONSENT or answer not in ("yes", "no"):
        return redirect(url_for("ecopy.start"))
    shown: Lang = "en" if current_lang() == "en" else "vi"  # the language of the text shown
    return redirect(_url(work.consent(answer == "yes", shown)))


@bp.get("/chip")
@guard("ecopy")
@_needs(states=(State.CHIP,))
def chip(work: EcopySession) -> Any:
    """The card on the reader: its chip's portrait, passively authenticated (docs/chip.md)."""
    return screen("ecopy/chip.html", flow="ecopy", step=2)


@bp.post("/chip/poll")
@guard("ecopy")
def chip_poll() -> Any:
    work = _work()
    if work is None:
        return jsonify(next=url_for("ecopy.start"))
    return _answer(work.chip())


@bp.post("/chip/skip")
@guard("ecopy")
def chip_skip() -> Any:
    work = _work()
    if work is None:
        return redirect(url_for("ecopy.start"))
    return redirect(_url(work.skip_chip()))


@bp.get("/face")
@guard("ecopy")
@_needs(states=(State.FACE, State.LIVENESS))
def face(work: EcopySession) -> Any:
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
@_needs(states=(State.STAFF, State.DECLINED))
def staff(work: EcopySession) -> Any:
    """Face check declined or failed 3 times: staff check the card and confirm with their name
    and PIN. Wrong PINs here count apart from the technician screen's (web_ui/pin.py)."""
    form = StaffLoginForm()
    problem: PinResult | str | None = None
    if form.validate_on_submit():
        result = PinGate(kiosk(), place="prompt").check(form.pin.data, form.name.data or "")
        if result.verdict == "ok":
            work.confirm_by_staff()
            _confirmed_by(result.actor)
            return redirect(_url("pages"))  # or back to results by post
        problem = result
    elif form.is_submitted():
        problem = "form"
    declined = work.identity.state == State.DECLINED
    _keep_alive()  # staff were called (help.requested): the screen waits for them
    call = _staff_call()
    no_photo = work.sides.child_without_portrait  # a child's card: nothing to compare a face to
    return screen(
        "ecopy/staff.html",
        flow="ecopy",
        step=2,
        form=form,
        problem=problem,
        declined=declined,
        chip_problem=work.identity.staff_reason in ("chip_not_authentic", "chip_mismatch"),
        idle_free=True,  # no idle wipe: staff or the citizen's Cancel end it
        no_photo=no_photo,
        answered=call is not None and call.state == "answered",
    )


@bp.post("/staff/poll")
@guard("ecopy")
def staff_poll() -> Any:
    """The staff screen's poll (face tries failed, consent declined, a chip or card staff must
    check): keeps the citizen's session while staff come (no timeout wipes it), until staff
    confirm or the citizen presses Cancel. Once staff answered the call, it says so."""
    work = _work()
    if work is None:
        return jsonify(next=url_for("ecopy.start"))
    if work.identity.state not in (State.STAFF, State.DECLINED) or work.verified:
        return jsonify(next=_url(work.step()))
    _keep_alive()
    call = _staff_call()
    if call is not None and call.state == "answered":
        return jsonify(message=_text(STAFF_ANSWERED), tone="good", answered=True, wait_ms=5000)
    return jsonify(message=_text(STAFF_CALLED), tone="good", wait_ms=3000)


def _staff_call() -> helpcalls.Call | None:
    """The call the identity step opened for this citizen (help.requested)."""
    return _held_call("identity")


def _held_call(source: str) -> helpcalls.Call | None:
    """The call a service opened for this citizen (help.requested on the bus), held by the
    session from its first look (one kiosk screen: the newest open one from that source)."""
    call = helpcalls.session_call()
    if call is None:
        call = helpcalls.desk().claim(source)
        if call is None:  # its help.requested may still be on its way through the bus
            kiosk().bus.drain(timeout=0.5)
            call = helpcalls.desk().claim(source)
        if call is not None:
            session[helpcalls.SESSION_CALL] = call.id
    return call


def _confirmed_by(actor: str) -> None:
    """Staff confirmed the identity: audited under their name; their call is answered."""
    helpcalls.audit(actor, "identity.confirmed")
    call = helpcalls.session_call()
    if call is not None:
        helpcalls.desk().answer(call.id, actor=actor)
    session.pop(helpcalls.SESSION_CALL, None)


# --- 3. pages --------------------------------------------------------------------------


@bp.get("/pages")
@guard("ecopy")
@_needs(verified=True)
def pages(work: EcopySession) -> Any:
    problem = session.pop("ecopy_problem", None)
    return screen(
        "ecopy/pages.html",
        flow="ecopy",
        step=3,
        pages=len(work.pages),
        originals=work.originals(),
        max_pages=MAX_PAGES,
        problem=problem,
    )


@bp.post("/pages/next-original")
@guard("ecopy")
@_needs(verified=True)
def next_original(work: EcopySession) -> Any:
    """ "Thêm bản gốc khác": the next pages are another original (its own request and fee)."""
    if not work.new_original():
        session["ecopy_problem"] = _text(NO_PAGES)
    return redirect(url_for("ecopy.pages"))


@bp.post("/pages/poll")
@guard("ecopy")
def pages_poll() -> Any:
    work = _work()
    if work is None or not work.verified:
        return jsonify(next=url_for("ecopy.start"))
    return _answer(work.feed_page(_frame()))


@bp.post("/pages/capture")
@guard("ecopy")
@_needs(verified=True)
def capture_now(work: EcopySession) -> Any:
    """OK pressed: take the page as it is now (blur or glare only warn)."""
    if (problem := work.capture_page(_frame())) is not None:
        session["ecopy_problem"] = _text(problem)
    return redirect(url_for("ecopy.pages"))


@bp.post("/pages/<int:n>/delete")
@guard("ecopy")
@_needs(verified=True)
def retake(work: EcopySession, n: int) -> Any:
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
@_needs(verified=True)
def read_pages(work: EcopySession) -> Any:
    """ "Xong, đọc các trang": the OCR runs on the kiosk's worker; the progress screen at once."""
    if (problem := work.start_reading(_worker())) is not None:
        session["ecopy_problem"] = _text(problem)
        return redirect(url_for("ecopy.pages"))
    return redirect(url_for("ecopy.working"))


WORKING = {
    "read": N_("Reading page %(n)d of %(total)d…"),
    "issue": N_("Sending your request to the certifying officer…"),
}


@bp.get("/working")
@guard("ecopy")
@_needs(verified=True)
def working(work: EcopySession) -> Any:
    """The progress screen while the worker reads the pages or sends the requests; its poll
    moves on by itself (kiosk.js data-poll)."""
    job = work.job
    if job is None:
        return redirect(_url(work.step()))
    return screen("ecopy/working.html", flow="ecopy", step=4 if job.kind == "read" else 5, job=job)


@bp.post("/working/poll")
@guard("ecopy")
def working_poll() -> Any:
    work = _work()
    if work is None:
        return jsonify(next=url_for("ecopy.start"))
    job = work.job
    if job is None or job.dropped:
        return jsonify(next=_url(work.step()))
    if job.running:
        _keep_alive()  # the kiosk working is not the citizen idling
        n = min(job.done + 1, job.total)
        message = Text(WORKING[job.kind], {"n": n, "total": job.total})
        return jsonify(message=_text(message), tone="good", progress=True, wait_ms=300)
    if job.error is not None:
        return jsonify(next=url_for("ecopy.work_failed"))
    if job.problem is not None:
        session["ecopy_problem"] = _text(job.problem)
    return jsonify(next=_url(job.next or work.step()))


@bp.get("/working/failed")
@guard("ecopy")
def work_failed() -> Any:
    """The background job failed: the same screen as when it ran inside the request."""
    work = _work()
    job = work.job if work is not None else None
    if job is None or job.error is None:
        return redirect(url_for("ecopy.start"))
    return screen("error.html", code=job.error), (503 if job.error == "part_down" else 500)


@bp.get("/review")
@guard("ecopy")
@_needs(verified=True, read=True)
def review(work: EcopySession) -> Any:
    reads = [_shown(read.screen()) for read in work.reads]
    labels = _shown(FIELD_LABELS)
    originals = [[(n, reads[n - 1]) for n in pages] for pages in work.originals() if pages]
    return screen("ecopy/review.html", flow="ecopy", step=4, originals=originals, labels=labels)


# --- 5-7. fee, issue, receipt (issue 5's App.copies) -------------------------------------


@bp.route("/fee", methods=["GET", "POST"])
@guard("ecopy")
@_needs(verified=True, read=True)
def fee(work: EcopySession) -> Any:
    if not service_ready("copies"):
        return screen("unavailable.html", flow="ecopy", step=5), 503
    form = ContactForm()
    if form.validate_on_submit():
        step = work.give_contact(form.contact.data or "", request.form.get("channel", ""))
        # 307 keeps the POST: issue is POST only.
        return redirect(_url(step), code=307 if step == "issue" else 302)
    simulated = kiosk().config.daemon.developer_panel
    return screen(
        "ecopy/fee.html", flow="ecopy", step=5, form=form, simulated=simulated, **work.fee_screen()
    )


@bp.post("/fee/paid")
@guard("ecopy")
@_needs(verified=True)
def paid(work: EcopySession) -> Any:
    """Simulation only: stands for central's payment confirmation."""
    if not kiosk().config.daemon.developer_panel:
        abort(404)
    work.simulate_paid()
    return redirect(url_for("ecopy.fee"))


@bp.post("/fee/poll")
@guard("ecopy")
def fee_poll() -> Any:
    """The fee screen's poll while the payment is awaited: once central (or staff) confirmed
    it, the screen reloads to say so and let the citizen go on."""
    work = _work()
    if work is None or not work.verified:
        return jsonify(next=url_for("ecopy.start"))
    if work.paid:
        return jsonify(next=url_for("ecopy.fee"))
    return jsonify(message=_text(WAITING_PAYMENT), tone="good", wait_ms=2000)


# --- cash at the counter, confirmed by a named staff account ---------------------------

WAITING_PAYMENT = Text(N_("Waiting for the payment to be confirmed…"))
CASH_CALLED = Text(
    N_("Staff have been called. Please pay at the counter, then come back to this kiosk.")
)
CASH_ANSWERED = Text(N_("A member of staff has answered and will confirm your payment here."))
CASH_REASON = "cash_payment"  # the staff call's reason code (help.requested)


@bp.route("/fee/cash", methods=["GET", "POST"])
@guard("ecopy")
@_needs(verified=True, read=True)
def cash(work: EcopySession) -> Any:
    """ "Nộp tiền mặt tại quầy": where to pay; staff are called once; a named staff account
    (not the shared PIN) confirms "Đã thu … tiền mặt" with its PIN, audited under its name.
    No idle wipe while staff come: staff or the citizen's Cancel end it."""
    if work.paid:
        return redirect(url_for("ecopy.fee"))
    fee = work.quote()
    if not fee.payable_vnd:
        return redirect(url_for("ecopy.fee"))
    work.choose_cash()
    held = helpcalls.session_call()
    if held is None or held.reason != CASH_REASON:  # one call, however often the screen shows
        call = helpcalls.desk().call(screen="ecopy.cash", reason=CASH_REASON)
        session[helpcalls.SESSION_CALL] = call.id
    form = StaffLoginForm()
    problem: PinResult | str | None = None
    if form.validate_on_submit():
        name = form.name.data or ""
        if not name or name == SHARED:
            problem = "named"  # the shared PIN is no one's: cash needs a named account
        else:
            result = PinGate(kiosk(), place="prompt").check(form.pin.data or "", name)
            if result.verdict == "ok" and result.actor != SHARED:
                work.confirm_cash(result.actor)
                helpcalls.audit(result.actor, "payment.cash", subject=work.reference)
                answered = helpcalls.session_call()
                if answered is not None:
                    helpcalls.desk().answer(answered.id, actor=result.actor)
                session.pop(helpcalls.SESSION_CALL, None)
                return redirect(url_for("ecopy.fee"))
            problem = result
    elif form.is_submitted():
        problem = "form"
    _keep_alive()
    return screen(
        "ecopy/cash.html",
        flow="ecopy",
        step=5,
        form=form,
        problem=problem,
        amount=format_vnd(fee.payable_vnd),
        reference=work.reference,
        site=kiosk().config.kiosk.site,
        idle_free=True,
    )


@bp.post("/fee/cash/poll")
@guard("ecopy")
def cash_poll() -> Any:
    """The cash screen's poll: keeps the citizen's session while staff come; once the fee is
    paid (staff confirmed, or a transfer arrived meanwhile) back to the fee screen."""
    work = _work()
    if work is None or not work.verified:
        return jsonify(next=url_for("ecopy.start"))
    if work.paid:
        return jsonify(next=url_for("ecopy.fee"))
    _keep_alive()
    call = helpcalls.session_call()
    if call is not None and call.state == "answered":
        return jsonify(message=_text(CASH_ANSWERED), tone="good", progress=True, wait_ms=3000)
    return jsonify(message=_text(CASH_CALLED), tone="good", progress=True, wait_ms=3000)


@bp.post("/issue")
@guard("ecopy")
@_needs(verified=True)
def issue(work: EcopySession) -> Any:
    if not service_ready("copies"):
        return redirect(url_for("ecopy.fee"))
    if work.codes:  # already sent (Back, a second press): the waiting screen
        return redirect(url_for("ecopy.wait"))
    if work.start_issuing(_worker()) is not None:  # the worker is busy
        return screen("error.html", code="part_down"), 503
    return redirect(url_for("ecopy.working"))


# --- 8. waiting for the officer, the result, the request slip ---------------------------


def _keep_alive() -> None:
    touch(cast(Visit, session))


def _requests(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [_shown(r) for r in state["requests"]]


@bp.get("/wait")
def wait() -> Any:
    """ "Đang chờ cán bộ chứng thực…": each original's state, place and expected wait; the page
    reloads itself until every original is answered or the wait is over."""
    work = _work()
    if work is None or not work.codes:
        return redirect(url_for("home.index"))
    state = work.wait_state()
    if state["next"] != "wait":
        return redirect(_url(state["next"]))
    _keep_alive()  # waiting for the officer is not idling
    return screen(
        "ecopy/wait.html",
        flow="ecopy",
        step=6,
        requests=_requests(state),
        left_s=state["left_s"],
        version=_version(state),
    )


@bp.post("/wait/poll")
def wait_poll() -> Any:
    """The waiting screen's poll (kiosk.js): reload when a request's state changed."""
    work = _work()
    if work is None or not work.codes:
        return jsonify(next=url_for("home.index"))
    state = work.wait_state()
    _keep_alive()
    if state["next"] != "wait":
        return jsonify(next=_url(state["next"]))
    message = Text(N_("About %(n)d seconds left to wait"), {"n": state["left_s"]})
    return jsonify(
        message=_text(message),
        tone="good",
        progress=True,  # waiting for the officer is not idling
        wait_ms=2000,
        version=_version(state),
    )


def _version(state: dict[str, Any]) -> str:
    """What the waiting screen shows of the requests, as one short string."""
    return ";".join(
        f"{r['code']}:{r['status']}:{r['position']}:{r['wait_min']}" for r in state["requests"]
    )


@bp.get("/result")
def result() -> Any:
    work = _work()
    if work is None or not work.codes:
        return redirect(url_for("home.index"))
    state = work.wait_state()
    if any(r["status"] == "see_staff" for r in state["requests"]):
        _held_call("certify")  # the officer asked for staff (help.requested from the service)
    staff_waiting = helpcalls.waiting()
    return screen(
        "ecopy/result.html",
        staff_waiting=staff_waiting,
        idle_free=staff_waiting,  # no idle wipe until staff answer or the citizen is done
        flow="ecopy",
        step=6,
        requests=_requests(state),
        printed=work.printer is not None,
        consent=work.consent_given,
        consent_printed=session.pop("consent_printed", None),
        waiting=state["next"] == "wait",
    )


@bp.get("/slip")
def slip() -> Any:
    """No answer in time: the citizen leaves with a printed request slip."""
    work = _work()
    if work is None or not work.codes:
        return redirect(url_for("home.index"))
    printed = work.print_slip()
    state = work.wait_state()
    pending = [
        r for r in _requests(state) if r["status"] not in ("approved", "refused", "see_staff")
    ]
    answered = [r for r in _requests(state) if r not in pending]
    return screen(
        "ecopy/slip.html",
        flow="ecopy",
        step=6,
        pending=pending,
        answered=answered,
        printed=printed,
        pickup=work.pickup,
        consent=work.consent_given,
        consent_printed=session.pop("consent_printed", None),
    )


@bp.get("/done")
def done() -> Any:
    work = _work()
    if work is None or not work.codes:
        return redirect(url_for("home.index"))
    return redirect(url_for("ecopy.result"))


# --- collect later: the request code and the slip's one-time code -----------------------

COLLECT_PROBLEMS = {
    "unknown": N_("The request code or the one-time code is not right."),
    "locked": N_("Too many wrong codes. Please try again later or ask staff."),
    "waiting": N_("The officer has not certified this copy yet. Please come back later."),
    "refused": N_("The officer refused this request. Please ask staff for the reason."),
    "see_staff": N_("Please see the staff about this request."),
}


@bp.route("/collect", methods=["GET", "POST"])
@guard("ecopy")
def collect() -> Any:
    """A citizen back with their slip takes the certified copy at the kiosk."""
    from edge.certify.requests import CollectRefused
    from edge.services.ecopy import print_certified

    k = kiosk()
    requests = getattr(k, "certify", None)  # edge.certify.requests.CertRequests
    if requests is None:
        return screen("unavailable.html", flow="ecopy", step=1), 503
    problem = collected = None
    printed: tuple[bool, bool] | None = None
    if request.method == "POST":
        code = request.form.get("code", "")[:64]
        pickup = request.form.get("pickup", "")[:16]
        try:
            state = requests.collect(code, pickup)
        except CollectRefused as err:
            problem = translate(Text(COLLECT_PROBLEMS.get(err.why, COLLECT_PROBLEMS["unknown"])))
        else:
            c = k.config
            printed = print_certified(
                state,
                requests,
                printer=k.printer,
                a4printer=getattr(k, "a4printer", None),
                options={
                    "site": c.kiosk.site,
                    "paper_width_mm": c.printer.paper_width_mm,
                    "profile": c.printer.profile,
                },
            )
            collected = state
    return screen("ecopy/collect.html", problem=problem, collected=collected, printed=printed)


@bp.post("/consent/print")
def print_consent() -> Any:
    """The citizen may take the record of their consent (Law 91/2025/QH15)."""
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
    back = request.form.get("back", "")
    return redirect(url_for(f"ecopy.{back}" if back in ("result", "slip") else "ecopy.done"))


@bp.post("/finish")
def finish() -> Any:
    end_flow("ecopy")
    return redirect(url_for("home.index"))
