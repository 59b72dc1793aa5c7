"""Consent to process the citizen's personal data for the certified e-copy (Law 91/2025/QH15 on
personal data protection, in force 1/1/2026, and Decree 356/2025/ND-CP guiding it; docs/consent.md):
explicit, per data kind, recorded with the version and the hash of the exact text shown, printable."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from edge.errors import BadInput
from edge.receipts import Receipt
from edge.store import DataKey, Store

Lang = Literal["vi", "en"]

# The e-copy's consent (issue 19): every kind of personal data the e-copy processes.
PURPOSE_ECOPY = "ecopy_personal_data"
# Issue 8's consent, the face only (Decree 13/2023/ND-CP, replaced by Decree 356/2025 from
# 1/1/2026): no longer asked, kept so that the records given under it still name their text.
PURPOSE_FACE = "face_verification"

# The kinds of personal data the e-copy processes, in the order the consent names them.
DATA_KINDS = ("id_card", "face", "document", "contact", "address")

# The exact texts shown before the citizen taps "Tôi đồng ý", by purpose and version. Each is
# a list of blocks (the screen shows one paragraph per block and reads each aloud: every block
# stays under the speech endpoint's 600 characters). Versioned legal data, deliberately not in
# the gettext catalogs (issue 15): a catalog that is missing, stale or re-worded by a translator
# would change what the screen shows while the stored hash still named this text. Any change of
# a word needs a new version here (the old one stays, so old records keep naming their text) and
# the new hashes in docs/consent.md (tests/test_consent.py checks both).
CONSENT_TEXTS: dict[str, dict[str, dict[Lang, tuple[str, ...]]]] = {
    PURPOSE_FACE: {
        "1": {
            "vi": (
                "Tôi đồng ý để ki-ốt chụp ảnh khuôn mặt của tôi và so khớp với ảnh trên thẻ Căn "
                "cước công dân, chỉ để xác minh danh tính cho lần giao dịch này. Ảnh và đặc trưng "
                "khuôn mặt chỉ được xử lý trong bộ nhớ của ki-ốt, không được lưu lại và bị xóa "
                "ngay khi kết thúc giao dịch. Tôi có thể từ chối; khi đó nhân viên sẽ hỗ trợ xác "
                "minh.",
            ),
            "en": (
                "I agree that the kiosk takes a picture of my face and compares it with the photo "
                "on my citizen ID card, only to verify my identity for this transaction. The "
                "picture and face features are processed in the kiosk's memory only, never "
                "stored, and erased when the transaction ends. I may refuse; staff will then "
                "verify me instead.",
            ),
        },
    },
    PURPOSE_ECOPY: {
        "2026.1": {
            "vi": (
                "Tôi đồng ý để Trung tâm phục vụ hành chính công nơi đặt ki-ốt này xử lý các dữ "
                "liệu cá nhân sau của tôi, chỉ để làm bản sao điện tử có chứng thực lần này, theo "
                "Luật Bảo vệ dữ liệu cá nhân số 91/2025/QH15.",
                "Một. Dữ liệu trên thẻ Căn cước (họ tên, số định danh, ngày sinh, đọc từ mã QR "
                "hoặc chip): để xác định tôi và lập hồ sơ; gửi đến máy chủ của trung tâm và cơ "
                "quan chứng thực.",
                "Hai. Ảnh khuôn mặt và đặc trưng khuôn mặt, là dữ liệu sinh trắc học, dữ liệu "
                "nhạy cảm: chỉ để so khớp với ảnh trên thẻ; chỉ xử lý trong bộ nhớ của ki-ốt, "
                "không lưu, không gửi đi, xóa ngay khi kết thúc giao dịch.",
                "Ba. Nội dung giấy tờ tôi đưa vào (ảnh các trang): để chứng thực bản sao; gửi "
                "đến máy chủ của trung tâm và cơ quan chứng thực.",
                "Bốn. Thông tin liên hệ (email, ví điện tử hoặc số điện thoại) nếu tôi nhập: để "
                "gửi kết quả cho tôi; gửi đến máy chủ của trung tâm.",
                "Năm. Địa chỉ, nếu tôi chọn nhận kết quả qua bưu điện: để gửi kết quả; gửi đến "
                "trung tâm và Bưu điện Việt Nam.",
                "Ki-ốt chỉ giữ hồ sơ đã mã hóa đến khi trung tâm nhận xong, tối đa 7 ngày sau "
                "đó. Trung tâm và cơ quan chứng thực lưu hồ sơ theo thời hạn pháp luật quy định "
                "cho hồ sơ chứng thực.",
                "Tôi có quyền được biết, xem, yêu cầu sửa, xóa, hạn chế xử lý dữ liệu, rút lại sự "
                "đồng ý và khiếu nại, tại quầy của trung tâm. Tôi có thể không đồng ý: tôi vẫn "
                "xem được hướng dẫn thủ tục, lấy được số thứ tự, hoặc nhờ nhân viên kiểm tra "
                "giấy tờ trực tiếp.",
            ),
            "en": (
                "I agree that the public administrative service centre where this kiosk stands "
                "processes the following personal data of mine, only to make this certified "
                "e-copy, under the Personal Data Protection Law No. 91/2025/QH15.",
                "One. The data on my Căn cước card (name, personal ID number, date of birth, read "
                "from its QR code or chip): to identify me and open the dossier; sent to the "
                "centre's server and the certifying agency.",
                "Two. My face image and face features, biometric data, sensitive data: only to "
                "compare with the photo on the card; processed in the kiosk's memory only, never "
                "stored, never sent, erased as soon as the transaction ends.",
                "Three. The contents of the documents I put in (images of the pages): to certify "
                "the copy; sent to the centre's server and the certifying agency.",
                "Four. My contact (email, e-wallet or phone number) if I enter one: to send me "
                "the result; sent to the centre's server.",
                "Five. My address, if I choose to receive the result by post: to send the "
                "result; sent to the centre and Vietnam Post.",
                "The kiosk keeps the dossier encrypted only until the centre has received it, "
                "then at most 7 days. The centre and the certifying agency keep the dossier for "
                "the period the law sets for certification records.",
                "I have the right to be informed, to see my data, to ask for it to be corrected, "
                "erased or its processing restricted, to withdraw this consent and to complain, "
                "at the centre's counter. I may refuse: I can still read the procedure guide, "
                "take a queue ticket, or ask staff to check my papers in person.",
            ),
        },
    },
}
# The version each purpose asks for now.
CURRENT_VERSION = {PURPOSE_FACE: "1", PURPOSE_ECOPY: "2026.1"}


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    id: str
    session_id: str
    purpose: str
    text_hash: str
    given_at: float
    kiosk_id: str
    version: str
    lang: str


def consent_text(purpose: str, lang: Lang, version: str | None = None) -> tuple[str, ...]:
    """The blocks of text shown for purpose in lang (the current version unless one is named)."""
    try:
        return CONSENT_TEXTS[purpose][version or CURRENT_VERSION[purpose]][lang]
    except KeyError:
        raise BadInput(f"no consent text for {purpose!r} {version!r} {lang!r}") from None


def text_hash(purpose: str, lang: Lang = "vi", version: str | None = None) -> str:
    """sha256 (hex) of the exact text shown: its blocks joined by a blank line, UTF-8, after a
    first line "<purpose>/<version>/<lang>" (docs/consent.md shows how to recompute it)."""
    version = version or CURRENT_VERSION[purpose]
    blocks = consent_text(purpose, lang, version)
    shown = f"{purpose}/{version}/{lang}\n" + "\n\n".join(blocks)
    return hashlib.sha256(shown.encode("utf-8")).hexdigest()


class ConsentStore:
    """Consents in SQLite: purpose, version, language and text hash in the clear (no personal
    data); who consented (ID number, name, for the printed slip and to answer the citizen's
    requests) is sealed with the data key."""

    def __init__(self, store: Store, key: DataKey, *, kiosk_id: str) -> None:
        self.store = store
        self.key = key
        self.kiosk_id = kiosk_id

    def record(
        self, *, session_id: str, purpose: str, id_number: str, name: str, lang: Lang = "vi"
    ) -> ConsentRecord:
        if purpose not in CONSENT_TEXTS:
            raise BadInput(f"unknown consent purpose {purpose!r}")
        if lang not in ("vi", "en"):
            raise BadInput(f"unknown consent language {lang!r}")
        version = CURRENT_VERSION[purpose]
        record = ConsentRecord(
            id=uuid.uuid4().hex,
            session_id=session_id,
            purpose=purpose,
            text_hash=text_hash(purpose, lang, version),
            given_at=time.time(),
            kiosk_id=self.kiosk_id,
            version=version,
            lang=lang,
        )
        subject = json.dumps({"id_number": id_number, "name": name}, ensure_ascii=False)
        sealed = self.key.encrypt(subject.encode(), aad=record.id.encode())
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO consents(id, session_id, purpose, text_hash, given_at, kiosk_id, "
                "version, lang, subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.session_id,
                    record.purpose,
                    record.text_hash,
                    record.given_at,
                    record.kiosk_id,
                    record.version,
                    record.lang,
                    sealed,
                ),
            )
        return record

    def find(self, session_id: str, purpose: str) -> ConsentRecord | None:
        rows = self.store.query(
            "SELECT id, session_id, purpose, text_hash, given_at, kiosk_id, version, lang "
            "FROM consents WHERE session_id = ? AND purpose = ? ORDER BY given_at DESC LIMIT 1",
            (session_id, purpose),
        )
        return ConsentRecord(*rows[0]) if rows else None

    def subject(self, record: ConsentRecord) -> dict[str, str]:
        rows = self.store.query("SELECT subject FROM consents WHERE id = ?", (record.id,))
        return json.loads(self.key.decrypt(rows[0][0], aad=record.id.encode()))

    def slip(
        self, record: ConsentRecord, *, paper_width_mm: int, profile: str, timezone: str
    ) -> bytes:
        """The consent as a printed slip: the text agreed to (its language), its version and
        hash, time, kiosk, and a masked ID number."""
        subject = self.subject(record)
        at = dt.datetime.fromtimestamp(record.given_at, ZoneInfo(timezone))
        masked = "*" * 8 + subject["id_number"][-4:]
        lang: Lang = "en" if record.lang == "en" else "vi"
        receipt = Receipt(paper_width_mm=paper_width_mm, profile=profile)
        receipt.text("XÁC NHẬN ĐỒNG Ý", size=30, bold=True, center=True)
        receipt.text("xử lý dữ liệu cá nhân", size=22, center=True)
        receipt.rule()
        for block in consent_text(record.purpose, lang, record.version):
            receipt.text(block, size=20)
        receipt.rule()
        receipt.text(
            f"Số CCCD: {masked}\n"
            f"Thời điểm đồng ý: {at.strftime('%d/%m/%Y %H:%M:%S')}\n"
            f"Ki-ốt: {record.kiosk_id}\n"
            f"Phiên bản: {record.purpose}/{record.version}/{record.lang}\n"
            f"Mã băm: {record.text_hash[:16]}\n"
            f"Mã xác nhận: {record.id[:12]}",
            size=20,
        )
        receipt.feed(2)
        return receipt.build()
