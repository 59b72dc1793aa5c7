"""Flow A, the certified e-copy, as one citizen's session: identify → consent → face → pages
(grouped into originals) → read → quote → pay → one certification request per original →
wait for central's officer → receipt, refusal, staff, or a request slip; no web framework, the
UI feeds it frames and answers. The kiosk never signs the copy itself (issue 16)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import cv2
import numpy as np
import segno

from edge.errors import KioskError
from edge.events import Event, EventBus
from edge.fees import Fee
from edge.identity.card import CardError, CardSides, read_side
from edge.ports.payment import Payment
from edge.services.consent import PURPOSE_ECOPY, Lang, consent_text
from edge.services.identify import (
    CHILD_CARD,
    MESSAGES,
    NO_PORTRAIT,
    State,
    VerificationSession,
)
from edge.services.jobs import Job, Worker
from edge.texts import N_, Text
from edge.vision.checks import capture_quality
from edge.vision.page import PageCapture, PageRejected, scan

logger = logging.getLogger(__name__)

MAX_PAGES = 20


class Message(NamedTuple):
    """A citizen-facing text in both languages; the UI picks one. Texts not yet in the
    catalog only: the others are edge.texts.Text, which the UI translates."""

    vi: str
    en: str


NO_FRAME = Text(N_("Waiting for the camera…"))
NO_CAMERA = Text(N_("The camera is not ready. Try again."))
LOOK_AT_CAMERA = Text(N_("Please look straight at the camera."))
# A face was compared and did not match (or the liveness challenge failed): the reason first.
FAILED_TRY = N_("%(reason)s Not verified yet: %(n)d tries left.")
# Which side of the card to show next (a 2024 card: portrait on the front, QR on the back).
SHOW_SIDE = {
    "back": Text(N_("Turn the card over: the back, with the QR code")),
    "front": Text(N_("Turn the card over: the front, with the photo")),
}
PAGES_FULL = Text(N_("Maximum number of pages reached."))
NO_PAGES = Text(N_("Please place at least one page."))
BUSY = Text(N_("The kiosk is busy. Please try again in a moment."))

# What the fields read on a page are called on the review screen.
FIELD_LABELS = {
    "name": Text(N_("Full name")),
    "date_of_birth": Text(N_("Date of birth")),
    "number": Text(N_("Number")),
    "issuer": Text(N_("Issued by")),
    "issue_date": Text(N_("Issue date")),
    "mother_name": Text(N_("Mother's name")),
    "father_name": Text(N_("Father's name")),
    "spouse_name": Text(N_("Spouse's name")),
}

# Where the citizen belongs while identifying, by the identity session's state.
IDENTITY_STEPS = {
    State.WAITING_CARD: "identify",
    State.CONSENT: "consent",
    State.CHIP: "chip",
    State.FACE: "face",
    State.LIVENESS: "face",
    State.STAFF: "staff",
    State.DECLINED: "staff",
}


@dataclass(frozen=True, slots=True)
class Poll:
    """The answer to one camera frame: the next step when this one is over, else what to tell
    the citizen. None means "not said"; quad is where the card, face or page was found, in
    fractions of the frame. touch: the citizen made progress without touching the screen."""

    next: str | None = None
    message: Text | Message | None = None
    tone: str | None = None
    quad: list[list[float]] | None = None
    wait_ms: int | None = None
    progress: bool | None = None
    pages: int | None = None
    touch: bool = False
    seconds_left: float | None = None  # the countdown the screen shows (liveness, next try)
    tries_left: int | None = None
    reason: str | None = None  # why the face step asks again (identify.FACE_REASONS key)
    skip: bool | None = None  # the chip step: offer "use the printed photo" now


@dataclass(frozen=True, slots=True)
class PageRead:
    """What was read on one page, shown for review before the fee."""

    doc_type: str
    label: Text
    fields: dict[str, str]
    name_check: str  # match, mismatch or not_found
    name_message: Text | None
    qr: list[str]
    confidence: int
    text: str = ""  # the OCR text, for the officer (sent in the capture package, never shown)

    def screen(self) -> dict[str, Any]:
        """What the review screen shows of this page (its texts still to translate)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "text"}


NO_ANSWER = Text(N_("The officer has not answered yet"))
WAITING = Text(N_("Waiting for the certifying officer…"))
STATUS_TEXTS = {
    "sent": Text(N_("Sent, waiting for its place in the queue")),
    "queued": Text(N_("In the queue")),
    "approved": Text(N_("Certified")),
    "refused": Text(N_("Refused")),
    "see_staff": Text(N_("Please see the staff")),
}
REFUSED_ADVICE = Text(
    N_("Bring the original to the counter, or capture it again if the pages were unclear.")
)
CHANNELS = ("email", "ewallet", "post", "kiosk")


def channel_of(contact: str, channel: str = "") -> dict[str, str]:
    """The delivery the citizen chose: an e-mail or e-wallet typed, post, or collect here."""
    if channel in ("post", "kiosk"):
        return {"channel": channel}
    if contact:
        return {"channel": "email" if "@" in contact else "ewallet", "address": contact}
    return {"channel": "kiosk"}


def print_certified(
    state: Any, certify: Any, *, printer: Any, a4printer: Any, options: dict[str, Any]
) -> tuple[bool, bool]:
    """An approved request's receipt (code, number, book, the copy's QR as central made it)
    and, given an A4 printer, the certified copy: whether each printed."""
    from edge.ports.a4printer import A4PrintFailed
    from edge.services.printouts import cert_receipt

    receipt = copy = False
    if printer is not None:
        try:
            data = cert_receipt(state, **options)
            outcome = printer.submit("receipt", f"Biên nhận chứng thực {state.code}", data)
            receipt = bool(outcome.printed)
        except KioskError as err:
            logger.warning("certification receipt not printed: %s", err)
    pdf = certify.pdf(state.code) if a4printer is not None else None
    if pdf is not None:
        try:
            a4printer.print_pdf(f"Bản sao {state.code}", pdf)
            copy = True
        except A4PrintFailed as err:
            logger.warning("certified copy not printed on A4: %s", err)
    return receipt, copy


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


def frame_quad(points: Any, size: tuple[int, int]) -> list[list[float]]:
    """Corner points in pixels as fractions of the frame, for drawing over any preview size."""
    if points is None:
        return []
    w, h = size
    return [[round(float(x) / w, 4), round(float(y) / h, 4)] for x, y in points]


class EcopySession:
    """One citizen's e-copy in progress. close() drops face data, card data and pages.

    identity: the identification session (card, consent, face); copies: edge.copies.issue's
    CopyService (quote, issue, receipt); payment: the Payment port.
    """

    def __init__(
        self,
        identity: VerificationSession,
        *,
        copies: Any,
        payment: Payment,
        bus: EventBus | None = None,
        clock: Callable[[], float] = time.monotonic,
        certify: Any = None,
        wait_s: float = 180.0,
        central_up: Callable[[], bool] = lambda: True,
        printer: Any = None,
        a4printer: Any = None,
        print_copy: bool = False,
        slip_options: dict[str, Any] | None = None,
        payments: Any = None,
    ) -> None:
        """certify: edge.certify.requests.CertRequests; wait_s: how long the citizen waits
        for the officer; central_up: the fleet link is up; printer: the receipt PrintQueue;
        a4printer: the A4 printer port (print_copy: print approved copies on it); payments:
        the kiosk's payment ledger (edge.payments.Payments: cash, waivers, fee receipts)."""
        self.payments = payments
        self.cash = False  # the citizen chose to pay cash at the counter
        self.certify = certify
        self.wait_s = wait_s
        self.central_up = central_up
        self.printer = printer
        self.a4printer = a4printer
        self.print_copy = print_copy
        self.slip_options = slip_options or {}
        self.starts: list[int] = [0]  # index of each original's first page
        self.codes: list[str] = []  # the certification requests made, one per original
        self.submitted_at: float | None = None
        self.pickup = ""  # the one-time code to collect the copies here, printed on the slip
        self.slip_printed: bool | None = None
        self._announced: set[str] = set()
        self.identity = identity
        self.sides = CardSides()  # the card's sides shown so far, in any order
        self.copies = copies
        self.payment = payment
        self.bus = bus
        self.clock = clock
        self.staff_verified = False
        self.capture = PageCapture()
        self.pages: list[Any] = []  # ScannedPage, upright once read
        self.reads: list[PageRead] = []
        self.contact = ""
        self.channel = ""
        self.reference = secrets.token_hex(4).upper()  # payment reference, no personal data
        self.lock = threading.Lock()  # one poll at a time per citizen
        self.job: Job | None = None  # the long work running or last run (edge.services.jobs)
        self.closed = False
        self._jobs = threading.Lock()  # guards job and closed

    @property
    def verified_by(self) -> str:
        """How the citizen was identified (cert-request's citizen.verified_by)."""
        if self.identity.state != State.VERIFIED:
            return "staff"
        return "face_chip" if self.identity.portrait_source == "chip" else "face_card"

    @property
    def verified(self) -> bool:
        return self.identity.state == State.VERIFIED or self.staff_verified

    def step(self) -> str:
        """Where an identifying citizen belongs now ("home" once the session expired)."""
        if self.verified:
            return "pages"
        return IDENTITY_STEPS.get(self.identity.state, "home")

    def detour(
        self, *, states: tuple[State, ...] = (), verified: bool = False, read: bool = False
    ) -> str | None:
        """Where to send a citizen who skipped a step (a bookmark, the Back button), or None
        when they may be here: identifying at one of states, verified, their pages read."""
        if states and self.identity.state not in states:
            return self.step()
        if verified and not self.verified:
            return "identify"
        if read and not self.read_done:
            return "pages"
        return None

    # --- 1. identify ---------------------------------------------------------------------

    def card(self, frame: np.ndarray | None) -> Poll:
        """Look for a side of the citizen's card in a frame: a CCCD front (QR and portrait) is
        enough; a 2024 card needs its front (portrait) and back (QR), in any order."""
        if self.identity.state != State.WAITING_CARD:
            return Poll(next=self.step())
        if frame is None:
            return Poll(message=NO_FRAME)
        from edge.vision.face import find_faces

        with self.lock:
            size = (frame.shape[1], frame.shape[0])
            try:
                side = read_side(frame, find_face=find_faces)
                self.sides.add(side)
            except CardError as err:
                return Poll(message=Message(err.message_vi, str(err)), tone="bad")
            needed = self.sides.needed
            if needed is not None:
                return Poll(message=SHOW_SIDE[needed], quad=frame_quad(side.card_quad, size))
            reading = self.sides.reading()
            step = self.identity.card_read(reading)
        if step.state == State.CONSENT:
            logger.info("card read for an e-copy (%s)", "+".join(reading.sides))
            return Poll(next="consent", touch=True)
        if step.state == State.STAFF:
            return Poll(next="staff", message=Text(CHILD_CARD))
        self.sides.front = None  # the portrait could not be used: show the front again
        return Poll(
            message=Text(NO_PORTRAIT),
            quad=frame_quad(reading.card_quad, size),
            tone="bad",
        )

    # --- 2. consent and face -------------------------------------------------------------

    def consent(self, agreed: bool, lang: Lang = "vi") -> str:
        """The citizen's answer to the consent text shown in lang; the next step."""
        step = self.identity.give_consent(agreed, lang)
        logger.info("personal data consent %s", "given" if agreed else "declined")
        return "face" if step.state == State.FACE else self.step()

    def chip(self) -> Poll:
        """One look at the card reader: the chip read and authenticated moves on to the face."""
        identity = self.identity
        if identity.state != State.CHIP:
            return Poll(next=self.step())
        with self.lock:
            step = identity.tick()
            if step.state == State.EXPIRED:
                return Poll(next="expired")
            step = identity.chip_poll()
        if step.state != State.CHIP:
            if step.state == State.FACE:
                logger.info("chip step done (portrait from the %s)", identity.portrait_source)
            return Poll(next=self.step())
        message = step.reason_text or Text(MESSAGES[State.CHIP])
        return Poll(
            message=message,
            tone="bad" if step.reason_text is not None else None,
            wait_ms=500,
            skip=identity.chip_skippable,
        )

    def skip_chip(self) -> str:
        """Go on with the printed photo (a card whose chip will not read); the next step."""
        if self.identity.state == State.CHIP:
            self.identity.skip_chip()
        return self.step()

    def face(self, frame: np.ndarray | None, t: float | None = None) -> Poll:
        """One frame of the face check, then of the liveness challenge (t: the frame's time)."""
        identity = self.identity
        if identity.state not in (State.FACE, State.LIVENESS):
            return Poll(next=self.step())
        if frame is None:
            return Poll(message=NO_FRAME)
        with self.lock:
            step = identity.tick()
            if step.state == State.EXPIRED:
                return Poll(next="expired")
            box: tuple[int, int, int, int] | None = None
            if identity.state == State.FACE:
                step = identity.submit_face(frame)
                box = identity.face_box  # where the face was found, drawn over the preview
            else:
                step = identity.liveness_frame(frame, self.clock() if t is None else t)
        face_quad: list[list[float]] = []
        if box is not None:
            x, y, w, h = box
            size = (frame.shape[1], frame.shape[0])
            face_quad = frame_quad([(x, y), (x + w, y), (x + w, y + h), (x, y + h)], size)
        if step.state == State.VERIFIED:
            logger.info("citizen verified for an e-copy")
            return Poll(next="pages")
        if step.state == State.STAFF:
            return Poll(next="staff")
        if step.state == State.LIVENESS:
            return Poll(
                message=step.challenge or Message("", ""),
                quad=face_quad,
                tone="good",
                progress=True,
                wait_ms=60,
                seconds_left=step.seconds_left,
                tries_left=step.tries_left,
            )
        reason = step.reason_text or LOOK_AT_CAMERA
        if step.reason in ("", "no_face", "card_in_view"):  # nobody in front yet, or the card
            return Poll(message=reason, quad=face_quad, wait_ms=300, reason=step.reason or None)
        message: Text = reason
        if step.reason == "no_match" or step.reason.startswith("liveness_"):  # a try was used
            message = Text(FAILED_TRY, {"reason": reason, "n": step.tries_left})
        wait_s = step.seconds_left if step.seconds_left is not None else 1.0
        return Poll(
            message=message,
            quad=face_quad,
            tone="bad",
            wait_ms=max(300, min(1000, round(wait_s * 1000))),  # the count goes down each second
            seconds_left=step.seconds_left,
            tries_left=step.tries_left,
            reason=step.reason,
            progress=True,  # being told why is not idling
        )

    def confirm_by_staff(self) -> None:
        """Staff checked the card by eye and confirmed with their PIN (checked by the caller)."""
        self.staff_verified = True
        if self.bus is not None:
            self.bus.post(Event("identity.staff_verified", "identity", {"severity": "info"}))

    # --- 3. pages ------------------------------------------------------------------------

    def feed_page(self, frame: np.ndarray | None) -> Poll:
        """One preview frame: guidance, and the page taken once it lies still and clear."""
        if not self.verified:
            return Poll(next="start")
        if frame is None:
            return Poll(message=NO_FRAME)
        if len(self.pages) >= MAX_PAGES:
            return Poll(message=PAGES_FULL, pages=len(self.pages))
        captured = False
        with self.lock:
            state = self.capture.feed(frame)
            check = state.check
            size = (
                tuple(check.frame_size) if check.frame_size[0] else (frame.shape[1], frame.shape[0])
            )
            quad = frame_quad(check.quad, size)
            if state.capture:
                try:
                    page = scan(frame, check=check)
                except PageRejected as err:
                    return Poll(message=err.text, tone="bad", quad=quad)
                quality = capture_quality(page.flat, dpi=page.dpi)
                if quality.problem is not None:  # too blurred or dark to read: not taken
                    self.capture.reset()
                    return Poll(message=quality.problem, tone="bad", quad=quad)
                self.pages.append(page)
                captured = True
                logger.info("page captured", extra={"pages": len(self.pages)})
        tone = {"hold_still": "good", "capture": "good", "captured": "good"}.get(
            state.status, "bad"
        )
        return Poll(
            message=state.text,
            tone=tone,
            quad=quad,
            pages=len(self.pages),
            progress=state.status in ("hold_still", "capture"),
            touch=captured,
        )

    def capture_page(self, frame: np.ndarray | None) -> Text | None:
        """OK pressed: take the page as it is now (glare only warns); the problem, if any. A page
        too blurred or dark to read is refused with what to do (edge.vision.checks)."""
        with self.lock:
            try:
                if frame is None:
                    raise KioskError("no camera frame")
                if len(self.pages) < MAX_PAGES:
                    page = self.capture.capture(frame)
                    quality = capture_quality(page.flat, dpi=page.dpi)
                    if quality.problem is not None:
                        self.capture.reset()
                        return quality.problem
                    self.pages.append(page)
            except PageRejected as err:
                return err.text
            except KioskError:
                return NO_CAMERA
        return None

    def remove_page(self, n: int) -> None:
        """Page n (from 1) goes; what was read goes too, as the pages changed."""
        with self.lock:
            if 1 <= n <= len(self.pages):
                del self.pages[n - 1]
                self.starts = sorted({0, *(i - (i > n - 1) for i in self.starts[1:])})
                self.starts = [i for i in self.starts if i == 0 or i < len(self.pages)]
                self.reads = []
                self.capture.reset()

    # --- originals: "Thêm bản gốc khác" ------------------------------------------------

    def new_original(self) -> bool:
        """The next pages belong to another original; False while this one has no page yet."""
        with self.lock:
            if len(self.pages) <= self.starts[-1]:
                return False
            self.starts.append(len(self.pages))
            return True

    def originals(self) -> list[list[int]]:
        """Each original's pages, as page numbers from 1 (the last may still be empty)."""
        bounds = [*self.starts, len(self.pages)]
        groups = [list(range(a + 1, b + 1)) for a, b in itertools.pairwise(bounds)]
        return [g for g in groups[:-1] if g] + groups[-1:]

    def thumbnail(self, n: int, *, height: int = 300) -> bytes | None:
        """Page n (from 1) as a small JPEG, or None when there is no such page."""
        if not 1 <= n <= len(self.pages):
            return None
        image = self.pages[n - 1].image
        h, w = image.shape[:2]
        small = cv2.resize(image, (round(w * height / h), height), interpolation=cv2.INTER_AREA)
        _, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 75])
        return data.tobytes()

    # --- 4. read and check ---------------------------------------------------------------

    def read_pages(self) -> Text | Message | None:
        """OCR every page, turn it upright, tell its type, compare names with the card (on the
        caller's thread: the screens use start_reading)."""
        if not self.pages:
            return NO_PAGES
        with self.lock:
            self.pages[:], self.reads = self._read(list(self.pages))
        logger.info("pages read", extra={"pages": len(self.reads)})
        return None

    def _read(self, pages: list[Any], job: Job | None = None) -> tuple[list[Any], list[PageRead]]:
        """The pages upright and what was read on each; job counts the pages done."""
        from edge.documents.doctype import check_name, recognise
        from edge.vision.ocr import shared_ocr

        card = self.identity.card
        uprights, reads = [], []
        for page in pages:
            upright, reading = shared_ocr().read_page(page)
            found = recognise(reading.text, lines=reading.lines, page_size_mm=upright.size_mm)
            name = check_name(found, card.name, text=reading.text) if card is not None else None
            uprights.append(upright)
            reads.append(
                PageRead(
                    doc_type=found.doc_type,
                    label=found.label,
                    fields=found.fields,
                    name_check=name.result if name else "not_found",
                    name_message=name.text if name else None,
                    qr=[code.text for code in upright.qr],
                    confidence=round(reading.mean_confidence),
                    text=reading.text,
                )
            )
            if job is not None:
                job.done = len(reads)
        return uprights, reads

    # --- long work on the kiosk's worker thread (edge.services.jobs) --------------------

    def _start(self, worker: Worker, job: Job, work: Callable[[Job], None]) -> Text | None:
        """Run work(job) on the worker; BUSY when it cannot take it now."""
        with self._jobs:
            if self.closed or (self.job is not None and self.job.running):
                return None  # a second press while it runs: the same job goes on
            self.job = job

        def run() -> None:
            try:
                work(job)
            except KioskError as err:
                logger.error("%s failed: %s", job.kind, err)
                job.error = "part_down"
            except Exception:
                logger.exception("%s failed", job.kind)
                job.error = "internal"
            finally:
                with self._jobs:  # close() waits: the job ends and its leftovers go at once
                    if self.closed:  # cancelled or timed out meanwhile: nothing of it is kept
                        job.dropped = True
                        logger.info("%s result dropped: the session ended", job.kind)
                        if job.kind == "issue":
                            self._release()  # close() left that to the job (see close)
                    job.finished = True

        if not worker.submit(run):
            with self._jobs:
                self.job = None
                ended = self.closed
            if ended and job.kind == "issue":
                self._release()  # closed meanwhile, leaving it to a job that never ran
            return BUSY
        return None

    def start_reading(self, worker: Worker) -> Text | Message | None:
        """Read the pages on the worker (see read_pages); the screen polls job until done."""
        if not self.pages:
            return NO_PAGES

        pages = list(self.pages)  # what the citizen saw when they pressed "read"

        def work(job: Job) -> None:
            uprights, reads = self._read(pages, job)
            with self.lock:
                same = len(pages) == len(self.pages) and all(
                    a is b for a, b in zip(pages, self.pages, strict=True)
                )
                if self.closed or not same:
                    return  # the session ended or its pages changed: this reading is stale
                self.pages[:], self.reads = uprights, reads
            logger.info("pages read", extra={"pages": len(reads)})
            job.next = "review"

        return self._start(worker, Job("read", total=len(self.pages)), work)

    def start_issuing(self, worker: Worker) -> Text | None:
        """issue() on the worker: the screen polls job until its next step is known."""

        def work(job: Job) -> None:
            if self.closed:
                return  # cancelled before its turn came: nothing is sent
            job.next = self.issue()
            job.done = 1

        return self._start(worker, Job("issue", total=1), work)

    @property
    def read_done(self) -> bool:
        """Every page as it is now has been read."""
        return bool(self.reads) and len(self.reads) == len(self.pages)

    # --- 5-7. fee, payment, issue, receipt -----------------------------------------------

    def quotes(self) -> list[Fee]:
        """One fee per original (Circular 226/2016: per page, the cap per copy)."""
        return [self.copies.quote(len(pages)) for pages in self.originals() if pages]

    def quote(self) -> Fee:
        """The whole visit's fee: the originals' fees added up."""
        fees = self.quotes() or [self.copies.quote(max(1, len(self.pages)))]
        first = fees[0]  # one visit, one day, one kiosk: every original has the same rules
        return dataclasses.replace(
            first,
            pages=sum(f.pages for f in fees),
            fee_vnd=sum(f.fee_vnd for f in fees),
            payable_vnd=sum(f.payable_vnd for f in fees),
            exempt=all(f.exempt for f in fees),
        )

    def payment_request(self, fee: Fee) -> str | None:
        """What the citizen scans to pay, or None when nothing is to be paid or scanned."""
        if not fee.payable_vnd:
            return None
        self._open(fee)
        return self.payment.request(fee, self.reference)

    def _open(self, fee: Fee) -> None:
        """The fee under this visit's reference in the ledger, with the payer for its receipt;
        one reference is asked for one amount: a new amount (pages added or removed before
        paying) takes a new reference."""
        if self.payments is None:
            return
        card = self.identity.card
        name = card.name if card is not None else ""
        while not self.payments.open(self.reference, fee, name):
            if self.paid:  # paid under it already: that payment stands (docs/payments.md)
                return
            self.reference = secrets.token_hex(4).upper()

    def choose_cash(self) -> None:
        """The citizen pays cash at the counter: staff will confirm on this kiosk."""
        self.cash = True
        self._open(self.quote())

    def confirm_cash(self, staff: str) -> bool:
        """A named staff account confirmed the cash was taken (PIN checked by the caller):
        recorded with its receipt; whether the fee is now paid."""
        fee = self.quote()
        if self.payments is None or not fee.payable_vnd:
            return False
        if not self.paid:
            self._open(fee)
            self.payments.confirm(
                self.reference, method="cash", amount_vnd=fee.payable_vnd, staff=staff
            )
        return self.paid

    def simulate_paid(self) -> None:
        """Simulation only: central's bank confirmation, recorded as it would be."""
        confirm = getattr(self.payment, "confirm", None)
        if confirm is not None:
            confirm(self.reference)
        elif self.payments is not None:
            fee = self.quote()
            self._open(fee)
            self.payments.confirm(
                self.reference,
                method="bank_transfer",
                amount_vnd=fee.payable_vnd,
                bank_reference="SIMULATION",
            )

    def confirmation(self) -> Any:
        """How this visit's fee was paid or waived (edge.payments.Confirmation), or None."""
        return self.payments.confirmation(self.reference) if self.payments is not None else None

    def payment_qr(self, fee: Fee) -> str | None:
        """The payment request as a QR image (an SVG data URI), or None as payment_request."""
        request = self.payment_request(fee)
        return segno.make(request, error="m").svg_data_uri(scale=5) if request else None

    @property
    def paid(self) -> bool:
        if self.payment.paid(self.reference):
            return True
        return self.payments is not None and self.payments.confirmation(self.reference) is not None

    def may_issue(self, fee: Fee) -> bool:
        return not fee.payable_vnd or self.paid

    def give_contact(self, contact: str, channel: str = "") -> str:
        """Where the certified copy goes (an e-mail or an e-wallet typed, or channel "post" or
        "kiosk"; nothing: collect here), given on the fee screen: the next step, "issue" once
        nothing is left to pay, else "fee"."""
        self.contact = contact
        self.channel = channel
        return "issue" if self.may_issue(self.quote()) else "fee"

    def fee_screen(self) -> dict[str, Any]:
        """What the fee screen shows: the quote, the pages, the QR to pay with, paid or not."""
        quote = self.quote()
        fees = self.quotes()
        return {
            "quote": quote,
            "pages": len(self.pages),
            "originals": [
                {"n": n, "pages": pages, "fee": fee.label_vi}
                for n, (pages, fee) in enumerate(zip(self.originals(), fees, strict=False), 1)
            ],
            "qr_image": self.payment_qr(quote),
            "paid": self.paid,
            "cash": self.cash,
        }

    def originals_read(self) -> list[Any]:
        """Each original as edge.certify.requests.Original: pages, type, text, fields."""
        from edge.certify.requests import Original

        out = []
        for numbers in self.originals():
            if not numbers:
                continue
            reads = [self.reads[n - 1] for n in numbers]
            fields_read: dict[str, str] = {}
            for read in reads:
                fields_read = read.fields | fields_read
            out.append(
                Original(
                    pages=[self.pages[n - 1] for n in numbers],
                    doc_type=reads[0].doc_type,
                    doc_label=(reads[0].label.vi, reads[0].label.en),
                    ocr_text="\n\f".join(read.text for read in reads),
                    fields=fields_read,
                    confidence=[read.confidence for read in reads],
                )
            )
        return out

    def issue(self) -> str:
        """Send one certification request per original to central's officers: "wait", or
        "fee" while something is missing (pages read, the payment). KioskError when the
        requests could not be made. The kiosk does not sign the copy: the officer does."""
        if not self.pages or len(self.reads) != len(self.pages):
            return "wait" if self.codes else "fee"
        with self.lock:
            if not self.codes:
                if not self.may_issue(self.quote()):
                    return "fee"
                card = self.identity.card
                if card is None or self.certify is None:
                    raise KioskError("no identified citizen or no certification service")
                citizen = {
                    "id_number": card.id_number,
                    "name": card.name,
                    "verified_by": self.verified_by,
                }
                from edge.certify.requests import pickup_code

                self.pickup = pickup_code()
                try:
                    self.codes = self.certify.submit(
                        self.originals_read(),
                        citizen,
                        fees=self.quotes(),
                        delivery=channel_of(self.contact, self.channel),
                        paid=self.paid,
                        reference=self.reference,
                        pickup=self.pickup,
                    )
                except KioskError as err:
                    logger.error("certification requests not made: %s", err)
                    raise
                self.submitted_at = self.clock()
                if self.payments is not None and not self.quote().payable_vnd:
                    codes = " ".join(self.codes)
                    self.payments.waive(
                        self.reference,
                        self.quote(),
                        card.name,
                        copy_code=codes if len(codes) <= 80 else self.codes[0],
                    )
                self.pages.clear()  # sent sealed through the outbox; the scans go
                self.reads.clear()
                self.starts = [0]
        return "wait"

    # --- 8. waiting for the officer ------------------------------------------------------

    def requests(self) -> list[Any]:
        return self.certify.states(self.codes) if self.codes else []

    def wait_state(self) -> dict[str, Any]:
        """What the waiting screen shows, and where to go next: "wait" while the officer may
        still answer, "result" once every original is answered, "slip" when the wait is over
        (too long, central unreachable, outside office hours)."""
        states = self.requests()
        if not states:
            return {"next": "home", "requests": []}
        for state in states:
            self._announce(state)
        waited = self.clock() - (self.submitted_at or self.clock())
        if all(state.answered for state in states):
            step = "result"
        elif waited >= self.wait_s or not self.central_up() or not self.certify.office_open():
            step = "slip"
        else:
            step = "wait"
        return {
            "next": step,
            "waited_s": round(waited),
            "left_s": max(0, round(self.wait_s - waited)),
            "requests": [self._shown(state) for state in states],
        }

    def _shown(self, state: Any) -> dict[str, Any]:
        reason = state.reason_text
        return {
            "code": state.code,
            "original": state.original,
            "pages": state.pages,
            "status": state.status,
            "status_text": STATUS_TEXTS.get(state.status, STATUS_TEXTS["sent"]),
            "position": state.position,
            "wait_min": None if state.wait_min is None else round(state.wait_min),
            "reason": Message(*reason) if reason else None,
            "advice": REFUSED_ADVICE if state.status == "refused" else None,
            "number": state.number,
            "book": state.book,
            "due_at": state.due_at,
            "channel": state.channel,
        }

    def _announce(self, state: Any) -> None:
        """Once per answered request: print the receipt (and the copy on A4), or call staff."""
        if state.code in self._announced or not state.answered:
            return
        self._announced.add(state.code)
        if state.status == "see_staff" and self.bus is not None:
            detail = {"severity": "info", "screen": "ecopy.result", "reason": "see_staff"}
            self.bus.post(Event("help.requested", "certify", detail))
        if state.status == "approved":
            self._print_receipt(state)

    def _print_receipt(self, state: Any) -> None:
        if self.certify.mark_printed(state.code):
            print_certified(
                state,
                self.certify,
                printer=self.printer,
                a4printer=self.a4printer if self.print_copy else None,
                options=self.slip_options | {"fee": self.quote(), "paid": self.paid_note()},
            )

    def print_slip(self) -> bool:
        """The request slip for the originals still unanswered (printed once): whether it
        printed."""
        from edge.services.printouts import cert_slip

        if self.slip_printed is not None:
            return self.slip_printed
        waiting = [state for state in self.requests() if not state.answered]
        if not waiting or self.printer is None:
            self.slip_printed = False
            return False
        try:
            data = cert_slip(
                waiting,
                pickup=self.pickup,
                fee=self.quote(),
                paid=self.paid_note(),
                **self.slip_options,
            )
            outcome = self.printer.submit("slip", "Phiếu hẹn chứng thực", data)
            self.slip_printed = bool(outcome.printed)
        except KioskError as err:
            logger.warning("request slip not printed: %s", err)
            self.slip_printed = False
        for state in waiting:
            self.certify.mark_printed(state.code)
        return self.slip_printed

    def paid_note(self) -> tuple[str, str] | None:
        """(method, receipt number) for the slips (edge.services.printouts), or None."""
        found = self.confirmation()
        return (found.method, found.receipt) if found is not None else None

    @property
    def consent_given(self) -> bool:
        return self.identity.consent is not None

    def print_consent(
        self, printer: Any, *, paper_width_mm: int, profile: str, timezone: str
    ) -> bool | None:
        """The citizen may take the record of their consent (Law 91/2025/QH15): whether it
        printed, or None when there is no consent to print."""
        record = self.identity.consent
        if record is None:
            return None
        data = self.identity.consents.slip(
            record, paper_width_mm=paper_width_mm, profile=profile, timezone=timezone
        )
        return bool(printer.submit("consent", "Xác nhận đồng ý", data).printed)

    @property
    def consent_text(self) -> tuple[Message, ...]:
        """What the citizen agrees to before the face check, block by block (docs/consent.md)."""
        vi, en = consent_text(PURPOSE_ECOPY, "vi"), consent_text(PURPOSE_ECOPY, "en")
        return tuple(Message(a, b) for a, b in zip(vi, en, strict=True))

    def close(self) -> None:
        """The session ends (finished, cancelled, timed out): face data, card data and pages
        go. A reading still running drops its result when it ends; an issue still running
        (requests being sent) keeps the card and pages until it ends, then drops them."""
        with self._jobs:
            self.closed = True
            issuing = self.job is not None and self.job.running and self.job.kind == "issue"
        if not issuing:
            self._release()

    def _release(self) -> None:
        self.identity.close()
        self.pages.clear()
        self.reads.clear()
        self.capture.reset()
        self.payment.cancel(self.reference)
