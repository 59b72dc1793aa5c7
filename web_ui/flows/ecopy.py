"""Flow A, the certified e-copy: identify (CCCD QR) -> consent and face with liveness -> scan the
pages -> review what was read -> fee and payment -> issue -> receipt."""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from typing import Any

import cv2
import numpy as np
import segno
from flask import Blueprint, Response, abort, current_app, jsonify, redirect, session, url_for

from edge.errors import KioskError
from edge.events import Event
from edge.identity.card import CardError, read_card
from edge.services.consent import CONSENT_TEXT, PURPOSE_FACE, ConsentStore
from edge.services.identify import State, VerificationSession
from edge.vision.page import PageCapture, PageRejected, scan
from web_ui.forms import ContactForm, PinForm
from web_ui.i18n import pick
from web_ui.kiosk import end_flow, guard, kiosk, screen, service, service_ready
from web_ui.pin import PinGate
from web_ui.visits import touch

logger = logging.getLogger(__name__)
bp = Blueprint("ecopy", __name__, url_prefix="/a")

MAX_PAGES = 20
CHALLENGES_EN = {
    "Vui lòng chớp mắt": "Please blink",
    "Vui lòng quay đầu sang trái": "Please turn your head to your left",
    "Vui lòng quay đầu sang phải": "Please turn your head to your right",
}
KEY = "ecopy"


class Work:
    """One citizen's e-copy in progress. close() drops face data, card data and pages."""

    def __init__(self, identity: VerificationSession) -> None:
        self.identity = identity
        self.staff_verified = False
        self.capture = PageCapture()
        self.pages: list[Any] = []  # ScannedPage, upright once read
        self.reads: list[dict[str, Any]] = []  # per page: doc type, fields, name check, QR
        self.issued: dict[str, Any] | None = None
        self.paid = False
        self.contact = ""
        self.reference = secrets.token_hex(4).upper()  # payment reference, no personal data
        self.lock = threading.Lock()  # one poll at a time per citizen
        self.last_frame_id = 0

    @property
    def verified(self) -> bool:
        return self.identity.state == State.VERIFIED or self.staff_verified

    def close(self) -> None:
        self.identity.close()
        self.pages.clear()
        self.reads.clear()
        self.capture.reset()


class Vision:
    """Models shared by every session, loaded once on first use."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self._verifier: Any = None
        self._lock = threading.Lock()

    @property
    def verifier(self) -> Any:
        with self._lock:
            if self._verifier is None:
                from edge.vision.face import FaceVerifier

                self._verifier = FaceVerifier(models_dir=self.config.models.dir)
            return self._verifier


def _vision() -> Vision:
    ext = current_app.extensions
    if "kiosk_vision" not in ext:
        ext["kiosk_vision"] = Vision(kiosk().config)
    return ext["kiosk_vision"]


def _new_work() -> Work:
    from edge.vision.liveness import new_challenge

    k = kiosk()
    identity = VerificationSession(
        consents=ConsentStore(k.store, k.key, kiosk_id=k.config.kiosk.id),
        verifier=_vision().verifier,
        new_challenge=functools.partial(
            new_challenge, time_limit_s=k.config.ui.liveness_time_limit_s
        ),
        bus=k.bus,
    )
    return Work(identity)


def _work(*, create: bool = False) -> Work | None:
    work = session.get(KEY)
    if work is None and create:
        work = session[KEY] = _new_work()
    return work


def _frame() -> np.ndarray | None:
    camera = kiosk().camera
    return camera.latest() if camera is not None else None


def _quad(points: Any, size: tuple[int, int]) -> list[list[float]]:
    if points is None:
        return []
    w, h = size
    return [[round(float(x) / w, 4), round(float(y) / h, 4)] for x, y in points]


def _need(work: Work | None, *, verified: bool = False) -> Any:
    """Where to send a citizen who skipped a step (a bookmark, the Back button)."""
    if work is None:
        return redirect(url_for("ecopy.start"))
    if verified and not work.verified:
        return redirect(url_for("ecopy.identify"))
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
        return redirect(_after_identity(work))
    return screen("ecopy/identify.html", flow="ecopy", step=1)


def _after_identity(work: Work) -> str:
    state = work.identity.state
    if work.staff_verified or state == State.VERIFIED:
        return url_for("ecopy.pages")
    return {
        State.WAITING_CARD: url_for("ecopy.identify"),
        State.CONSENT: url_for("ecopy.consent"),
        State.FACE: url_for("ecopy.face"),
        State.LIVENESS: url_for("ecopy.face"),
        State.STAFF: url_for("ecopy.staff"),
        State.DECLINED: url_for("ecopy.staff"),
    }.get(state, url_for("home.index"))


@bp.post("/identify/poll")
@guard("ecopy")
def identify_poll() -> Any:
    work = _work(create=True)
    if work.identity.state != State.WAITING_CARD:
        return jsonify(next=_after_identity(work))
    frame = _frame()
    if frame is None:
        return jsonify(message=pick("Đang chờ hình ảnh từ camera…", "Waiting for the camera…"))
    from edge.vision.face import find_faces

    with work.lock:
        size = (frame.shape[1], frame.shape[0])
        try:
            reading = read_card(frame, find_face=find_faces)
        except CardError as err:
            return jsonify(message=pick(err.message_vi, str(err)), tone="bad")
        step = work.identity.card_read(reading)
    if step.state == State.CONSENT:
        logger.info("card read for an e-copy")
        touch(session)
        return jsonify(next=url_for("ecopy.consent"))
    return jsonify(  # the card's portrait could not be used
        message=pick(
            step.detail or step.message_vi,
            "The photo on the card is not clear. Lay the whole card flat inside the frame.",
        ),
        quad=_quad(reading.card_quad, size),
        tone="bad",
    )


# --- 2. consent and face ---------------------------------------------------------------


@bp.get("/consent")
@guard("ecopy")
def consent() -> Any:
    work = _work()
    if work is None or work.identity.state != State.CONSENT:
        return redirect(_after_identity(work) if work else url_for("ecopy.start"))
    texts = CONSENT_TEXT[PURPOSE_FACE]
    return screen("ecopy/consent.html", flow="ecopy", step=2, text=pick(texts["vi"], texts["en"]))


@bp.post("/consent/<answer>")
@guard("ecopy")
def give_consent(answer: str) -> Any:
    work = _work()
    if work is None or work.identity.state != State.CONSENT or answer not in ("yes", "no"):
        return redirect(url_for("ecopy.start"))
    step = work.identity.give_consent(answer == "yes")
    logger.info("face consent %s", "given" if answer == "yes" else "declined")
    return redirect(_after_identity(work) if step.state != State.FACE else url_for("ecopy.face"))


@bp.get("/face")
@guard("ecopy")
def face() -> Any:
    work = _work()
    if work is None or work.identity.state not in (State.FACE, State.LIVENESS):
        return redirect(_after_identity(work) if work else url_for("ecopy.start"))
    return screen("ecopy/face.html", flow="ecopy", step=2, tries=work.identity.max_tries)


@bp.post("/face/poll")
@guard("ecopy")
def face_poll() -> Any:
    work = _work()
    if work is None:
        return jsonify(next=url_for("ecopy.start"))
    identity = work.identity
    if identity.state not in (State.FACE, State.LIVENESS):
        return jsonify(next=_after_identity(work))
    frame = _frame()
    if frame is None:
        return jsonify(message=pick("Đang chờ hình ảnh từ camera…", "Waiting for the camera…"))
    from edge.vision.face import find_faces

    with work.lock:
        step = identity.tick()
        if step.state == State.EXPIRED:
            return jsonify(next=url_for("ecopy.expired"))
        face_quad: list[list[float]] = []
        if identity.state == State.FACE:
            faces = find_faces(frame)
            if not faces:  # nobody in front yet: not a failed try
                return jsonify(
                    message=pick(
                        "Vui lòng nhìn thẳng vào camera.", "Please look straight at the camera."
                    ),
                    wait_ms=300,
                )
            x, y, w, h = faces[0]
            size = (frame.shape[1], frame.shape[0])
            face_quad = _quad([(x, y), (x + w, y), (x + w, y + h), (x, y + h)], size)
            step = identity.submit_face(frame)
        else:
            step = identity.liveness_frame(frame, time.monotonic())
    if step.state == State.VERIFIED:
        logger.info("citizen verified for an e-copy")
        return jsonify(next=url_for("ecopy.pages"))
    if step.state == State.STAFF:
        return jsonify(next=url_for("ecopy.staff"))
    if step.state == State.LIVENESS:
        return jsonify(
            message=pick(step.challenge_vi or "", CHALLENGES_EN.get(step.challenge_vi or "", "")),
            quad=face_quad,  # where the face was found, drawn over the preview
            tone="good",
            progress=True,
            wait_ms=60,
        )
    # A failed try: back to FACE with fewer tries left.
    message = pick(
        f"Chưa xác minh được. Vui lòng thử lại (còn {step.tries_left} lần).",
        f"Not verified yet. Please try again ({step.tries_left} tries left).",
    )
    return jsonify(message=message, quad=face_quad, tone="bad", wait_ms=1500)


@bp.get("/expired")
def expired() -> Any:
    end_flow("ecopy")
    return screen("ecopy/expired.html")


@bp.route("/staff", methods=["GET", "POST"])
@guard("ecopy")
def staff() -> Any:
    """Face check declined or failed 3 times: staff check the card and confirm with their PIN."""
    work = _work()
    if work is None or work.identity.state not in (State.STAFF, State.DECLINED):
        return redirect(_after_identity(work) if work else url_for("ecopy.start"))
    form = PinForm()
    problem = None
    if form.validate_on_submit():
        result = PinGate(kiosk()).check(form.pin.data)
        if result.verdict == "ok":
            work.staff_verified = True
            kiosk().bus.post(Event("identity.staff_verified", "identity", {"severity": "info"}))
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
    frame = _frame()
    if frame is None:
        return jsonify(message=pick("Đang chờ hình ảnh từ camera…", "Waiting for the camera…"))
    if len(work.pages) >= MAX_PAGES:
        return jsonify(
            message=pick("Đã đủ số trang tối đa.", "Maximum number of pages reached."),
            pages=len(work.pages),
        )
    with work.lock:
        state = work.capture.feed(frame)
        check = state.check
        size = tuple(check.frame_size) if check.frame_size[0] else (frame.shape[1], frame.shape[0])
        quad = _quad(check.quad, size)
        if state.capture:
            try:
                work.pages.append(scan(frame, check=check))
            except PageRejected as err:
                return jsonify(message=pick(err.message_vi, str(err)), tone="bad", quad=quad)
            touch(session)
            logger.info("page captured", extra={"pages": len(work.pages)})
    tone = {"hold_still": "good", "capture": "good", "captured": "good"}.get(state.status, "bad")
    return jsonify(
        message=pick(state.message_vi, state.message_en),
        tone=tone,
        quad=quad,
        pages=len(work.pages),
        progress=state.status in ("hold_still", "capture"),
    )


@bp.post("/pages/capture")
@guard("ecopy")
def capture_now() -> Any:
    """OK pressed: take the page as it is now (blur or glare only warn)."""
    work = _work()
    if (r := _need(work, verified=True)) is not None:
        return r
    frame = _frame()
    with work.lock:
        try:
            if frame is None:
                raise KioskError("no camera frame")
            if len(work.pages) < MAX_PAGES:
                work.pages.append(work.capture.capture(frame))
        except PageRejected as err:
            session["ecopy_problem"] = pick(err.message_vi, str(err))
        except KioskError:
            session["ecopy_problem"] = pick(
                "Camera chưa sẵn sàng. Vui lòng thử lại.", "The camera is not ready. Try again."
            )
    return redirect(url_for("ecopy.pages"))


@bp.post("/pages/<int:n>/delete")
@guard("ecopy")
def retake(n: int) -> Any:
    work = _work()
    if (r := _need(work, verified=True)) is not None:
        return r
    with work.lock:
        if 1 <= n <= len(work.pages):
            del work.pages[n - 1]
            work.reads = []
            work.capture.reset()
    return redirect(url_for("ecopy.pages"))


@bp.get("/pages/<int:n>.jpg")
def page_image(n: int) -> Any:
    work = _work()
    if work is None or not 1 <= n <= len(work.pages):
        abort(404)
    image = work.pages[n - 1].image
    h, w = image.shape[:2]
    small = cv2.resize(image, (round(w * 300 / h), 300), interpolation=cv2.INTER_AREA)
    _, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 75])
    return Response(data.tobytes(), mimetype="image/jpeg", headers={"Cache-Control": "no-store"})


# --- 4. read and check -----------------------------------------------------------------


@bp.post("/pages/done")
@guard("ecopy")
def read_pages() -> Any:
    work = _work()
    if (r := _need(work, verified=True)) is not None:
        return r
    if not work.pages:
        session["ecopy_problem"] = pick(
            "Vui lòng đặt ít nhất một trang giấy tờ.", "Please place at least one page."
        )
        return redirect(url_for("ecopy.pages"))
    from edge.documents.doctype import check_name, recognise
    from edge.vision.ocr import shared_ocr

    card = work.identity.card
    with work.lock:
        reads = []
        for i, page in enumerate(work.pages):
            upright, reading = shared_ocr().read_page(page)
            work.pages[i] = upright
            found = recognise(reading.text, lines=reading.lines, page_size_mm=upright.size_mm)
            name = check_name(found, card.name, text=reading.text) if card is not None else None
            reads.append(
                {
                    "label": pick(found.label_vi, found.label_en),
                    "doc_type": found.doc_type,
                    "fields": found.fields,
                    "name_check": name.result if name else "not_found",
                    "name_message": pick(name.message_vi, name.message_en) if name else "",
                    "qr": [code.text for code in upright.qr],
                    "confidence": round(reading.mean_confidence),
                }
            )
        work.reads = reads
    logger.info("pages read", extra={"pages": len(reads)})
    return redirect(url_for("ecopy.review"))


FIELD_LABELS = {
    "name": ("Họ và tên", "Full name"),
    "date_of_birth": ("Ngày sinh", "Date of birth"),
    "number": ("Số", "Number"),
    "issuer": ("Nơi cấp", "Issued by"),
    "issue_date": ("Ngày cấp", "Issue date"),
    "mother_name": ("Họ tên mẹ", "Mother's name"),
    "father_name": ("Họ tên cha", "Father's name"),
    "spouse_name": ("Họ tên vợ/chồng", "Spouse's name"),
}


@bp.get("/review")
@guard("ecopy")
def review() -> Any:
    work = _work()
    if (r := _need(work, verified=True)) is not None:
        return r
    if not work.reads or len(work.reads) != len(work.pages):
        return redirect(url_for("ecopy.pages"))
    labels = {k: pick(*v) for k, v in FIELD_LABELS.items()}
    return screen("ecopy/review.html", flow="ecopy", step=4, reads=work.reads, labels=labels)


# --- 5-7. fee, issue, receipt (issue 5's App.copies) -------------------------------------


def _copies() -> Any:
    return service("copies") if service_ready("copies") else None


@bp.route("/fee", methods=["GET", "POST"])
@guard("ecopy")
def fee() -> Any:
    work = _work()
    if (r := _need(work, verified=True)) is not None:
        return r
    if not work.reads or len(work.reads) != len(work.pages):
        return redirect(url_for("ecopy.pages"))
    copies = _copies()
    if copies is None:
        return screen("unavailable.html", flow="ecopy", step=5), 503
    quote = copies.quote(len(work.pages))
    form = ContactForm()
    if form.validate_on_submit():
        work.contact = form.contact.data or ""
        if quote.payable_vnd and not work.paid:
            return redirect(url_for("ecopy.fee"))
        return redirect(url_for("ecopy.issue"), code=307)
    payment = copies.payment_qr(quote, work.reference) if quote.payable_vnd else None
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
    work.paid = True
    logger.info("payment confirmed (simulation)")
    return redirect(url_for("ecopy.fee"))


@bp.post("/issue")
@guard("ecopy")
def issue() -> Any:
    work = _work()
    if (r := _need(work, verified=True)) is not None:
        return r
    copies = _copies()
    if copies is None or not work.pages or len(work.reads) != len(work.pages):
        return redirect(url_for("ecopy.fee"))
    with work.lock:
        if work.issued is None:
            quote = copies.quote(len(work.pages))
            if quote.payable_vnd and not work.paid:
                return redirect(url_for("ecopy.fee"))
            contact = work.contact
            delivery = None
            if contact:
                delivery = {"email": contact} if "@" in contact else {"ewallet": contact}
            try:
                copy = copies.issue(work.pages, work.identity.card, delivery=delivery)
            except KioskError as err:
                logger.error("copy not issued: %s", err)
                return screen("error.html", code="part_down"), 503
            printed = False
            try:
                outcome = copies.print_receipt(copy.code)
                printed = bool(outcome.printed)
            except KioskError as err:
                logger.warning("receipt not printed: %s", err)
            work.issued = {
                "code": copy.code,
                "pages": copy.pages,
                "fee": pick(copy.fee.label_vi, _fee_en(copy.fee.payable_vnd)),
                "printed": printed,
                "delivered": bool(work.contact),
            }
            work.pages.clear()  # the copy is signed and stored sealed; the scans go
    return redirect(url_for("ecopy.done"))


def _fee_en(amount: int) -> str:
    return "Free" if amount == 0 else f"{amount:,} VND"


@bp.get("/done")
def done() -> Any:
    work = _work()
    if work is None or work.issued is None:
        return redirect(url_for("home.index"))
    return screen(
        "ecopy/done.html",
        flow="ecopy",
        step=6,
        issued=work.issued,
        consent=work.identity.consent is not None,
        consent_printed=session.pop("consent_printed", None),
    )


@bp.post("/consent/print")
def print_consent() -> Any:
    """The citizen may take the record of their consent (Decree 13/2023/ND-CP)."""
    work = _work()
    if work is None or work.identity.consent is None:
        return redirect(url_for("home.index"))
    k = kiosk()
    consents = ConsentStore(k.store, k.key, kiosk_id=k.config.kiosk.id)
    data = consents.slip(
        work.identity.consent,
        paper_width_mm=k.config.printer.paper_width_mm,
        profile=k.config.printer.profile,
        timezone=k.config.kiosk.timezone,
    )
    outcome = k.printer.submit("consent", "Xác nhận đồng ý", data)
    session["consent_printed"] = "ok" if outcome.printed else "failed"
    return redirect(url_for("ecopy.done"))


@bp.post("/finish")
def finish() -> Any:
    end_flow("ecopy")
    return redirect(url_for("home.index"))
