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
from edge.services.consent import PURPOSE_FACE, ConsentRecord, ConsentStore
from edge.texts import N_, Text, vietnamese

logger = logging.getLogger(__name__)

MAX_TRIES = 3


class State(enum.StrEnum):
    WAITING_CARD = "waiting_card"
    CONSENT = "consent"
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
    State.FACE: 60.0,
    State.LIVENESS: 30.0,
}

# What the screen says in each state (English msgids; Vietnamese in the catalog, edge.texts).
MESSAGES = {
    State.WAITING_CARD: N_("Place your ID card under the camera, either side up."),
    State.CONSENT: N_("Please read and agree to the processing of your face picture."),
    State.FACE: N_("Please look straight at the camera."),
    State.LIVENESS: N_("Please follow the instructions on the screen."),
    State.VERIFIED: N_("Identity verified."),
    State.STAFF: N_(
        "Your face could not be verified. Please wait, a member of staff will come to help."
    ),
    State.DECLINED: N_("You did not agree. A member of staff will help verify your identity."),
    State.EXPIRED: N_("The session has timed out. Please start again."),
}
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "message_vi": self.message_vi,
            "tries_left": self.tries_left,
            "detail": self.detail,
            "challenge_vi": self.challenge_vi,
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
        return self._enter(State.CONSENT)

    def give_consent(self, agreed: bool) -> Step:
        self._expect(State.CONSENT)
        if not agreed:
            self._wipe_face_data()
            return self._enter(State.DECLINED)
        self.consent = self.consents.record(
            session_id=self.id,
            purpose=PURPOSE_FACE,
            id_number=self.card.id_number,
            name=self.card.name,
        )
        return self._enter(State.FACE)

    def submit_face(self, frame: np.ndarray) -> Step:
        self._expect(State.FACE)
        self._require_consent()
        live = self.verifier.template(frame)
        try:
            result = self.verifier.compare(self._card_template, live)
        finally:
            live.drop()
        self.last_score = result.score
        if not result.match:
            return self._failed_try(f"face check: {result.reason}")
        self._challenge = self._new_challenge(reference=self._card_template, verifier=self.verifier)
        return self._enter(State.LIVENESS)

    def liveness_frame(self, frame: np.ndarray, t: float) -> Step:
        self._expect(State.LIVENESS)
        self._require_consent()
        outcome = self._challenge.feed(frame, t)
        if outcome.status == "pending":
            return self._step()
        if outcome.status == "passed":
            self._wipe_face_data()
            self._post("identity.verified", "info")
            return self._enter(State.VERIFIED)
        return self._failed_try(f"liveness: {outcome.reason}")

    def tick(self) -> Step:
        """Call periodically: a state held too long expires the session and wipes it."""
        limit = TIMEOUTS.get(self.state)
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
        if self.consent is None or self.consents.find(self.id, PURPOSE_FACE) is None:
            raise ConsentRequired("face verification needs the citizen's recorded consent first")

    def _failed_try(self, why: str) -> Step:
        self.failures += 1
        if self._challenge is not None and hasattr(self._challenge, "close"):
            self._challenge.close()
        self._challenge = None
        logger.info(
            "identification try failed: %s", why, extra={"try": self.failures, "session": self.id}
        )
        if self.failures >= self.max_tries:
            self._wipe_face_data()
            self._post("identity.face_failures", "warning", tries=self.failures)
            return self._enter(State.STAFF, why)
        return self._enter(State.FACE, why)

    def _enter(self, state: State, detail: str = "") -> Step:
        self.state = state
        self.entered_at = self.clock()
        return self._step(detail)

    def _step(self, detail: str = "") -> Step:
        challenge = getattr(self._challenge, "instruction", None)
        if self.state != State.LIVENESS:
            challenge = None
        return Step(
            self.state,
            vietnamese(MESSAGES[self.state]),
            max(0, self.max_tries - self.failures),
            detail,
            challenge.vi if challenge else None,
            challenge,
        )

    def _expect(self, state: State) -> None:
        if self.state != state:
            raise WrongStep(f"this step needs {state.value}, the session is at {self.state.value}")

    def _wipe_face_data(self) -> None:
        if self._card_template is not None:
            self._card_template.drop()
            self._card_template = None
        if self._challenge is not None and hasattr(self._challenge, "close"):
            self._challenge.close()
        self._challenge = None

    def _post(self, kind: str, severity: str, **detail: Any) -> None:
        if self.bus is not None:
            self.bus.post(Event(kind, "identity", {"severity": severity, **detail}))
