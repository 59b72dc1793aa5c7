"""The identification session the web UI drives: card → consent → face → liveness → verified."""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import BadInput
from edge.events import Event, EventBus
from edge.services.consent import PURPOSE_ECOPY, ConsentRecord, ConsentStore, Lang
from edge.texts import N_, Text, vietnamese

logger = logging.getLogger(__name__)
# The web UI screen (its endpoint, body data-screen) that shows the STAFF and DECLINED states:
# help.requested names it, as every call for staff names the screen the citizen waits on.
STAFF_SCREEN = "ecopy.staff"

MAX_TRIES = 3
# A failed comparison is shown with its reason for at least this long before the next try.
RETRY_GAP_S = 3.0
# A quality problem (dark, turned, far) asks again after this long, without using a try.
QUALITY_GAP_S = 1.0


class State(enum.StrEnum):
    WAITING_CARD = "waiting_card"
    CONSENT = "consent"
    CHIP = "chip"  # the card on the reader: its chip's portrait, passively authenticated
    FACE = "face"
    LIVENESS = "liveness"
    VERIFIED = "verified"
    STAFF = "staff"  # 3 failed tries: a person must help
    DECLINED = "declined"  # no consent: staff verifies instead
    EXPIRED = "expired"  # the citizen walked away

    @property
    def final(self) -> bool:
        return self in (State.VERIFIED, State.STAFF, State.DECLINED, State.EXPIRED)


# Seconds a citizen may stay in each state before the session expires and is wiped.
TIMEOUTS = {
    State.WAITING_CARD: 120.0,
    State.CONSENT: 120.0,
    State.CHIP: 120.0,
    State.FACE: 60.0,
    State.LIVENESS: 30.0,
}

# What the screen says in each state (English msgids; Vietnamese in the catalog, edge.texts).
MESSAGES = {
    State.WAITING_CARD: N_("Place your ID card under the camera, either side up."),
    State.CONSENT: N_("Please read and agree to the processing of your personal data."),
    State.CHIP: N_("Lay your card flat on the card reader and keep it still."),
    State.FACE: N_("Please look straight at the camera."),
    State.LIVENESS: N_("Please follow the instructions on the screen."),
    State.VERIFIED: N_("Identity verified."),
    State.STAFF: N_(
        "Your face could not be verified. Please wait, a member of staff will come to help."
    ),
    State.DECLINED: N_("You did not agree. A member of staff will help verify your identity."),
    State.EXPIRED: N_("The session has timed out. Please start again."),
}
# Why the face step asks again: reason code -> what the screen says. Only "no_match" (a face
# seen and compared, and not the card's) and the liveness failures use up a try.
FACE_REASONS = {
    "card_in_view": N_("Put the card away and look at the camera."),
    "no_face": N_("Please look straight at the camera."),
    "too_dark": N_("The light is too dark. Please move into the light."),
    "not_frontal": N_("Turn your face straight to the camera."),
    "too_small": N_("Please come closer to the camera."),
    "no_match": N_("The face does not match the photo on the card."),
    "wait": N_("Please wait a moment, then look at the camera again."),
}
# Quality limits on the live face (see docs/face.md, "The face step").
MIN_FACE_BRIGHTNESS = 60.0  # mean grey (0..255) of the face box
MAX_YAW = 0.35  # nose-tip offset from the eyes' midpoint, share of the eye distance
MAX_ROLL_DEG = 20.0  # tilt of the line through the eyes
MIN_FACE_PX = 80  # face box width in pixels (dlib's embedding wants at least this)
MIN_FACE_SHARE = 0.1  # and this share of the frame's width

# The chip step (docs/chip.md, "On the kiosk"): what the screen says besides the port's errors.
CHIP_MISMATCH = N_("The chip and the printed card do not belong to one card.")
CHIP_NOT_AUTHENTIC = N_("The card's chip could not be confirmed as genuine.")
# A card not found this long on the reader may be offered the printed photo instead.
CHIP_SKIP_AFTER_S = 20.0
# Refusals of the MRZ key before the printed photo is used instead (the back was misread).
CHIP_MAX_KEY_REFUSALS = 2

NO_PORTRAIT = N_("The photo on the card is not clear. Lay the whole card flat inside the frame.")
CHILD_CARD = N_(
    "This card has no photo (a child's card). A member of staff will come to verify your identity."
)


class ConsentRequired(BadInput):
    """Face processing was asked for without a recorded consent."""

    code = "consent_required"


class WrongStep(BadInput):
    """An action that does not belong to the session's current step."""

    code = "wrong_step"


@dataclass(frozen=True, slots=True)
class Step:
    """What the UI shows after an action; no personal data beyond what the citizen sees."""

    state: State
    message_vi: str
    tries_left: int
    detail: str = ""
    challenge_vi: str | None = None
    challenge: Text | None = None  # the liveness instruction, in no language yet
    reason: str = ""  # why the face step asks again (FACE_REASONS key), "" otherwise
    reason_text: Text | None = None  # what the screen says about it, in no language yet
    retry_at: float | None = None  # session clock time of the next try (FACE, after a reason)
    seconds_left: float | None = None  # until retry_at, or of the liveness challenge

    @property
    def reason_vi(self) -> str:
        return self.reason_text.vi if self.reason_text is not None else ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "message_vi": self.message_vi,
            "tries_left": self.tries_left,
            "detail": self.detail,
            "challenge_vi": self.challenge_vi,
            "reason": self.reason,
            "reason_vi": self.reason_vi,
            "retry_at": self.retry_at,
            "seconds_left": None if self.seconds_left is None else round(self.seconds_left, 1),
        }


class VerificationSession:
    """One citizen's identification. Face data lives only in this object and dies with close().

    verifier: edge.vision.face.FaceVerifier (template(), compare());
    new_challenge(reference=, verifier=): edge.vision.liveness.new_challenge, whose challenge
    also checks that the face doing the challenge is the card's face.
    """

    def __init__(
        self,
        *,
        consents: ConsentStore,
        verifier: Any,
        new_challenge: Callable[..., Any],
        bus: EventBus | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_tries: int = MAX_TRIES,
        chip: Any = None,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.consents = consents
        self.verifier = verifier
        self._new_challenge = new_challenge
        self.bus = bus
        self.clock = clock
        self.max_tries = max_tries
        self.state = State.WAITING_CARD
        self.entered_at = clock()
        self.failures = 0
        self.card: Any = None  # CccdCard once read
        self._card_template: Any = None  # embedding of the card's portrait, RAM only
        self._challenge: Any = None
        self.consent: ConsentRecord | None = None
        self.last_score: float | None = None
        self.retry_at: float | None = None  # no try before this (session clock)
        self.reason = ""  # the last reason the face step gave (FACE_REASONS key)
        self.staff_reason = ""  # why staff were called
        self._liveness_t: float | None = None  # time of the last liveness frame fed
        self.face_box: tuple[int, int, int, int] | None = None  # the face last looked at
        # The chip (edge.identity.chip.wiring.ChipReader, None: no reader configured) and the
        # key the back's MRZ gave; which portrait the face is compared with, and the chip's
        # passive authentication ("valid", "invalid", or "" when the chip was not read).
        self.chip = chip
        self.chip_key: Any = None  # edge.identity.mrz.MrzKey, set by card_read when read
        self.portrait_source = "card"
        self.passive_auth = ""
        self._key_refusals = 0

    # --- transitions ---------------------------------------------------------------------

    def card_read(self, reading: Any) -> Step:
        """A validated card whose portrait was located: edge.identity.card.CardReading (a CCCD
        front), TwoSided (both sides of a 2024 card) or any reading with `.card` and
        `.portrait()` (the face, with margin, as the embedder wants it: the one method this
        session takes a face from). A child's card without a portrait (`no_portrait`) goes to
        staff, said plainly."""
        self._expect(State.WAITING_CARD)
        if getattr(reading, "no_portrait", False):
            self.card = reading.card
            logger.info("card without a portrait (a child's): staff verify")
            self._post("identity.no_portrait", "info")
            self.staff_reason = "no_portrait"
            self._post("help.requested", "info", reason="no_portrait")  # staff must come
            step = self._enter(State.STAFF, "card without a portrait")
            return dataclasses.replace(step, message_vi=vietnamese(CHILD_CARD))
        portrait = reading.portrait()
        if portrait is None:
            return self._step(vietnamese(NO_PORTRAIT))
        template = self.verifier.template(portrait)
        if template.vector is None:
            return self._step(vietnamese(NO_PORTRAIT))
        self.card = reading.card
        self._card_template = template
        mrz = getattr(reading, "mrz", None)  # read from the back: the key to the chip
        self.chip_key = mrz.key if mrz is not None else None
        if self.chip is not None and self.chip_key is not None:
            self.chip.simulate(self.card, portrait, self.chip_key)  # the PC simulation only
        return self._enter(State.CONSENT)

    def give_consent(self, agreed: bool, lang: Lang = "vi") -> Step:
        """The citizen's answer to the consent text shown in lang (Law 91/2025/QH15): agreed,
        the record names that text's version and hash."""
        self._expect(State.CONSENT)
        if not agreed:
            self._wipe_face_data()
            self.staff_reason = "consent_declined"
            # Staff check the card by eye instead: they are called, not just promised.
            self._post("help.requested", "info", reason="consent_declined")
            return self._enter(State.DECLINED)
        self.consent = self.consents.record(
            session_id=self.id,
            purpose=PURPOSE_ECOPY,
            id_number=self.card.id_number,
            name=self.card.name,
            lang=lang,
        )
        if self.chip is not None and self.chip_key is not None:
            return self._enter(State.CHIP)
        return self._enter(State.FACE)

    def chip_poll(self, *, timeout: float = 0.3) -> Step:
        """Try to read the chip of the card on the reader (a short wait for it to be laid).

        A valid read replaces the printed portrait with the chip's (DG2) and says so in
        portrait_source; a chip that fails passive authentication, or that belongs to another
        card, sends the citizen to staff. A card not laid, or pulled, is asked for again.
        """
        self._expect(State.CHIP)
        self._require_consent()
        from edge.identity.chip import ChipError, error_text, read_chip
        from edge.ports.cardreader import CardRemoved, NoCard, NoReader

        chip = self.chip
        try:
            reading = read_chip(chip.reader, self.chip_key, chip.trust, timeout=timeout)
        except NoCard:
            return self._step()
        except CardRemoved as err:
            logger.info("chip read interrupted: %s", err)
            return self._chip_says(error_text(err))
        except NoReader as err:
            logger.warning("chip reader not available, the printed photo is used: %s", err)
            return self._use_printed_portrait("no_reader")
        except ChipError as err:
            logger.info("chip refused: %s", err.message_en)
            if err.rule == "bac_refused":
                self._key_refusals += 1
                if self._key_refusals >= CHIP_MAX_KEY_REFUSALS:
                    return self._use_printed_portrait("key_refused")
            return self._chip_says(error_text(err))
        try:
            return self._chip_read(reading)
        finally:
            reading.portrait = None  # the session keeps only the template

    def skip_chip(self) -> Step:
        """The citizen (or staff) goes on with the printed photo: a card that will not read."""
        self._expect(State.CHIP)
        return self._use_printed_portrait("skipped")

    @property
    def chip_skippable(self) -> bool:
        return self.state == State.CHIP and self.clock() - self.entered_at >= CHIP_SKIP_AFTER_S

    def _chip_read(self, reading: Any) -> Step:
        self.passive_auth = reading.passive_auth
        if reading.passive_auth != "valid":
            logger.warning("chip failed passive authentication: %s", reading.reason)
            self._post("identity.chip_invalid", "warning", reason=reading.reason)
            return self._to_staff("chip_not_authentic", Text(CHIP_NOT_AUTHENTIC))
        if reading.fields.get("id_number") != self.card.id_number:
            logger.warning("chip's ID number differs from the printed card's")
            self._post("identity.chip_mismatch", "warning")
            return self._to_staff("chip_mismatch", Text(CHIP_MISMATCH))
        template = None if reading.portrait is None else self.verifier.template(reading.portrait)
        if template is None or template.vector is None:
            logger.warning("chip portrait has no usable face; the printed photo is used")
            return self._use_printed_portrait("chip_portrait_unusable")
        if self._card_template is not None:
            self._card_template.drop()
        self._card_template = template
        self.portrait_source = "chip"
        logger.info(
            "chip read and authenticated%s",
            " (development trust list)" if reading.development else "",
        )
        return self._enter(State.FACE)

    def _use_printed_portrait(self, why: str) -> Step:
        self.portrait_source = "card"
        self._post("identity.chip_skipped", "info", reason=why)
        return self._enter(State.FACE)

    def _chip_says(self, text: Text) -> Step:
        step = self._step()
        return dataclasses.replace(step, reason_text=text)

    def _to_staff(self, reason: str, text: Text) -> Step:
        self._wipe_face_data()
        self.staff_reason = reason
        self._post("help.requested", "info", reason=reason)
        step = self._enter(State.STAFF)
        return dataclasses.replace(step, reason=reason, reason_text=text)

    def submit_face(self, frame: np.ndarray) -> Step:
        """One camera frame of the face step. A try is used only when a face was seen, was good
        enough to compare, and did not match; anything else says why and asks again."""
        self._expect(State.FACE)
        self._require_consent()
        now = self.clock()
        self.face_box = None
        if self.retry_at is not None and now < self.retry_at:
            return self._step(reason=self.reason or "wait")
        if card_in_view(frame, self.verifier.detector):
            return self._ask_again("card_in_view", hold=False)
        faces = self.verifier.detector.detect(frame)
        self.face_box = faces[0].box if faces else None
        if not faces:
            return self._ask_again("no_face", hold=False)
        face = faces[0]
        problem = face_quality(frame, face)
        if problem:
            return self._ask_again(problem, hold=True)
        from edge.vision.face import FaceInfo, FaceTemplate

        info = FaceInfo(True, face.box, round(face.score, 4), len(faces))
        live = FaceTemplate(info, self.verifier.embedder.embed(frame, face))
        try:
            result = self.verifier.compare(self._card_template, live)
        finally:
            live.drop()
        self.last_score = result.score
        if not result.match:
            return self._failed_try(f"face check: {result.reason}", "no_match")
        self.reason, self.retry_at = "", None
        self._challenge = self._new_challenge(reference=self._card_template, verifier=self.verifier)
        self._liveness_t = None
        return self._enter(State.LIVENESS)

    def liveness_frame(self, frame: np.ndarray, t: float) -> Step:
        self._expect(State.LIVENESS)
        self._require_consent()
        outcome = self._challenge.feed(frame, t)
        self._liveness_t = t
        if outcome.status == "pending":
            return self._step()
        if outcome.status == "passed":
            self._wipe_face_data()
            self._post(
                "identity.verified",
                "info",
                portrait_source=self.portrait_source,
                passive_auth=self.passive_auth or None,
            )
            return self._enter(State.VERIFIED)
        if outcome.reason == "no_face":  # nobody did the challenge: not a try
            self._drop_challenge()
            self._enter(State.FACE)
            return self._ask_again("no_face", hold=True)
        return self._failed_try(f"liveness: {outcome.reason}", f"liveness_{outcome.reason}")

    def tick(self) -> Step:
        """Call periodically: a state held too long expires the session and wipes it. STAFF
        has no limit: it waits for staff, or for the citizen to cancel."""
        limit = TIMEOUTS.get(self.state)
        if self.state == State.FACE and self.retry_at is not None:
            # The time spent being told a reason is not the citizen's idling.
            limit = None if limit is None else limit + max(0.0, self.retry_at - self.entered_at)
        if limit is not None and self.clock() - self.entered_at > limit:
            logger.info("identification session expired", extra={"state": self.state.value})
            self.close()
            return self._enter(State.EXPIRED)
        return self._step()

    def close(self) -> None:
        """End of session: every face image and the card data are dropped."""
        self._wipe_face_data()
        self.card = None

    # --- helpers -------------------------------------------------------------------------

    def _require_consent(self) -> None:
        if self.consent is None or self.consents.find(self.id, PURPOSE_ECOPY) is None:
            raise ConsentRequired("face verification needs the citizen's recorded consent first")

    def _ask_again(self, reason: str, *, hold: bool) -> Step:
        """The face step says why and looks again; no try is used."""
        self.reason = reason
        self.retry_at = self.clock() + QUALITY_GAP_S if hold else None
        return self._step(reason=reason)

    def _drop_challenge(self) -> None:
        if self._challenge is not None and hasattr(self._challenge, "close"):
            self._challenge.close()
        self._challenge = None
        self._liveness_t = None

    def _failed_try(self, why: str, reason: str) -> Step:
        self.failures += 1
        self._drop_challenge()
        logger.info(
            "identification try failed: %s", why, extra={"try": self.failures, "session": self.id}
        )
        self.reason = reason
        if self.failures >= self.max_tries:
            self._wipe_face_data()
            self.retry_at = None
            self.staff_reason = reason
            self._post("identity.face_failures", "warning", tries=self.failures)
            # Staff are called; the event carries the reason code only, no personal data.
            self._post("help.requested", "info", reason=reason, tries=self.failures)
            return self._enter(State.STAFF, why)
        self.state = State.FACE
        self.retry_at = self.clock() + RETRY_GAP_S
        self.entered_at = self.clock()
        return self._step(why, reason=reason)

    def _enter(self, state: State, detail: str = "") -> Step:
        self.state = state
        self.entered_at = self.clock()
        return self._step(detail)

    def _step(self, detail: str = "", *, reason: str = "") -> Step:
        challenge = getattr(self._challenge, "instruction", None)
        seconds_left: float | None = None
        retry_at: float | None = None
        if self.state != State.LIVENESS:
            challenge = None
        else:
            seconds_left = self._challenge_left()
        if self.state == State.FACE and self.retry_at is not None:
            retry_at = self.retry_at
            seconds_left = max(0.0, self.retry_at - self.clock())
        return Step(
            self.state,
            vietnamese(MESSAGES[self.state]),
            max(0, self.max_tries - self.failures),
            detail,
            challenge.vi if challenge else None,
            challenge,
            reason,
            reason_text(reason),
            retry_at,
            seconds_left,
        )

    def _challenge_left(self) -> float | None:
        """Seconds the liveness challenge has left, as of the last frame fed."""
        limit = getattr(self._challenge, "time_limit_s", None)
        if limit is None:
            return None
        if self._liveness_t is None or not hasattr(self._challenge, "seconds_left"):
            return float(limit)
        return float(self._challenge.seconds_left(self._liveness_t))

    def _expect(self, state: State) -> None:
        if self.state != state:
            raise WrongStep(f"this step needs {state.value}, the session is at {self.state.value}")

    def _wipe_face_data(self) -> None:
        if self._card_template is not None:
            self._card_template.drop()
            self._card_template = None
        self._drop_challenge()

    def _post(self, kind: str, severity: str, **detail: Any) -> None:
        if kind == "help.requested":
            detail["screen"] = STAFF_SCREEN  # where the citizen waits for staff
        if self.bus is not None:
            self.bus.post(Event(kind, "identity", {"severity": severity, **detail}))


def reason_text(reason: str) -> Text | None:
    """What the screen says for a reason code (face step or liveness failure), or None."""
    if reason in FACE_REASONS:
        return Text(FACE_REASONS[reason])
    if reason.startswith("liveness_"):
        from edge.vision.liveness import FAILURES

        msgid = FAILURES.get(reason.removeprefix("liveness_"))
        return Text(msgid) if msgid else None
    return None


def card_in_view(frame: np.ndarray, detector: Any) -> bool:
    """Is an ID card still in the camera's view? The card finder's outline search (a few ms);
    a card-like outline counts unless a face is seen outside it (a door or a picture frame
    behind the citizen can look like a card, the card's own portrait lies inside it)."""
    import cv2

    from edge.identity.card import find_card

    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    quad = find_card(grey)
    if quad is None:
        return False
    faces = detector.detect(frame)
    if not faces:
        return True
    x, y, w, h = faces[0].box
    centre = (float(x + w / 2), float(y + h / 2))
    return cv2.pointPolygonTest(quad.reshape(-1, 1, 2), centre, False) >= 0


def face_quality(frame: np.ndarray, face: Any) -> str:
    """Why a detected face is not good enough to compare ("" when it is): too small (too far),
    too dark (mean grey of the face box), not frontal (roll of the eye line, or the nose tip off
    the eyes' midpoint, from the detector's keypoints)."""
    import math

    import cv2

    x, y, w, h = face.box
    if w < max(MIN_FACE_PX, MIN_FACE_SHARE * frame.shape[1]):
        return "too_small"
    region = frame[y : y + h, x : x + w]
    grey = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY) if region.ndim == 3 else region
    if float(grey.mean()) < MIN_FACE_BRIGHTNESS:
        return "too_dark"
    (rx, ry), (lx, ly), (nx, _ny) = face.keypoints[0], face.keypoints[1], face.keypoints[2]
    eyes = math.hypot(lx - rx, ly - ry)
    if eyes < 1.0:
        return "not_frontal"
    roll = abs(math.degrees(math.atan2(ly - ry, lx - rx)))
    roll = min(roll, 180.0 - roll) if roll > 90.0 else roll
    yaw = abs(nx - (lx + rx) / 2) / eyes
    if roll > MAX_ROLL_DEG or yaw > MAX_YAW or lx <= rx:
        return "not_frontal"
    return ""
