"""read_card on photographed cards: outline, flattening, orientation, QR, portrait, refusals."""

from __future__ import annotations

import logging
import statistics

import cv2
import numpy as np
import pytest

from edge.errors import BadInput
from edge.identity.card import CARD_SIZE, CardNotFound, QrNotFound, find_card, read_card
from edge.identity.cccd import CAN_CUOC_FROM, CccdInvalid
from edge.vision.qr import decode_qr
from tests.cards import (
    PORTRAIT_BOX,
    QR_BOX,
    TODAY,
    cached_scene,
    empty_platen,
    qr_on_paper,
    random_person,
    scene,
)

SEEDS = range(60)
# The drawn face on the generated card: an ellipse centred in the portrait frame, 110 x 140 px.
_px, _py, _pw, _ph = PORTRAIT_BOX
FACE_BOX = (_px + _pw // 2 - 55, _py + _ph // 2 - 80, 110, 140)


def skin_blobs(bgr: np.ndarray) -> list[tuple[int, int, int, int]]:
    """A stand-in for the face module: boxes of skin-coloured blobs (the drawn face)."""
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    mask = cv2.inRange(hsv, (0, 35, 80), (25, 255, 255))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((9, 9), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [cv2.boundingRect(c) for c in contours if cv2.contourArea(c) > 2000]


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


@pytest.mark.slow  # 13 s: it makes the 60 moderate scenes the later tests reuse
def test_moderate_scenes_give_the_right_card_outline_orientation_and_portrait() -> None:
    corner_errors, ious = [], []
    for seed in SEEDS:
        s = cached_scene(seed, "moderate")
        reading = read_card(s.image, find_face=skin_blobs, today=TODAY)
        person = s.person
        assert reading.card.as_dict() == {
            "id_number": person.id_number,
            "name": person.name,
            "date_of_birth": person.date_of_birth.isoformat(),
            "sex": person.sex,
            "address": person.address,
            "issue_date": person.issue_date.isoformat(),
            "old_id": person.old_id or None,
            # a card issued from 1 July 2024 is a "thẻ Căn cước" (docs/identity-qr.md)
            "card_generation": "cccd" if person.issue_date < CAN_CUOC_FROM else "can_cuoc_2024",
            "cancelled_id": None,
            "father_name": None,
            "mother_name": None,
        }, seed
        assert reading.card_quad is not None, seed
        error = np.abs(np.array(reading.card_quad) - s.card_quad).max()
        corner_errors.append(error)
        assert error < 10, (seed, error)  # also proves the 180° turn was undone
        assert reading.flat is not None and reading.flat.shape == (CARD_SIZE[1], CARD_SIZE[0], 3)
        assert reading.face_found and reading.portrait_box is not None, seed
        # The stand-in finder may see only part of a face under glare; where it is is what counts.
        x, y, w, h = reading.portrait_box
        fx, fy, fw, fh = FACE_BOX
        assert fx <= x + w / 2 <= fx + fw and fy <= y + h / 2 <= fy + fh, (seed, (x, y, w, h))
        ious.append(iou(reading.portrait_box, FACE_BOX))
        assert reading.portrait() is not None
    assert any(cached_scene(seed, "moderate").upside_down for seed in SEEDS)
    assert statistics.median(ious) > 0.7
    print(
        f"\nread_card on {len(SEEDS)} moderate scenes: all read; corner error median "
        f"{statistics.median(corner_errors):.1f} px, max {max(corner_errors):.1f} px"
    )


def test_flattened_card_has_its_qr_at_the_top_right() -> None:
    for seed in (0, 1, 2, 3):
        s = cached_scene(seed, "moderate")
        reading = read_card(s.image, today=TODAY)
        (code,) = decode_qr(reading.flat)
        qx, qy, side = QR_BOX
        assert np.hypot(code.center[0] - (qx + side / 2), code.center[1] - (qy + side / 2)) < 15
        # the reading's QR corners are frame coordinates
        assert np.hypot(*(np.array(reading.qr.center) - s.qr_quad.mean(axis=0))) < 8


@pytest.mark.slow
def test_heavy_scenes_are_read_at_a_minimum_rate_and_nothing_is_misread() -> None:
    read = 0
    for seed in range(30):
        s = cached_scene(seed, "heavy")
        try:
            reading = read_card(s.image, today=TODAY)
        except (CardNotFound, QrNotFound):
            continue
        assert reading.card.to_payload() == s.payload, seed
        read += 1
    print(f"\nread_card on heavy scenes: {read}/30 = {read / 30:.0%}")
    # Measured 9/30 (30 %) with OpenCV 5.0.0.93 and zxing-cpp 3.1.1 (the scenes are seeded, so
    # the figure is the same on every run); a little room for a library update, none for a card
    # finder that stopped coping with glare, blur and tilt.
    assert read >= 7, f"{read}/30"


def test_without_a_face_finder_there_is_no_portrait() -> None:
    reading = read_card(cached_scene(0, "moderate").image, today=TODAY)
    assert reading.face_found is False
    assert reading.portrait_box is None and reading.portrait() is None
    assert reading.flat is not None


def test_face_finder_that_finds_nothing_or_several() -> None:
    image = cached_scene(1, "moderate").image
    assert read_card(image, find_face=lambda flat: [], today=TODAY).face_found is False
    boxes = [(900, 10, 50, 50), (10, 10, 40, 40), (-20, 300, 120, 400), (800, 500, 200, 200)]
    reading = read_card(image, find_face=lambda flat: boxes, today=TODAY)
    # the largest box after clipping to the card wins
    assert reading.portrait_box == (0, 300, 100, 240)
    assert reading.face_found is True


def test_empty_platen_is_card_not_found() -> None:
    with pytest.raises(CardNotFound) as caught:
        read_card(empty_platen(4))
    err = caught.value
    assert isinstance(err, BadInput)
    assert err.message_vi.startswith("Không tìm thấy thẻ Căn cước công dân.")
    assert "no ID card" in err.message_en
    assert find_card(cv2.cvtColor(empty_platen(4), cv2.COLOR_BGR2GRAY)) is None


def test_card_without_a_readable_qr_is_qr_not_found() -> None:
    s = scene(11, "moderate", qr=False)
    with pytest.raises(QrNotFound) as caught:
        read_card(s.image, today=TODAY)
    assert caught.value.message_vi.startswith("Không tìm thấy mã QR trên thẻ.")
    assert "đặt thẻ ngay ngắn dưới camera" in caught.value.message_vi
    assert find_card(cv2.cvtColor(s.image, cv2.COLOR_BGR2GRAY)) is not None


def test_card_with_an_invalid_payload_is_refused_without_logging_its_data(caplog) -> None:
    person = random_person(np.random.default_rng(3))
    year = person.id_number[4:6]
    other = f"{(int(year) + 1) % 100:02d}"
    bad = person.payload.replace(
        person.id_number, person.id_number[:4] + other + person.id_number[6:]
    )
    s = scene(12, "moderate", person=person, payload=bad)
    with caplog.at_level(logging.DEBUG), pytest.raises(CccdInvalid) as caught:
        read_card(s.image, today=TODAY)
    assert caught.value.rule == "birth_year"
    logged = caplog.text + caught.value.message_vi + caught.value.message_en
    assert "QR refused" in caplog.text
    for value in (person.id_number[:6], person.name, person.address, person.old_id or "∅"):
        assert value not in logged


def test_a_qr_without_a_card_outline_reads_the_card_but_no_portrait() -> None:
    person = random_person(np.random.default_rng(4))

    def must_not_run(flat: np.ndarray) -> list:
        raise AssertionError("no portrait can come from a frame without the card")

    reading = read_card(qr_on_paper(person.payload, 1), find_face=must_not_run, today=TODAY)
    assert reading.card.to_payload() == person.payload
    assert reading.card_quad is None and reading.flat is None
    assert reading.face_found is False and reading.portrait_box is None


def test_grey_images_are_read_and_non_images_refused() -> None:
    s = cached_scene(2, "moderate")
    reading = read_card(cv2.cvtColor(s.image, cv2.COLOR_BGR2GRAY), today=TODAY)
    assert reading.card.id_number == s.person.id_number
    assert reading.flat.shape == (CARD_SIZE[1], CARD_SIZE[0], 3)
    bgra = read_card(cv2.cvtColor(s.image, cv2.COLOR_BGR2BGRA), today=TODAY)
    assert bgra.flat.shape == (CARD_SIZE[1], CARD_SIZE[0], 3)
    assert bgra.flat[..., 0].mean() != bgra.flat[..., 2].mean()  # colour kept for the face step
    with pytest.raises(BadInput):
        read_card(np.zeros((10, 10), np.float64))


def test_reading_repr_hides_the_personal_data() -> None:
    s = cached_scene(3, "moderate")
    text = repr(read_card(s.image, today=TODAY))
    assert s.person.name not in text and s.person.id_number not in text
