"""read_chip over the simulated reader (the emulated card in process): the good card and every
failure the issue names. The PC/SC path (pcscd + vpcd) is tests/test_chip_pcsc.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.adapters.cardreader_sim import SimCardReader
from edge.identity.chip import ChipError, TrustList, error_text, read_chip
from edge.identity.chip.pa import verify
from edge.identity.mrz import MrzKey
from edge.ports.cardreader import CardRemoved, NoCard
from edge.sim.icao_card import Csca, IcaoCard, synthetic_portrait


@pytest.fixture(scope="module")
def card() -> IcaoCard:
    return IcaoCard()


def _trust(card: IcaoCard) -> TrustList:
    return TrustList.of(card.trust_anchor())


def test_a_good_card_reads_and_passes_passive_authentication(card: IcaoCard) -> None:
    reading = read_chip(SimCardReader(card), card.holder.mrz_key(), _trust(card))
    assert (reading.passive_auth, reading.reason) == ("valid", "ok")
    assert reading.development  # the emulator's CSCA says DEVELOPMENT
    h = card.holder
    data = reading.as_dict()
    assert data["id_number"] == h.id_number
    assert data["name"] == h.name
    assert data["date_of_birth"] == h.date_of_birth.isoformat()
    assert data["sex"] == h.sex
    assert data["address"] == h.address
    assert data["issue_date"] == h.issue_date.isoformat()
    assert data["expiry_date"] == h.expiry_date.isoformat()
    assert data["old_id"] == h.old_id
    assert (data["father_name"], data["mother_name"]) == (h.father_name, h.mother_name)
    assert (data["home_town"], data["features"]) == (h.home_town, h.features)
    assert data["document_number"] == h.id_number[-9:]
    assert data["mrz_sex"] == "F"
    assert data["dg13_unparsed"] == {"16": ["unparsed-entry"]}
    assert data["data_groups_read"] == ["COM", "DG1", "DG2", "DG13", "SOD"]
    assert data["pace_offered"] is True and data["access"] == "BAC"
    assert isinstance(reading.portrait, np.ndarray) and reading.portrait.shape == (320, 240, 3)
    assert data["portrait"] == {"found": True, "width": 240, "height": 320}
    assert "portrait" not in repr(reading) or "hidden" in repr(reading)
    assert h.name not in repr(reading) and h.id_number not in repr(reading)


def test_the_portrait_is_the_image_put_on_the_card() -> None:
    jpeg = synthetic_portrait(200, 260, quality=95)
    card = IcaoCard(portrait_jpeg=jpeg)
    reading = read_chip(SimCardReader(card), card.holder.mrz_key(), _trust(card))
    assert reading.portrait is not None and reading.portrait.shape == (260, 200, 3)
    # the face is drawn skin-coloured in the middle, the background grey
    assert reading.portrait[130, 100].tolist() != reading.portrait[5, 5].tolist()


def test_extended_length_reads_give_the_same_files(card: IcaoCard) -> None:
    short = read_chip(SimCardReader(card), card.holder.mrz_key(), _trust(card))
    long = read_chip(SimCardReader(card), card.holder.mrz_key(), _trust(card), extended_length=True)
    assert long.passive_auth == "valid"
    assert long.fields == short.fields
    assert np.array_equal(long.portrait, short.portrait)  # type: ignore[arg-type]


def test_a_wrong_mrz_key_is_refused_with_a_clear_message(card: IcaoCard) -> None:
    key = card.holder.mrz_key()
    wrong = MrzKey(key.document_number, key.date_of_birth, "300101")
    with pytest.raises(ChipError) as caught:
        read_chip(SimCardReader(card), wrong, _trust(card))
    assert caught.value.rule == "bac_refused"
    assert "does not match the details read from the back" in caught.value.text.en


def test_a_dg2_changed_after_signing_fails_passive_authentication() -> None:
    card = IcaoCard(tampered_dg2=True)
    reading = read_chip(SimCardReader(card), card.holder.mrz_key(), _trust(card))
    assert (reading.passive_auth, reading.reason) == ("invalid", "dg_hash_mismatch:DG2")
    assert not reading.development


def test_an_sod_from_an_unknown_csca_fails_passive_authentication() -> None:
    card = IcaoCard(unknown_csca=True)
    reading = read_chip(SimCardReader(card), card.holder.mrz_key(), _trust(card))
    assert (reading.passive_auth, reading.reason) == ("invalid", "unknown_csca")


def test_no_trust_list_is_never_valid(card: IcaoCard) -> None:
    reading = read_chip(SimCardReader(card), card.holder.mrz_key(), TrustList())
    assert (reading.passive_auth, reading.reason) == ("invalid", "no_trust_list")


def test_a_csca_that_expired_is_refused(card: IcaoCard) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3700)
    reading = read_chip(
        SimCardReader(card), card.holder.mrz_key(), _trust(card), clock=lambda: later
    )
    assert (reading.passive_auth, reading.reason) == ("invalid", "csca_expired")


def test_a_same_named_csca_with_another_key_does_not_validate(card: IcaoCard) -> None:
    impostor = Csca()  # same subject as the development CSCA, a different key
    reading = read_chip(SimCardReader(card), card.holder.mrz_key(), TrustList.of(impostor.der()))
    assert (reading.passive_auth, reading.reason) == ("invalid", "unknown_csca")


def test_a_changed_sod_signature_is_a_bad_signature(card: IcaoCard) -> None:
    sod = card.files[0x011D]
    groups = {1: card.files[0x0101], 2: card.files[0x0102], 13: card.files[0x010D]}
    now = dt.datetime.now(dt.UTC)
    assert verify(sod, groups, _trust(card), now=now).reason == "ok"
    broken = sod[:-10] + bytes([sod[-10] ^ 0x40]) + sod[-9:]  # inside the ECDSA signature
    assert verify(broken, groups, _trust(card), now=now).reason in (
        "bad_signature",
        "sod_malformed",
    )


@pytest.mark.parametrize("after", [1, 5, 12, 40])
def test_a_card_pulled_mid_read_raises_card_removed_and_keeps_nothing(after: int) -> None:
    card = IcaoCard(pull_after=after)
    with pytest.raises(CardRemoved) as caught:
        read_chip(SimCardReader(card), card.holder.mrz_key(), TrustList.of(card.trust_anchor()))
    text = error_text(caught.value)
    assert "moved off the reader" in text.en
    assert text.vi and text.vi != text.en  # translated in the catalog


def test_no_card_on_the_reader() -> None:
    with pytest.raises(NoCard) as caught:
        read_chip(SimCardReader(empty=True), MrzKey("1", "000101", "300101"), TrustList())
    assert "No card was found" in error_text(caught.value).en


def test_secure_messaging_is_required_for_the_data_groups(card: IcaoCard) -> None:
    card.power_on()
    assert card.process(bytes.fromhex("00A4040C07A0000002471001")) == b"\x90\x00"
    assert card.process(bytes.fromhex("00A4020C020101")) == b"\x69\x82"


def test_the_simulation_config_wires_the_emulated_card_and_its_development_anchor(
    tmp_path: Path,
) -> None:
    from edge import config as cfg
    from edge.identity.chip.wiring import chip_reader_from_config
    from edge.sim.icao_card import sample_holder
    from tests.conftest import write_sim_config

    config = cfg.load(write_sim_config(tmp_path, sample_scenes=False))
    assert chip_reader_from_config(config) is None  # [card_reader] adapter = "none"
    chip = chip_reader_from_config(config.simulated())
    assert chip is not None and chip.development
    reading = read_chip(chip.reader, sample_holder().mrz_key(), chip.trust)
    assert (reading.passive_auth, reading.development) == ("valid", True)
    assert not any(tmp_path.rglob("*.jp*g"))  # no portrait written anywhere


def test_a_card_made_from_a_cccd_qr_reads_back_the_same_fields() -> None:
    from edge.identity.cccd import parse_cccd
    from edge.sim.icao_card import CardHolder

    qr = parse_cccd(
        "001099012345|012345678|Đặng Văn Mẫu|01011999|Nam|Số 1 Phố Mẫu, Hà Nội|15062021"
    )
    holder = CardHolder.from_cccd(qr, expiry_date=dt.date(2039, 1, 1), ethnicity="Tày")
    card = IcaoCard(holder)
    reading = read_chip(SimCardReader(card), holder.mrz_key(), _trust(card))
    assert reading.passive_auth == "valid"
    assert {k: reading.fields[k] for k in qr.as_dict()} == qr.as_dict()
    assert reading.fields["ethnicity"] == "Tày"
    assert card.holder.mrz().splitlines()[2].startswith("DANG<<VAN<MAU<")


def test_a_jpeg2000_portrait_is_decoded_too() -> None:
    import cv2

    face = cv2.imdecode(np.frombuffer(synthetic_portrait(), np.uint8), cv2.IMREAD_COLOR)
    ok, jp2 = cv2.imencode(".jp2", face)
    assert ok
    card = IcaoCard(portrait_jpeg=jp2.tobytes())
    reading = read_chip(SimCardReader(card), card.holder.mrz_key(), _trust(card))
    assert (reading.passive_auth, reading.portrait_kind) == ("valid", "jpeg2000")
    assert reading.portrait is not None and reading.portrait.shape == face.shape


class _FlippingSession:
    """The port's session with one response byte flipped on the way (a radio error or an
    attacker between card and reader): the lowest level, faked."""

    def __init__(self, inner: Any, at: int) -> None:
        self.inner, self.at, self.count = inner, at, 0

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        data, sw = self.inner.transmit(apdu)
        self.count += 1
        if self.count == self.at and data:
            data = data[:-1] + bytes([data[-1] ^ 0x01])
        return data, sw

    def close(self) -> None:
        self.inner.close()


def test_a_response_changed_in_transit_fails_its_mac_and_nothing_is_returned(
    card: IcaoCard,
) -> None:
    class Reader:
        def connect(self, timeout: float) -> _FlippingSession:
            return _FlippingSession(SimCardReader(card).connect(timeout), at=12)

    with pytest.raises(ChipError) as caught:
        read_chip(Reader(), card.holder.mrz_key(), _trust(card))
    assert caught.value.rule == "secure_messaging"
    assert "could not be read" in caught.value.text.en
