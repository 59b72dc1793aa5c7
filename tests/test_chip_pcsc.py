"""The chip read through the real PC/SC stack: edge.adapters.cardreader_pcsc (pyscard) ->
libpcsclite -> our own pcscd -> vsmartcard's vpcd -> the bridge -> the emulated card
(edge.sim.icao_card.IcaoCard), or a trivial echo card for the plumbing (tests/vpcd.py).
The same cases as tests/test_chip_read.py (simulated reader), and what only a real stack has:
an empty reader, no reader, no pcscd, a card taken away between two APDUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.adapters.cardreader_pcsc import PcscCardReader, pick_reader
from edge.identity.chip import ChipError, TrustList, read_chip
from edge.identity.mrz import MrzKey
from edge.ports.cardreader import CardRemoved, NoCard, NoReader
from edge.sim.icao_card import IcaoCard, sample_holder, synthetic_portrait
from tests.vpcd import VPCD_PORT, EchoCard, VirtualReader, unavailable, virtual_reader

pytestmark = [
    pytest.mark.pcscd,
    pytest.mark.skipif(unavailable() is not None, reason=str(unavailable())),
]
REPO = Path(__file__).resolve().parent.parent


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


@pytest.fixture
def vreader(tmp_path: Path) -> Iterator[VirtualReader]:
    with virtual_reader(tmp_path / "pcsc") as running:
        yield running
    assert _gone(running.pcscd_pid), "pcscd outlived its fixture"


@pytest.fixture
def reader() -> PcscCardReader:
    return PcscCardReader("")  # the empty part: the first contactless reader, else the first


def test_pick_reader_prefers_the_named_then_the_contactless_reader() -> None:
    names = ["ACS ACR1252 1S CL Reader [ACR1252 Dual Reader SAM] 00 00", "ACS ACR1252 PICC 01 00"]
    assert pick_reader(names, "") == names[1]
    assert pick_reader(names, "sam") == names[0]
    assert pick_reader(names, "omnikey") is None
    assert pick_reader(["Virtual PCD 00 00", "Virtual PCD 00 01"], "") == "Virtual PCD 00 00"
    assert pick_reader([], "") is None


def test_apdus_short_and_extended_pass_through_and_nothing_listens_outside(
    vreader: VirtualReader, reader: PcscCardReader
) -> None:
    vreader.insert(EchoCard)
    session = reader.connect(5.0)
    try:
        assert session.atr == EchoCard.atr
        assert session.transmit(bytes.fromhex("00A4040C07A0000002471001")) == (b"", 0x9000)
        data = bytes(range(200))
        assert session.transmit(b"\x00\xd6\x00\x00" + bytes([len(data)]) + data) == (data, 0x9000)
        # extended length: 4096 bytes back for Le = 0x1000, 1000 bytes of data sent
        answer, sw = session.transmit(bytes.fromhex("00B00000001000"))
        assert sw == 0x9000 and answer == bytes(i & 0xFF for i in range(4096))
        long = bytes(i % 251 for i in range(1000))
        command = b"\x00\xd6\x00\x00\x00" + len(long).to_bytes(2, "big") + long
        assert session.transmit(command) == (long, 0x9000)
        assert vreader.apdus == 4
    finally:
        session.close()
    # vpcd listens on its port inside the fixture's own network namespace only
    listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True, check=True).stdout
    assert f":{VPCD_PORT} " not in listening and f":{VPCD_PORT + 1} " not in listening


def test_a_good_card_reads_and_passes_passive_authentication(
    vreader: VirtualReader, reader: PcscCardReader
) -> None:
    anchor = vreader.insert(IcaoCard)
    assert anchor is not None
    holder = sample_holder()
    reading = read_chip(reader, holder.mrz_key(), TrustList.of(anchor), timeout=5.0)
    assert (reading.passive_auth, reading.reason) == ("valid", "ok")
    data = reading.as_dict()
    assert data["id_number"] == holder.id_number and data["name"] == holder.name
    assert data["date_of_birth"] == holder.date_of_birth.isoformat()
    assert data["expiry_date"] == holder.expiry_date.isoformat()
    assert (data["sex"], data["address"]) == (holder.sex, holder.address)
    assert (data["father_name"], data["mother_name"]) == (holder.father_name, holder.mother_name)
    assert data["data_groups_read"] == ["COM", "DG1", "DG2", "DG13", "SOD"]
    # the portrait decodes, and it is the card's (the emulator's drawn face, same JPEG decoder)
    expected = cv2.imdecode(np.frombuffer(synthetic_portrait(), np.uint8), cv2.IMREAD_COLOR)
    assert reading.portrait is not None and reading.portrait.shape == (320, 240, 3)
    assert (reading.portrait == expected).all()
    assert vreader.apdus > 10  # it went over the wire, APDU by APDU


def test_extended_length_reads_through_pcscd(
    vreader: VirtualReader, reader: PcscCardReader
) -> None:
    anchor = vreader.insert(IcaoCard)
    assert anchor is not None
    key = sample_holder().mrz_key()
    reading = read_chip(reader, key, TrustList.of(anchor), timeout=5.0, extended_length=True)
    assert (reading.passive_auth, reading.reason) == ("valid", "ok")


def test_a_wrong_mrz_key_is_refused(vreader: VirtualReader, reader: PcscCardReader) -> None:
    anchor = vreader.insert(IcaoCard)
    assert anchor is not None
    key = sample_holder().mrz_key()
    wrong = MrzKey(key.document_number, key.date_of_birth, "300101")
    with pytest.raises(ChipError) as caught:
        read_chip(reader, wrong, TrustList.of(anchor), timeout=5.0)
    assert caught.value.rule == "bac_refused"


def test_a_tampered_portrait_fails_passive_authentication(
    vreader: VirtualReader, reader: PcscCardReader
) -> None:
    anchor = vreader.insert(IcaoCard, tampered_dg2=True)
    assert anchor is not None
    reading = read_chip(reader, sample_holder().mrz_key(), TrustList.of(anchor), timeout=5.0)
    assert (reading.passive_auth, reading.reason) == ("invalid", "dg_hash_mismatch:DG2")


def test_an_sod_from_an_unknown_csca_fails_passive_authentication(
    vreader: VirtualReader, reader: PcscCardReader
) -> None:
    anchor = vreader.insert(IcaoCard, unknown_csca=True)
    assert anchor is not None  # the development CSCA: not the one that signed this SOD
    reading = read_chip(reader, sample_holder().mrz_key(), TrustList.of(anchor), timeout=5.0)
    assert (reading.passive_auth, reading.reason) == ("invalid", "unknown_csca")


def test_a_card_leaving_mid_read_is_card_removed(
    vreader: VirtualReader, reader: PcscCardReader
) -> None:
    anchor = vreader.insert(IcaoCard, pull_after=12)  # after BAC, while the files are read
    assert anchor is not None
    with pytest.raises(CardRemoved) as caught:
        read_chip(reader, sample_holder().mrz_key(), TrustList.of(anchor), timeout=5.0)
    assert "the card stopped answering" in str(caught.value)
    assert caught.value.code == "card_removed"


def test_a_card_taken_away_between_two_apdus_is_card_removed(
    vreader: VirtualReader, reader: PcscCardReader
) -> None:
    vreader.insert(EchoCard)
    session = reader.connect(5.0)
    assert session.transmit(b"\x00\xb0\x00\x00\x02\x01\x02") == (b"\x01\x02", 0x9000)
    vreader.pull()  # the card's connection to vpcd closes: the reader's field is empty
    with pytest.raises(CardRemoved):
        session.transmit(b"\x00\xb0\x00\x00\x02\x01\x02")
    session.close()
    with pytest.raises(NoCard):  # and the reader stays usable: empty now
        reader.connect(1.0)


def test_an_empty_reader_is_no_card_within_the_timeout(
    vreader: VirtualReader, reader: PcscCardReader
) -> None:
    started = time.monotonic()
    with pytest.raises(NoCard) as caught:
        reader.connect(1.5)
    waited = time.monotonic() - started
    assert 1.4 <= waited < 3.0, waited
    assert caught.value.code == "no_card" and "1.5 s" in str(caught.value)
    vreader.insert(EchoCard)  # then a card is laid: the same reader finds it
    reader.connect(5.0).close()


def test_no_reader_at_all_is_no_reader(tmp_path: Path) -> None:
    with virtual_reader(tmp_path / "pcsc", with_reader=False):
        with pytest.raises(NoReader) as caught:
            PcscCardReader("").connect(1.0)
        assert caught.value.code == "no_card_reader"
    with pytest.raises(NoReader, match="pcscd"):  # and pcscd itself stopped
        PcscCardReader("").connect(1.0)


def test_a_reader_named_in_config_that_is_not_there_is_no_reader(vreader: VirtualReader) -> None:
    with pytest.raises(NoReader, match="ACR1252"):
        PcscCardReader("ACR1252").connect(1.0)


def test_kiosk_id_chip_reads_through_the_configured_pcsc_reader(
    vreader: VirtualReader, tmp_path: Path
) -> None:
    anchor = vreader.insert(IcaoCard)
    assert anchor is not None
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "csca-test.der").write_bytes(anchor)
    config = tmp_path / "config.toml"
    config.write_text(
        '[kiosk]\nid = "HN-01"\n\n'
        f'[card_reader]\nadapter = "pcsc"\nreader = "Virtual PCD"\ntrust_dir = "{trust}"\n'
        "timeout_s = 5\n"
    )
    holder = sample_holder()
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "PYTHONPATH": str(REPO)}
    env.pop("KIOSK_CONFIG", None)  # PCSCLITE_CSOCK_NAME (set by the fixture) is inherited
    args = ["--config", str(config), "id", "chip", "--json", "--mrz", holder.mrz()]
    done = subprocess.run(
        [sys.executable, "-m", "edge", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["passive_auth"], data["reason"]) == ("valid", "ok")
    assert data["id_number"] == holder.id_number and data["name"] == holder.name
    assert data["portrait"] == {"found": True, "width": 240, "height": 320}
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in written if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".jp2")]
    assert holder.id_number not in done.stderr
