"""The copy receipt (80 mm and 58 mm): code, pages, fee, time, kiosk and the QR to verify."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from edge.fees import Fee, basis_text_vi
from edge.receipts import Receipt
from edge.texts import time_text

# A common printer of each width: 80 mm Epson (native QR), 58 mm no-name (QR as an image).
DEFAULT_PROFILES = {80: "TM-T88V", 58: "NT-5890K"}
# Type sizes (dots) per paper width: the code has no spaces, so it must fit on one line.
_SIZES = {80: {"title": 34, "sub": 22, "code": 25, "body": 24, "small": 20, "qr": 6},
          58: {"title": 26, "sub": 18, "code": 16, "body": 19, "small": 16, "qr": 5}}  # fmt: skip


def copy_receipt(
    *,
    code: str,
    pages: int,
    fee: Fee,
    issued_at: dt.datetime,
    kiosk_id: str,
    site: str,
    qr: str,
    paper_width_mm: int,
    profile: str,
    timezone: str = "Asia/Ho_Chi_Minh",
    native_qr: bool | None = None,
    development: bool = False,
    sample: bool = False,
) -> bytes:
    """ESC/POS bytes of one receipt; text rasterised (Vietnamese), QR native where supported."""
    size = _SIZES[paper_width_mm]
    local = issued_at.astimezone(ZoneInfo(timezone))
    r = Receipt(paper_width_mm=paper_width_mm, profile=profile, native_qr=native_qr)
    r.text("BIÊN NHẬN", size=size["title"], bold=True, center=True)
    r.text("Chứng thực bản sao điện tử", size=size["sub"], center=True)
    if sample:
        r.text("MẪU – KHÔNG CÓ GIÁ TRỊ", size=size["small"], bold=True, center=True)
    r.rule()
    r.text("Mã bản sao:", size=size["small"])
    r.text(code, size=size["code"], bold=True, center=True)
    r.text(
        f"Số trang: {pages}\n"
        f"{fee.word_vi}: {fee.label_vi}\n"
        f"Thời gian: {time_text(local)}\n"
        f"Ki-ốt: {kiosk_id}" + (f"\n{site}" if site else ""),
        size=size["body"],
    )
    if fee.basis_vi:
        r.text(basis_text_vi(fee), size=size["small"])
    r.rule()
    r.feed()
    r.qr(qr, size=size["qr"])
    r.text("Quét mã QR để kiểm tra bản sao", size=size["small"], center=True)
    r.text("hoặc nhập mã bản sao tại ki-ốt", size=size["small"], center=True)
    if development:
        r.text("BẢN THỬ NGHIỆM", size=size["small"], bold=True, center=True)
        r.text("Không có giá trị pháp lý", size=size["small"], center=True)
    r.feed(3)
    return r.build()
