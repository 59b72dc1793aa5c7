"""The face step as the citizen lives it (issue 17), on real models and real photos with a fake
clock: a card still under the camera and an empty view use no try, a dark or turned face is
told why without using a try, a face that does not match uses one and waits 3 s with the
reason shown, the liveness challenge counts down, and after the last try staff are called and
the session waits for them past every timeout."""

from __future__ import annotations

import cv2
import numpy as np

from edge.identity.card import read_card
from edge.services.identify import (
    MAX_YAW,
    RETRY_GAP_S,
    TIMEOUTS,
    State,
    VerificationSession,
    face_quality,
)
from edge.vision.face import find_faces
from tests import test_identify
from tests.test_face import load
from tests.test_identify import card_scene_with_portrait

# The same real models and fake-clock session factory as tests/test_identify.py.
verifier = test_identify.verifier
world = test_identify.world

WRONG = ("biden.jpg", "grace_hopper.jpg", "astronaut.jpg")


def at_face_step(make) -> tuple[VerificationSession, np.ndarray]:
    """A session whose card (Obama's portrait) is read and whose consent is given; the scene."""
    scene, _ = card_scene_with_portrait("obama.jpg")
    s = make()
    assert s.card_read(read_card(scene, find_face=find_faces)).state == State.CONSENT
    assert s.give_consent(True).state == State.FACE
    return s, scene


def darker(image: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def rotated(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)


def test_a_card_still_under_the_camera_is_no_try(world) -> None:
    make, _, _, clock, _ = world
    s, scene = at_face_step(make)
    for _ in range(5):  # the card lies there for a while: every frame says so, none counts
        step = s.submit_face(scene)
        clock.now += 0.3
    assert step.state == State.FACE and step.tries_left == 3
    assert step.reason == "card_in_view"
    assert step.reason_vi == "Cất thẻ đi, nhìn vào camera."
    assert step.retry_at is None  # looks again at once: the next frame may be the face
    # The card taken away, the citizen in front: the check goes on, all tries intact.
    assert s.submit_face(load("obama2.jpg")).state == State.LIVENESS


def test_no_face_in_view_is_no_try(world) -> None:
    make, _, _, clock, _ = world
    s, _ = at_face_step(make)
    empty = np.full((720, 960, 3), 120, np.uint8)
    cat = load("chelsea.jpg")  # a cat: the detector finds no human face in it
    for frame in (empty, cat, empty, cat):
        step = s.submit_face(frame)
        clock.now += 0.3
        assert step.state == State.FACE and step.reason == "no_face"
    assert step.tries_left == 3 and s.failures == 0


def test_a_dark_face_is_told_why_and_uses_no_try(world) -> None:
    make, _, _, clock, _ = world
    s, _ = at_face_step(make)
    dark = darker(load("obama2.jpg"), 0.3)  # the right person, in a dim room
    assert find_faces(dark), "the detector still sees the darkened face"
    step = s.submit_face(dark)
    assert step.state == State.FACE and step.reason == "too_dark"
    assert step.reason_vi.startswith("Ánh sáng quá tối")
    assert step.tries_left == 3
    assert step.as_dict()["seconds_left"] == 1.0 and step.as_dict()["reason"] == "too_dark"
    clock.now += 1.0
    assert s.submit_face(load("obama2.jpg")).state == State.LIVENESS  # lights on: it goes on


def test_a_tilted_face_is_asked_to_look_straight_and_uses_no_try(world) -> None:
    make, _, _, _, _ = world
    s, _ = at_face_step(make)
    tilted = rotated(load("obama.jpg"), 40)
    assert find_faces(tilted), "the detector still sees the tilted face"
    step = s.submit_face(tilted)
    assert step.reason == "not_frontal" and step.tries_left == 3
    assert step.reason_vi == "Hãy nhìn thẳng vào camera."


def test_face_quality_on_the_detectors_keypoints(verifier) -> None:
    upright = load("obama.jpg")
    (face,) = verifier.detector.detect(upright)
    assert face_quality(upright, face) == ""
    far = cv2.resize(upright, None, fx=0.5, fy=0.5)  # a face ~80 px wide in a 1040 px frame
    far = cv2.copyMakeBorder(far, 300, 300, 400, 400, cv2.BORDER_CONSTANT, value=(120,) * 3)
    small = verifier.detector.detect(far)
    assert small and face_quality(far, small[0]) == "too_small"
    # The nose far off the eyes' midpoint: a head turned aside (keypoints moved, as measured).
    (rx, ry), (lx, ly), (nx, ny), *rest = face.keypoints
    turned = face.__class__(
        face.box, face.score, ((rx, ry), (lx, ly), (nx + (MAX_YAW + 0.1) * (lx - rx), ny), *rest)
    )
    assert face_quality(upright, turned) == "not_frontal"


def test_a_mismatch_uses_a_try_and_the_next_waits_3_s(world) -> None:
    make, _, _, clock, _ = world
    s, _ = at_face_step(make)
    step = s.submit_face(load("biden.jpg"))
    assert step.state == State.FACE and step.reason == "no_match" and step.tries_left == 2
    assert step.reason_vi == "Khuôn mặt không khớp với ảnh trên thẻ."
    assert step.retry_at == clock.now + RETRY_GAP_S and step.seconds_left == RETRY_GAP_S
    clock.now += 1.0
    # The right face at once: not looked at yet, the reason stays, no try is used either way.
    held = s.submit_face(load("obama2.jpg"))
    assert held.state == State.FACE and held.reason == "no_match" and held.tries_left == 2
    assert held.as_dict()["seconds_left"] == 2.0
    clock.now += 1.0
    assert s.submit_face(load("grace_hopper.jpg")).tries_left == 2  # still inside the 3 s
    clock.now += 1.0
    step = s.submit_face(load("obama2.jpg"))
    assert step.state == State.LIVENESS and step.tries_left == 2


def test_the_liveness_challenge_counts_down(world) -> None:
    make, _, _, _, _ = world
    s, _ = at_face_step(make)
    photo = load("obama2.jpg")
    step = s.submit_face(photo)
    assert step.state == State.LIVENESS and step.seconds_left == 8.0
    step = s.liveness_frame(photo, 100.0)
    assert step.seconds_left == 8.0  # the countdown starts with the first frame
    step = s.liveness_frame(rotated(photo, 1), 102.5)
    assert step.state == State.LIVENESS and step.as_dict()["seconds_left"] == 5.5
    assert step.challenge_vi  # the instruction is there to show, large, beside the count


def test_after_the_last_try_staff_are_called_and_the_screen_waits(world) -> None:
    make, _, bus, clock, _ = world
    s, _ = at_face_step(make)
    for name in WRONG:
        step = s.submit_face(load(name))
        clock.now += RETRY_GAP_S
    assert step.state == State.STAFF and step.tries_left == 0
    bus.drain()
    (help_event,) = bus.recent("help.requested")
    assert help_event.source == "identity"
    assert help_event.detail == {
        "severity": "info", "reason": "no_match", "tries": 3, "screen": "ecopy.staff"
    }  # fmt: skip
    # Longer than any timeout the identification has: staff may take a while to come.
    clock.now += 10 * max(TIMEOUTS.values())
    assert s.tick().state == State.STAFF
    assert s.state == State.STAFF and s._card_template is None  # face data gone all the same
