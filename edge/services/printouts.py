"""Slips of the citizen services (ticket, checklist, post confirmation) for 80 and 58 mm paper.

Slips are in Vietnamese. Only when the citizen chose English on the screen (`lang="en"`) does a
slip carry English lines too, under the Vietnamese (the staff at the counter read Vietnamese)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from edge.receipts import Receipt
from edge.texts import time_text

if TYPE_CHECKING:
    from edge.certify.requests import RequestState
    from edge.fees import Fee
    from edge.services.catalog import Procedure
    from edge.services.post import PostRequest
    from edge.services.tickets import Ticket


def _sizes(paper_width_mm: int) -> dict[str, int]:
    """Type sizes per paper: 58 mm has two thirds of the dots, so everything shrinks."""
    if paper_width_mm == 58:
        return {"huge": 80, "title": 26, "body": 19, "small": 16, "qr": 5}
    return {"huge": 120, "title": 32, "body": 23, "small": 19, "qr": 6}


def _time(at: dt.datetime) -> str:
    return time_text(at)


def _english(lang: str) -> bool:
    """English lines on the slip: only for a citizen who chose English."""
    return lang == "en"


def ticket_slip(
    ticket: Ticket,
    *,
    site: str,
    paper_width_mm: int = 80,
    profile: str = "TM-T88V",
    native_qr: bool | None = None,
    lang: str = "vi",
) -> bytes:
    """The queue ticket: the number in large type, the area, people ahead, the wait, a QR."""
    s = _sizes(paper_width_mm)
    r = Receipt(paper_width_mm=paper_width_mm, profile=profile, native_qr=native_qr)
    if site:
        r.text(site, size=s["body"], bold=True, center=True)
    r.text("Phiếu số thứ tự", size=s["title"], bold=True, center=True)
    if _english(lang):
        r.text("Queue ticket", size=s["small"], center=True)
    r.rule()
    if ticket.priority_label is not None:  # served first: say it where staff look first
        r.text("ƯU TIÊN", size=s["title"], bold=True, center=True)
    r.text(ticket.number, size=s["huge"], bold=True, center=True)
    r.text(f"{ticket.area_name}", size=s["title"], bold=True, center=True)
    if ticket.priority_label is not None:
        r.text(f"Ưu tiên: {ticket.priority_label.vi}", size=s["body"], center=True)
    r.rule()
    ahead = "chưa rõ" if ticket.waiting_ahead is None else f"{ticket.waiting_ahead} người"
    wait = (
        "chưa rõ"
        if ticket.estimated_wait_min is None
        else f"khoảng {ticket.estimated_wait_min} phút"
    )
    r.text(
        f"Số người chờ trước bạn: {ahead}\nThời gian chờ dự kiến: {wait}\nLấy số lúc: "
        f"{_time(ticket.issued_at)}",
        size=s["body"],
    )
    r.feed()
    r.qr(ticket.follow, size=s["qr"])
    r.text("Quét mã QR để theo dõi lượt của bạn", size=s["small"], center=True)
    r.text(
        "Vui lòng chờ gọi số. Phiếu chỉ có giá trị trong ngày."
        + ("\nPlease wait for your number; valid today only." if _english(lang) else ""),
        size=s["small"],
        center=True,
    )
    r.feed(2)
    return r.build()


def checklist_slip(
    procedure: Procedure,
    *,
    site: str,
    catalog_version: str,
    now: dt.datetime,
    paper_width_mm: int = 80,
    profile: str = "TM-T88V",
) -> bytes:
    """Papers to bring for one procedure, each with a box to tick, and the practical facts."""
    s = _sizes(paper_width_mm)
    r = Receipt(paper_width_mm=paper_width_mm, profile=profile)
    if site:
        r.text(site, size=s["small"], center=True)
    r.text("Giấy tờ cần chuẩn bị", size=s["title"], bold=True, center=True)
    r.rule()
    r.text(procedure.name, size=s["title"], bold=True)
    r.text(f"Lĩnh vực: {procedure.field}  (mã {procedure.id})", size=s["small"])
    if procedure.is_referral:  # handled elsewhere: say so before the papers
        r.text("Không làm tại đây. Nơi cần đến:", size=s["body"], bold=True)
        r.text(procedure.where, size=s["body"])
    r.rule()
    for paper in procedure.papers:
        counts = []
        if paper.original:
            counts.append(f"{paper.original} bản chính")
        if paper.copy:
            counts.append(f"{paper.copy} bản sao")
        line = f"[ ] {paper.name}: {', '.join(counts)}"
        r.text(line, size=s["body"])
        if paper.note:
            r.text(f"     ({paper.note})", size=s["small"])
    r.rule()
    r.text(
        f"Phí, lệ phí: {procedure.fee_text}\n"
        f"Thời hạn giải quyết: {procedure.time_text}\n"
        + ("" if procedure.is_referral else f"Nơi nộp: {procedure.where}\n")
        + f"Dịch vụ công trực tuyến: {procedure.online_vi}",
        size=s["body"],
    )
    if procedure.portal:
        r.text(procedure.portal, size=s["body"])
    if procedure.result:
        r.text(f"Kết quả: {procedure.result}", size=s["body"])
    r.text("Căn cứ pháp lý: " + "; ".join(procedure.legal_basis), size=s["small"])
    r.rule()
    r.text(
        f"In lúc {_time(now)} - danh mục {catalog_version}.\n"
        "Thông tin để tham khảo; niêm yết tại nơi nộp hồ sơ là căn cứ.",
        size=s["small"],
        center=True,
    )
    r.feed(2)
    return r.build()


def post_confirmation_slip(
    request: PostRequest,
    *,
    site: str,
    paper_width_mm: int = 80,
    profile: str = "TM-T88V",
    lang: str = "vi",
) -> bytes:
    """Confirms a delivery request: what goes where, to whom (the phone partly masked)."""
    s = _sizes(paper_width_mm)
    r = Receipt(paper_width_mm=paper_width_mm, profile=profile)
    if site:
        r.text(site, size=s["small"], center=True)
    r.text("Đăng ký nhận kết quả qua bưu điện", size=s["title"], bold=True, center=True)
    if _english(lang):
        r.text("Results by post: request received", size=s["small"], center=True)
    r.rule()
    what = "Hồ sơ" if request.subject_type == "dossier" else "Bản sao điện tử chứng thực"
    a = request.address
    r.text(
        f"{what}: {request.subject_code}\n"
        f"Người nhận: {request.recipient_name}\n"
        f"Điện thoại: {request.phone_masked}\n"
        f"Địa chỉ: {a.one_line()}",
        size=s["body"],
    )
    r.rule()
    r.text(
        f"Mã yêu cầu: {request.short_id}\nĐăng ký lúc: {_time(request.created_at)}",
        size=s["body"],
    )
    r.text(
        "Kết quả được gửi đi khi có. Cước phí theo quy định của đơn vị bưu chính.\n"
        "Giữ phiếu này để tra cứu.",
        size=s["small"],
        center=True,
    )
    r.feed(2)
    return r.build()


def _when(at: dt.datetime) -> str:
    return time_text(at)


CHANNEL_VI = {
    "email": "Thư điện tử (email)",
    "ewallet": "Ví điện tử",
    "post": "Bưu điện",
    "kiosk": "Nhận tại ki-ốt này",
}


def cert_receipt(
    request: RequestState,
    *,
    site: str,
    paper_width_mm: int = 80,
    profile: str = "TM-T88V",
    lang: str = "vi",
    fee: Fee | None = None,
    paid: tuple[str, str] | None = None,
) -> bytes:
    """An approved certification: code, number and book, and the copy's QR as central made it;
    given the visit's fee, its legal basis (and any support's) too; given paid (method, receipt
    number), how the fee was paid and the fee receipt's number."""
    s = _sizes(paper_width_mm)
    r = Receipt(paper_width_mm=paper_width_mm, profile=profile)
    if site:
        r.text(site, size=s["small"], center=True)
    r.text("Biên nhận chứng thực bản sao điện tử", size=s["title"], bold=True, center=True)
    if _english(lang):
        r.text("Certified e-copy receipt", size=s["small"], center=True)
    r.rule()
    r.text(
        f"Mã yêu cầu: {request.code}\n"
        f"Số chứng thực: {request.number}\n"
        f"Quyển số: {request.book}\n"
        f"Số trang: {request.pages}\n"
        f"{fee.word_vi if fee else 'Phí'}: {_fee(request.payable_vnd)}",
        size=s["body"],
    )
    if fee is not None:
        r.text(fee_basis_vi(fee), size=s["small"])
    if paid is not None:
        r.text(paid_text_vi(*paid), size=s["small"])
    if request.qr:
        r.feed()
        r.qr(request.qr, size=s["qr"])
        r.text("Quét mã QR để kiểm tra bản sao", size=s["small"], center=True)
    r.feed(2)
    return r.build()


def cert_slip(
    requests: list[RequestState],
    *,
    site: str,
    pickup: str = "",
    paper_width_mm: int = 80,
    profile: str = "TM-T88V",
    native_qr: bool | None = None,
    lang: str = "vi",
    fee: Fee | None = None,
    paid: tuple[str, str] | None = None,
) -> bytes:
    """No answer while the citizen waited: what was asked, when it is due (Decree 23/2015
    Art. 7), how the copy will come, and each request's code as text and QR."""
    s = _sizes(paper_width_mm)
    r = Receipt(paper_width_mm=paper_width_mm, profile=profile, native_qr=native_qr)
    if site:
        r.text(site, size=s["small"], center=True)
    r.text("Phiếu hẹn chứng thực bản sao điện tử", size=s["title"], bold=True, center=True)
    if _english(lang):
        r.text("Certified e-copy: request slip", size=s["small"], center=True)
    for request in requests:
        r.rule()
        r.text(
            f"Bản gốc {request.original} ({request.pages} trang)\n"
            f"Mã yêu cầu: {request.code}\n"
            f"Gửi lúc: {_when(request.created_at)}\n"
            f"Hẹn trả kết quả: trước {_when(request.due_at)}\n"
            f"Nhận kết quả qua: {CHANNEL_VI.get(request.channel, request.channel)}",
            size=s["body"],
        )
        r.qr(request.code, size=s["qr"])
    r.rule()
    if fee is not None:
        r.text(f"{fee.word_vi}: {fee.label_vi}\n{fee_basis_vi(fee)}", size=s["small"])
        if paid is not None:
            r.text(paid_text_vi(*paid), size=s["small"])
        r.rule()
    if pickup:
        r.text("Mã nhận bản sao tại ki-ốt (dùng một lần):", size=s["body"], center=True)
        r.text(pickup, size=s["title"], bold=True, center=True)
    r.text(
        "Giữ phiếu này để tra cứu hoặc nhận bản sao."
        + ("\nKeep this slip to follow or collect your copy." if _english(lang) else ""),
        size=s["small"],
        center=True,
    )
    r.feed(2)
    return r.build()


# How the fee was paid, as the slips say it (docs/payments.md).
PAID_VI = {
    "bank_transfer": "Đã nộp phí: chuyển khoản (VietQR)",
    "cash": "Đã nộp phí: tiền mặt tại quầy",
    "waived": "Miễn phí",
}


def paid_text_vi(method: str, receipt: str) -> str:
    """'Đã nộp phí: tiền mặt tại quầy' (or 'Miễn phí', no amount) and the receipt's number."""
    text = PAID_VI.get(method, method)
    return f"{text}\nSố biên lai: {receipt}" if receipt else text


def fee_basis_vi(fee: Fee) -> str:
    from edge.fees import basis_text_vi

    return basis_text_vi(fee)


def _fee(amount: int) -> str:
    from edge.fees import FREE_VI, format_vnd

    return FREE_VI if amount == 0 else format_vnd(amount)
