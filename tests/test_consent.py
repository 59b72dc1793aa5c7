"""Consent (Decree 13/2023): recorded with time and text hash, subject sealed, slip printable."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import BadInput
from edge.services.consent import CONSENT_TEXT, PURPOSE_FACE, ConsentStore, text_hash
from edge.store import DataKey, Store
from tests.escpos_readback import paper


@pytest.fixture
def consents(tmp_path: Path):
    store = Store(tmp_path / "kiosk.db")
    store.open()
    key = DataKey.load_or_create(tmp_path / "keys" / "data.key")
    try:
        yield ConsentStore(store, key, kiosk_id="TEST-01"), store
    finally:
        store.close()


def test_consent_is_recorded_with_time_text_and_sealed_subject(consents) -> None:
    c, store = consents
    record = c.record(
        session_id="s1", purpose=PURPOSE_FACE, id_number="001099012345", name="Nguyễn Văn Mẫu"
    )
    assert c.find("s1", PURPOSE_FACE) == record
    assert c.find("s2", PURPOSE_FACE) is None
    assert record.text_hash == text_hash(PURPOSE_FACE)
    assert record.kiosk_id == "TEST-01" and record.given_at > 0
    assert c.subject(record) == {"id_number": "001099012345", "name": "Nguyễn Văn Mẫu"}
    raw = store.path.read_bytes() + store.path.with_name("kiosk.db-wal").read_bytes()
    assert b"001099012345" not in raw and "Nguyễn Văn Mẫu".encode() not in raw


def test_unknown_purpose_is_refused(consents) -> None:
    c, _ = consents
    with pytest.raises(BadInput):
        c.record(session_id="s1", purpose="marketing", id_number="1", name="x")


def test_consent_text_is_vietnamese_first() -> None:
    text = CONSENT_TEXT[PURPOSE_FACE]["vi"]
    assert "Tôi đồng ý" in text and "không được lưu lại" in text


def test_consent_slip_prints_text_time_and_masked_id(consents) -> None:
    c, _ = consents
    record = c.record(
        session_id="s1", purpose=PURPOSE_FACE, id_number="001099012345", name="Nguyễn Văn Mẫu"
    )
    data = c.slip(record, paper_width_mm=80, profile="TM-T88V", timezone="Asia/Ho_Chi_Minh")
    assert data.startswith(b"\x1b@") and b"\x1dV" in data[-8:]
    sheet = paper(data)
    assert sheet.height > 400  # the whole consent text is on the slip
    assert b"001099012345" not in data  # printed as bitmap text, and masked anyway
