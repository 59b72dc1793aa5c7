"""The chip step of the identification session on real models and the emulated chip card
(edge/sim/icao_card.py behind the simulated reader): the chip's portrait replaces the printed
one, a chip that fails passive authentication or belongs to another card calls staff, a card
that will not read falls back to the printed photo, said and recorded."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from edge.adapters.cardreader_sim import SimCardReader
from edge.events import EventBus
from edge.identity.card import read_card
from edge.identity.chip.pa import TrustList
from edge.identity.chip.wiring import ChipReader
from edge.identity.mrz import parse_td1
from edge.services.consent import ConsentStore
from edge.services.identify import CHIP_SKIP_AFTER_S, State, VerificationSession
from edge.sim.icao_card import CardHolder, IcaoCard, development_csca
from edge.store import DataKey, Store
from edge.vision.face import FaceVerifier, find_faces
from edge.vision.liveness import LivenessChallenge
from tests.test_face import load
from tests.test_identify import Clock, card_scene_with_portrait
from tests.test_liveness import turning_frames

EXPIRY = dt.date(2031, 6, 30)


def chip_jpeg(name: str) -> bytes:
    """A chip portrait as cards carry one (ICAO 9303 part 9: a token face image, here 300x400 px,
    about 20 KB): the face with its margin, cut from a test photo."""
    image = load(name)
    x, y, w, h = find_faces(image)[0]
    crop = image[max(0, y - h // 2) : y + h + h // 2, max(0, x - w // 3) : x + w + w // 3]
    ok, jpeg = cv2.imencode(".jpg", cv2.resize(crop, (300, 400)), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return jpeg.tobytes()


class BackRead:
    """A card reading as the two-sided read gives it: the front's portrait and the back's MRZ."""

    def __init__(self, reading: Any, mrz: Any) -> None:
        self._reading, self.mrz = reading, mrz

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reading, name)


@pytest.fixture(scope="module")
def verifier() -> FaceVerifier:
    return FaceVerifier()


@pytest.fixture
def consents(tmp_path: Path) -> Iterator[ConsentStore]:
    store = Store(tmp_path / "kiosk.db")
    store.open()
    try:
        yield ConsentStore(store, DataKey.load_or_create(tmp_path / "data.key"), kiosk_id="T")
    finally:
        store.close()


@pytest.fixture
def world(consents: ConsentStore, verifier: FaceVerifier):
    bus = EventBus()
    bus.start()
    clock = Clock()
    reader = SimCardReader(empty=True)
    chip = ChipReader(reader, TrustList.of(development_csca().der()), 1.0, True)

    def session(printed: str, chip_face: str | None, **card_faults: Any):
        """A session past consent at the chip step: the card's printed portrait is `printed`,
        its chip's DG2 `chip_face` (None: no card laid on the reader)."""
        frame, _ = card_scene_with_portrait(printed)
        reading = read_card(frame, find_face=find_faces)
        holder = CardHolder.from_cccd(reading.card, expiry_date=EXPIRY)
        if chip_face is not None:
            jpeg = chip_jpeg(chip_face)
            reader.lay(IcaoCard(card_faults.pop("holder", holder), jpeg, **card_faults))
        s = VerificationSession(
            consents=consents,
            verifier=verifier,
            new_challenge=functools.partial(LivenessChallenge, "turn_right"),
            bus=bus,
            clock=clock,
            chip=chip,
        )
        assert s.card_read(BackRead(reading, parse_td1(holder.mrz()))).state == State.CONSENT
        assert s.give_consent(True).state == State.CHIP
        return s

    try:
        yield session, bus, clock, reader
    finally:
        bus.stop()


def test_a_swapped_printed_photo_is_caught_by_the_chip(world) -> None:
    """The printed portrait is someone else's; the chip's (signed) is the holder's: the holder
    passes, and the record says the chip's portrait was used."""
    make, bus, _, _ = world
    s = make(printed="biden.jpg", chip_face="obama.jpg")
    step = s.chip_poll()
    assert step.state == State.FACE and s.portrait_source == "chip" and s.passive_auth == "valid"
    step = s.submit_face(load("obama2.jpg"))
    assert step.state == State.LIVENESS, (step.reason, s.last_score)
    for image, t in turning_frames("obama2.jpg", -5):
        step = s.liveness_frame(image, t)
        if step.state != State.LIVENESS:
            break
    assert step.state == State.VERIFIED
    bus.drain()
    (verified,) = [e for e in bus.recent("identity.") if e.kind == "identity.verified"]
    assert verified.detail["portrait_source"] == "chip"
    assert verified.detail["passive_auth"] == "valid"


def test_the_face_is_compared_with_the_chip_portrait_not_the_printed_one(world) -> None:
    make, _, _, _ = world
    s = make(printed="obama.jpg", chip_face="biden.jpg")
    assert s.chip_poll().state == State.FACE
    step = s.submit_face(load("obama2.jpg"))  # matches the print, not the chip
    assert step.state == State.FACE and step.reason == "no_match"


def test_a_tampered_portrait_calls_staff(world) -> None:
    make, bus, _, _ = world
    s = make(printed="obama.jpg", chip_face="obama.jpg", tampered_dg2=True)
    step = s.chip_poll()
    assert step.state == State.STAFF and step.reason == "chip_not_authentic"
    assert "chip" in step.reason_vi and s.passive_auth == "invalid"
    assert s._card_template is None  # face data dropped
    bus.drain()
    kinds = {e.kind: e.detail for e in bus.recent("")}
    assert kinds["identity.chip_invalid"]["reason"] == "dg_hash_mismatch:DG2"
    assert kinds["help.requested"]["reason"] == "chip_not_authentic"


def test_a_chip_signed_by_an_unknown_authority_calls_staff(world) -> None:
    make, _, _, _ = world
    s = make(printed="obama.jpg", chip_face="obama.jpg", unknown_csca=True)
    step = s.chip_poll()
    assert step.state == State.STAFF and step.reason == "chip_not_authentic"


def test_a_chip_of_another_card_calls_staff(world) -> None:
    make, _, _, _ = world
    frame, _ = card_scene_with_portrait("grace_hopper.jpg", seed=99)
    other = CardHolder.from_cccd(read_card(frame, find_face=find_faces).card, expiry_date=EXPIRY)
    s = make(printed="obama.jpg", chip_face="obama.jpg")
    # The same MRZ key opens it (as a forger would arrange), but the chip holds another person.
    card = s.chip.reader.card
    s.chip.reader.lay(
        IcaoCard(
            CardHolder(**{**vars_of(card.holder), "id_number": other.id_number}),
            chip_jpeg("obama.jpg"),
        )
    )
    s.chip_key = parse_td1(s.chip.reader.card.holder.mrz()).key
    step = s.chip_poll()
    assert step.state == State.STAFF and step.reason == "chip_mismatch"


def vars_of(holder: CardHolder) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(holder, f.name) for f in dataclasses.fields(holder)}


def test_no_card_on_the_reader_waits_then_offers_the_printed_photo(world) -> None:
    make, bus, clock, _ = world
    s = make(printed="obama.jpg", chip_face=None)
    step = s.chip_poll(timeout=0.05)
    assert step.state == State.CHIP and not s.chip_skippable
    clock.now += CHIP_SKIP_AFTER_S
    assert s.chip_poll(timeout=0.05).state == State.CHIP and s.chip_skippable
    assert s.skip_chip().state == State.FACE and s.portrait_source == "card"
    assert s.submit_face(load("obama2.jpg")).state == State.LIVENESS  # against the print
    bus.drain()
    assert [e.detail["reason"] for e in bus.recent("identity.chip_skipped")] == ["skipped"]


def test_a_card_pulled_mid_read_is_asked_for_again(world) -> None:
    make, _, _, reader = world
    s = make(printed="obama.jpg", chip_face="obama.jpg", pull_after=6)
    step = s.chip_poll()
    assert step.state == State.CHIP and step.reason_text is not None
    assert "thẻ" in step.reason_text.vi.lower()
    reader.card.pull_after = None  # laid back and kept still
    assert s.chip_poll().state == State.FACE and s.portrait_source == "chip"


def test_a_misread_back_falls_back_to_the_printed_photo_after_two_refusals(world) -> None:
    make, _, _, reader = world
    s = make(printed="obama.jpg", chip_face="obama.jpg")
    holder = reader.card.holder
    wrong = CardHolder(**{**vars_of(holder), "expiry_date": dt.date(2032, 1, 1)})
    s.chip_key = parse_td1(wrong.mrz()).key  # the OCR took a wrong date off the back
    first = s.chip_poll()
    assert first.state == State.CHIP and first.reason_text is not None
    second = s.chip_poll()
    assert second.state == State.FACE and s.portrait_source == "card"


def test_without_a_reader_or_an_mrz_the_step_is_not_asked(consents, verifier) -> None:
    frame, _ = card_scene_with_portrait("obama.jpg")
    reading = read_card(frame, find_face=find_faces)
    s = VerificationSession(consents=consents, verifier=verifier, new_challenge=lambda **_: None)
    s.card_read(reading)
    assert s.give_consent(True).state == State.FACE and s.portrait_source == "card"


def test_the_pc_simulation_lays_the_chip_of_the_card_it_saw(consents, verifier) -> None:
    """[card_reader] adapter = "sim": the emulated chip carries the card just read (its QR's
    fields, its printed portrait, the back's dates), so the whole flow runs on a PC."""
    from types import SimpleNamespace

    from edge.identity.chip.wiring import chip_reader_from_config

    chip = chip_reader_from_config(
        SimpleNamespace(card_reader=SimpleNamespace(adapter="sim", timeout_s=1.0))
    )
    assert chip is not None and chip.simulate_from_card
    frame, _ = card_scene_with_portrait("obama.jpg")
    reading = read_card(frame, find_face=find_faces)
    holder = CardHolder.from_cccd(reading.card, expiry_date=EXPIRY)
    s = VerificationSession(
        consents=consents, verifier=verifier, new_challenge=lambda **_: None, chip=chip
    )
    s.card_read(BackRead(reading, parse_td1(holder.mrz())))
    assert s.give_consent(True).state == State.CHIP
    assert s.chip_poll().state == State.FACE
    assert s.portrait_source == "chip" and s.passive_auth == "valid"
