"""The identification session end to end on real models: a photographed card with a real
portrait, consent, a live face, a liveness challenge; failures, timeouts and privacy."""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.events import EventBus
from edge.identity.card import read_card
from edge.services.consent import PURPOSE_ECOPY, ConsentStore
from edge.services.identify import ConsentRequired, State, VerificationSession, WrongStep
from edge.store import DataKey, Store
from edge.vision.face import FaceVerifier, find_faces
from edge.vision.liveness import LivenessChallenge
from tests import cards
from tests.test_face import card_photo, load
from tests.test_liveness import turning_frames


def card_scene_with_portrait(
    face_name: str | None, seed: int = 7
) -> tuple[np.ndarray, cards.Person]:
    """A generated CCCD whose portrait is a real photo (degraded like a card photo), on the
    platen, photographed at an angle; face_name None leaves the portrait blank (worn, glare)."""
    rng = np.random.default_rng(seed)
    person = cards.random_person(rng)
    card = np.array(cards.render_card(person, rng))[:, :, ::-1].copy()
    x, y, w, h = cards.PORTRAIT_BOX
    if face_name is None:
        card[y : y + h, x : x + w] = 210
    else:
        card[y : y + h, x : x + w] = cv2.resize(card_photo(face_name), (w, h))
    frame = cards.platen(rng)
    quad = cards._placement(rng, 700, 4, 0.05)
    frame, _ = cards._paste(frame, card, quad)
    return frame, person


@pytest.fixture(scope="module")
def verifier() -> FaceVerifier:
    return FaceVerifier()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path: Path, verifier: FaceVerifier):
    store = Store(tmp_path / "kiosk.db")
    store.open()
    key = DataKey.load_or_create(tmp_path / "keys" / "data.key")
    bus = EventBus()
    bus.start()
    clock = Clock()
    consents = ConsentStore(store, key, kiosk_id="TEST-01")

    def session(kind: str = "turn_right") -> VerificationSession:
        return VerificationSession(
            consents=consents,
            verifier=verifier,
            new_challenge=functools.partial(LivenessChallenge, kind),
            bus=bus,
            clock=clock,
        )

    try:
        yield session, store, bus, clock, tmp_path
    finally:
        bus.stop()
        store.close()


def test_card_holder_is_verified(world) -> None:
    make, store, _, _, _ = world
    frame, person = card_scene_with_portrait("obama.jpg")
    reading = read_card(frame, find_face=find_faces)
    assert reading.card.id_number == person.id_number and reading.face_found
    s = make()
    assert s.card_read(reading).state == State.CONSENT
    with pytest.raises(WrongStep):
        s.submit_face(load("obama2.jpg"))  # no face check before consent
    assert s.give_consent(True).state == State.FACE
    assert store.query("SELECT purpose FROM consents")[0][0] == PURPOSE_ECOPY
    step = s.submit_face(load("obama2.jpg"))  # another photo of the same man
    assert step.state == State.LIVENESS
    assert step.challenge_vi == "Vui lòng quay đầu sang phải"
    for image, t in turning_frames("obama2.jpg", -5):
        step = s.liveness_frame(image, t)
        if step.state != State.LIVENESS:
            break
    assert step.state == State.VERIFIED and step.message_vi == "Xác minh danh tính thành công."
    assert s._card_template is None  # face data dropped as soon as it was used


def test_someone_else_gets_three_tries_then_staff(world) -> None:
    make, _, bus, clock, _ = world
    frame, _ = card_scene_with_portrait("obama.jpg")
    s = make()
    s.card_read(read_card(frame, find_face=find_faces))
    s.give_consent(True)
    tries = []
    for name in ("biden.jpg", "grace_hopper.jpg"):
        tries.append(s.submit_face(load(name)))
        clock.now += 3.0  # the reason stays on screen 3 s before the next try
    assert [t.state for t in tries] == [State.FACE, State.FACE]
    assert [t.tries_left for t in tries] == [2, 1]
    assert {t.reason for t in tries} == {"no_match"}
    last = s.submit_face(load("astronaut.jpg"))
    assert last.state == State.STAFF and "nhân viên" in last.message_vi
    bus.drain()
    (event,) = bus.recent("identity.")
    assert event.kind == "identity.face_failures" and event.detail["tries"] == 3


def test_a_still_photo_fails_the_liveness_try(world) -> None:
    make, _, _, _, _ = world
    frame, _ = card_scene_with_portrait("obama.jpg")
    s = make("turn_left")
    s.card_read(read_card(frame, find_face=find_faces))
    s.give_consent(True)
    photo = load("obama2.jpg")
    assert s.submit_face(photo).state == State.LIVENESS
    step = None
    for i in range(60):  # the same picture held up: no motion at all
        step = s.liveness_frame(photo, i * 0.2)
        if step.state != State.LIVENESS:
            break
    assert step.state == State.FACE and step.tries_left == 2
    assert "liveness" in step.detail


def test_declining_consent_ends_with_staff_help_and_no_face_processing(world) -> None:
    make, store, bus, _, _ = world
    frame, _ = card_scene_with_portrait("grace_hopper.jpg", seed=3)
    s = make()
    s.card_read(read_card(frame, find_face=find_faces))
    assert s.give_consent(False).state == State.DECLINED
    assert store.query("SELECT COUNT(*) FROM consents")[0][0] == 0
    bus.drain()  # staff are called, not only promised; the event names no one
    (called,) = bus.recent("help.requested")
    assert called.detail == {
        "severity": "info",
        "reason": "consent_declined",
        "screen": "ecopy.staff",
    }
    with pytest.raises(WrongStep):
        s.submit_face(load("grace_hopper.jpg"))


def test_face_check_refuses_without_a_stored_consent(world) -> None:
    make, store, _, _, _ = world
    frame, _ = card_scene_with_portrait("obama.jpg")
    s = make()
    s.card_read(read_card(frame, find_face=find_faces))
    s.give_consent(True)
    with store.transaction() as conn:
        conn.execute("DELETE FROM consents")  # the record is what counts, not a flag in RAM
    with pytest.raises(ConsentRequired):
        s.submit_face(load("obama2.jpg"))


def test_card_without_a_visible_portrait_asks_again(world) -> None:
    make, _, _, _, _ = world
    frame, _ = card_scene_with_portrait(None)
    s = make()
    step = s.card_read(read_card(frame, find_face=find_faces))
    assert step.state == State.WAITING_CARD and "ảnh chân dung" in step.detail


def test_walking_away_expires_and_wipes_the_session(world) -> None:
    make, _, _, clock, _ = world
    frame, _ = card_scene_with_portrait("obama.jpg")
    s = make()
    s.card_read(read_card(frame, find_face=find_faces))
    clock.now += 60
    assert s.tick().state == State.CONSENT
    clock.now += 61
    assert s.tick().state == State.EXPIRED
    assert s.card is None and s._card_template is None


def test_no_face_data_reaches_the_state_directory(world, verifier: FaceVerifier) -> None:
    make, store, _, _, state_dir = world
    frame, _ = card_scene_with_portrait("obama.jpg")
    reading = read_card(frame, find_face=find_faces)
    s = make()
    s.card_read(reading)
    s.give_consent(True)
    s.submit_face(load("obama2.jpg"))
    for image, t in turning_frames("obama2.jpg", -5):
        if s.liveness_frame(image, t).state != State.LIVENESS:
            break
    s.close()
    store.conn.execute("PRAGMA wal_checkpoint(FULL)")
    files = sorted(p.relative_to(state_dir).as_posix() for p in state_dir.rglob("*") if p.is_file())
    assert files == ["keys/data.key", "kiosk.db", "kiosk.db-shm", "kiosk.db-wal"]
    # The embedding the session used is nowhere on disk (not even its first bytes).
    live = verifier.template(load("obama2.jpg"))
    needle = live.vector.astype(np.float32).tobytes()[:16]
    blob = b"".join(p.read_bytes() for p in state_dir.rglob("*") if p.is_file())
    assert needle not in blob
