"""Consent under Law 91/2025/QH15: each data kind named with its purpose and recipients, the
text's version and hash recorded (no personal data in the clear), the docs' hash equal to the
code's, the slip printable, and a refusal that leaves the services needing no personal data."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from edge.errors import BadInput
from edge.receipts import Receipt
from edge.services.consent import (
    CURRENT_VERSION,
    DATA_KINDS,
    PURPOSE_ECOPY,
    PURPOSE_FACE,
    ConsentStore,
    consent_text,
    text_hash,
)
from edge.store import DataKey, Store
from tests.escpos_readback import paper

DOCS = Path(__file__).resolve().parents[1] / "docs" / "consent.md"
SPEECH_MAX = 600  # web_ui/live.py SAY_MAX_CHARS: each block is one data-say paragraph


@pytest.fixture
def consents(tmp_path: Path):
    store = Store(tmp_path / "kiosk.db")
    store.open()
    key = DataKey.load_or_create(tmp_path / "keys" / "data.key")
    try:
        yield ConsentStore(store, key, kiosk_id="TEST-01"), store
    finally:
        store.close()


def _block(lang: str, start: str) -> str:
    """The one block of the current text that starts with start (a numbered data kind)."""
    found = [b for b in consent_text(PURPOSE_ECOPY, lang) if b.startswith(start)]  # type: ignore[arg-type]
    assert len(found) == 1, start
    return found[0]


# Per data kind: the block that names it, and what it must say (the data, its purpose, its
# recipients or, for the face, that it goes nowhere), in Vietnamese and in English.
KINDS = {
    "id_card": (
        (
            "Một.",
            [
                "thẻ Căn cước",
                "mã QR",
                "chip",
                "để xác định tôi",
                "máy chủ của trung tâm",
                "cơ quan chứng thực",
            ],
        ),
        (
            "One.",
            [
                "Căn cước card",
                "QR code",
                "chip",
                "to identify me",
                "centre's server",
                "certifying agency",
            ],
        ),
    ),
    "face": (
        (
            "Hai.",
            [
                "Ảnh khuôn mặt",
                "sinh trắc học",
                "nhạy cảm",
                "so khớp với ảnh trên thẻ",
                "bộ nhớ của ki-ốt",
                "không lưu",
                "không gửi đi",
                "xóa",
            ],
        ),
        (
            "Two.",
            [
                "face image",
                "biometric",
                "sensitive",
                "compare with the photo",
                "kiosk's memory only",
                "never stored",
                "never sent",
                "erased",
            ],
        ),
    ),
    "document": (
        (
            "Ba.",
            [
                "Nội dung giấy tờ",
                "chứng thực bản sao",
                "máy chủ của trung tâm",
                "cơ quan chứng thực",
            ],
        ),
        (
            "Three.",
            [
                "contents of the documents",
                "certify the copy",
                "centre's server",
                "certifying agency",
            ],
        ),
    ),
    "contact": (
        ("Bốn.", ["email", "ví điện tử", "số điện thoại", "gửi kết quả", "máy chủ của trung tâm"]),
        ("Four.", ["email", "e-wallet", "phone number", "send me the result", "centre's server"]),
    ),
    "address": (
        ("Năm.", ["Địa chỉ", "bưu điện", "gửi kết quả", "trung tâm", "Bưu điện Việt Nam"]),
        ("Five.", ["address", "by post", "send the result", "centre", "Vietnam Post"]),
    ),
}


def test_every_data_kind_has_its_check() -> None:
    assert set(KINDS) == set(DATA_KINDS)


@pytest.mark.parametrize("kind", DATA_KINDS)
def test_consent_names_each_data_kind_its_purpose_and_recipients(kind: str) -> None:
    for lang, (start, phrases) in zip(("vi", "en"), KINDS[kind], strict=True):
        block = _block(lang, start)
        missing = [p for p in phrases if p not in block]
        assert not missing, (kind, lang, missing)
    # Only the face stays on the kiosk: no other kind claims that.
    if kind != "face":
        assert "không gửi đi" not in _block("vi", KINDS[kind][0][0])


def test_consent_names_controller_law_retention_rights_and_refusal() -> None:
    vi = " ".join(consent_text(PURPOSE_ECOPY, "vi"))
    assert vi.startswith("Tôi đồng ý") and "91/2025/QH15" in vi
    assert "Trung tâm phục vụ hành chính công" in vi  # who controls the data
    assert "tối đa 7 ngày" in vi and "thời hạn pháp luật quy định" in vi  # retention
    for right in (
        "được biết",
        "xem",
        "sửa",
        "xóa",
        "hạn chế xử lý",
        "rút lại sự đồng ý",
        "khiếu nại",
        "tại quầy",
    ):
        assert right in vi, right
    assert "hướng dẫn thủ tục" in vi and "số thứ tự" in vi and "nhân viên" in vi
    assert "13/2023" not in vi  # the replaced decree is no longer cited


def test_each_block_can_be_read_aloud() -> None:
    for lang in ("vi", "en"):
        blocks = consent_text(PURPOSE_ECOPY, lang)  # type: ignore[arg-type]
        assert len(blocks) == 8
        assert all(0 < len(b) < SPEECH_MAX for b in blocks), [len(b) for b in blocks]


def test_hash_is_sha256_of_the_exact_text_and_language() -> None:
    version = CURRENT_VERSION[PURPOSE_ECOPY]
    shown = f"{PURPOSE_ECOPY}/{version}/vi\n" + "\n\n".join(consent_text(PURPOSE_ECOPY, "vi"))
    assert text_hash(PURPOSE_ECOPY, "vi") == hashlib.sha256(shown.encode()).hexdigest()
    assert text_hash(PURPOSE_ECOPY, "vi") != text_hash(PURPOSE_ECOPY, "en")
    assert text_hash(PURPOSE_FACE, "vi") != text_hash(PURPOSE_ECOPY, "vi")


def test_docs_list_the_text_version_and_hash_the_code_has() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    version = CURRENT_VERSION[PURPOSE_ECOPY]
    for lang in ("vi", "en"):
        stated = re.search(
            rf"^\| `{PURPOSE_ECOPY}` \| `{re.escape(version)}` \| `{lang}` \| `([0-9a-f]{{64}})` \|",
            docs,
            re.M,
        )
        assert stated, f"docs/consent.md has no hash row for {version}/{lang}"
        assert stated.group(1) == text_hash(PURPOSE_ECOPY, lang)  # type: ignore[arg-type]
        # The text in the docs is the text in the code, block by block.
        section = re.search(
            rf"<!-- consent {PURPOSE_ECOPY}/{re.escape(version)}/{lang} -->\n(.*?)\n<!-- end -->",
            docs,
            re.S,
        )
        assert section, f"docs/consent.md has no {lang} text for {version}"
        blocks = tuple(line[2:] for line in section.group(1).splitlines() if line.startswith("> "))
        assert blocks == consent_text(PURPOSE_ECOPY, lang)  # type: ignore[arg-type]


def test_record_stores_version_language_and_hash_and_no_personal_data(consents) -> None:
    c, store = consents
    record = c.record(
        session_id="s1",
        purpose=PURPOSE_ECOPY,
        id_number="001099012345",
        name="Nguyễn Văn Mẫu",
        lang="en",
    )
    assert c.find("s1", PURPOSE_ECOPY) == record
    assert c.find("s2", PURPOSE_ECOPY) is None
    row = store.query(
        "SELECT purpose, version, lang, text_hash FROM consents WHERE id = ?", (record.id,)
    )[0]
    assert tuple(row) == (PURPOSE_ECOPY, "2026.1", "en", text_hash(PURPOSE_ECOPY, "en"))
    assert record.kiosk_id == "TEST-01" and record.given_at > 0
    assert c.subject(record) == {"id_number": "001099012345", "name": "Nguyễn Văn Mẫu"}
    store.close()  # checkpoint: what the disk holds, database and log
    raw = b"".join(p.read_bytes() for p in store.path.parent.glob("kiosk.db*"))
    assert b"2026.1" in raw  # the version is there in the clear...
    assert b"001099012345" not in raw and "Nguyễn Văn Mẫu".encode() not in raw  # ...no person
    store.open()


def test_unknown_purpose_or_language_is_refused(consents) -> None:
    c, _ = consents
    with pytest.raises(BadInput):
        c.record(session_id="s1", purpose="marketing", id_number="1", name="x")
    with pytest.raises(BadInput):
        c.record(session_id="s1", purpose=PURPOSE_ECOPY, id_number="1", name="x", lang="fr")  # type: ignore[arg-type]


def test_consent_slip_prints_text_version_time_and_masked_id(consents) -> None:
    c, _ = consents
    record = c.record(
        session_id="s1", purpose=PURPOSE_ECOPY, id_number="001099012345", name="Nguyễn Văn Mẫu"
    )
    data = c.slip(record, paper_width_mm=80, profile="TM-T88V", timezone="Asia/Ho_Chi_Minh")
    assert data.startswith(b"\x1b@") and b"\x1dV" in data[-8:]
    sheet = paper(data)
    receipt = Receipt(paper_width_mm=80, profile="TM-T88V")
    text_height = sum(
        receipt.render_text(block, size=20).height for block in consent_text(PURPOSE_ECOPY, "vi")
    )
    assert text_height > 800 and sheet.height > text_height  # all eight blocks are on the slip
    assert b"001099012345" not in data  # printed as bitmap text, and masked anyway
