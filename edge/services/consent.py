"""Consent to process the citizen's face (Decree 13/2023/ND-CP): explicit, recorded, printable."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from edge.errors import BadInput
from edge.receipts import Receipt
from edge.store import DataKey, Store

PURPOSE_FACE = "face_verification"

# The exact text shown before the citizen taps "Tôi đồng ý". Its hash is stored with the record,
# so a later change of wording cannot be passed off as what this citizen agreed to. It is
# versioned legal data, deliberately not in the gettext catalogs (issue 15): a catalog that is
# missing, stale or re-worded by a translator would change what the screen shows while the
# stored hash still named this text. Both languages live here, and text_hash() is its version
# id: any change of a word is a new version, and old records keep naming the old one.
CONSENT_TEXT = {
    PURPOSE_FACE: {
        "vi": (
            "Tôi đồng ý để ki-ốt chụp ảnh khuôn mặt của tôi và so khớp với ảnh trên thẻ Căn cước "
            "công dân, chỉ để xác minh danh tính cho lần giao dịch này. Ảnh và đặc trưng khuôn "
            "mặt chỉ được xử lý trong bộ nhớ của ki-ốt, không được lưu lại và bị xóa ngay khi "
            "kết thúc giao dịch. Tôi có thể từ chối; khi đó nhân viên sẽ hỗ trợ xác minh."
        ),
        "en": (
            "I agree that the kiosk takes a picture of my face and compares it with the photo on "
            "my citizen ID card, only to verify my identity for this transaction. The picture "
            "and face features are processed in the kiosk's memory only, never stored, and "
            "erased when the transaction ends. I may refuse; staff will then verify me instead."
        ),
    }
}


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    id: str
    session_id: str
    purpose: str
    text_hash: str
    given_at: float
    kiosk_id: str


def text_hash(purpose: str) -> str:
    texts = CONSENT_TEXT[purpose]
    return hashlib.sha256(
        json.dumps(texts, ensure_ascii=False, sort_keys=True).encode()
    ).hexdigest()


class ConsentStore:
    """Consents in SQLite; who consented (ID number, name) is sealed with the data key."""

    def __init__(self, store: Store, key: DataKey, *, kiosk_id: str) -> None:
        self.store = store
        self.key = key
        self.kiosk_id = kiosk_id

    def record(self, *, session_id: str, purpose: str, id_number: str, name: str) -> ConsentRecord:
        if purpose not in CONSENT_TEXT:
            raise BadInput(f"unknown consent purpose {purpose!r}")
        record = ConsentRecord(
            id=uuid.uuid4().hex,
            session_id=session_id,
            purpose=purpose,
            text_hash=text_hash(purpose),
            given_at=time.time(),
            kiosk_id=self.kiosk_id,
        )
        subject = json.dumps({"id_number": id_number, "name": name}, ensure_ascii=False)
        sealed = self.key.encrypt(subject.encode(), aad=record.id.encode())
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO consents(id, session_id, purpose, text_hash, given_at, kiosk_id, "
                "subject) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.session_id,
                    record.purpose,
                    record.text_hash,
                    record.given_at,
                    record.kiosk_id,
                    sealed,
                ),
            )
        return record

    def find(self, session_id: str, purpose: str) -> ConsentRecord | None:
        rows = self.store.query(
            "SELECT id, session_id, purpose, text_hash, given_at, kiosk_id FROM consents "
            "WHERE session_id = ? AND purpose = ? ORDER BY given_at DESC LIMIT 1",
            (session_id, purpose),
        )
        return ConsentRecord(*rows[0]) if rows else None

    def subject(self, record: ConsentRecord) -> dict[str, str]:
        rows = self.store.query("SELECT subject FROM consents WHERE id = ?", (record.id,))
        return json.loads(self.key.decrypt(rows[0][0], aad=record.id.encode()))

    def slip(
        self, record: ConsentRecord, *, paper_width_mm: int, profile: str, timezone: str
    ) -> bytes:
        """The consent as a printed slip: text, time, kiosk, and a masked ID number."""
        subject = self.subject(record)
        at = dt.datetime.fromtimestamp(record.given_at, ZoneInfo(timezone))
        masked = "*" * 8 + subject["id_number"][-4:]
        receipt = Receipt(paper_width_mm=paper_width_mm, profile=profile)
        receipt.text("XÁC NHẬN ĐỒNG Ý", size=30, bold=True, center=True)
        receipt.text("xử lý dữ liệu khuôn mặt", size=22, center=True)
        receipt.rule()
        receipt.text(CONSENT_TEXT[record.purpose]["vi"], size=20)
        receipt.rule()
        receipt.text(
            f"Số CCCD: {masked}\n"
            f"Thời điểm đồng ý: {at.strftime('%d/%m/%Y %H:%M:%S')}\n"
            f"Ki-ốt: {record.kiosk_id}\n"
            f"Mã xác nhận: {record.id[:12]}",
            size=20,
        )
        receipt.feed(2)
        return receipt.build()
