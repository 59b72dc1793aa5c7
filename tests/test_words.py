"""The words a citizen reads (issue 18, "Words"): slips in Vietnamese only unless English was
chosen (read back from the printed bytes with tesseract), a verify screen that says what a QR
that is not a copy's is (and never shows or logs the card's data), dates as dd/mm/yyyy, every
instruction naming a button that exists, one name per service, the safe choice focused on a
name mismatch, and a title per screen."""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
from babel.messages.pofile import read_po
from flask import session, url_for

from edge.app import App
from edge.certify.requests import RequestState
from edge.copies.receipt import copy_receipt
from edge.fees import Fee
from edge.qrkind import HEADLINES, kind_of
from edge.services.dossier import DossierStatus, TimelineStep
from edge.services.ecopy import PageRead
from edge.services.post import Address, PostRequest
from edge.services.printouts import cert_receipt, cert_slip, post_confirmation_slip, ticket_slip
from edge.services.tickets import Ticket
from edge.texts import Text, day_text, time_text, vietnamese
from edge.vietqr import payment_payload
from tests.cards import Person, qr_image
from tests.conftest import REPO
from tests.ecopy_helpers import cert_request
from tests.escpos_readback import paper
from tests.web_ui_helpers import LoopbackClient, in_process_kiosk
from web_ui.kiosk import FLOWS, screen

VN = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = dt.datetime(2026, 1, 5, 9, 30, tzinfo=VN)
VI_PO = REPO / "web_ui/translations/vi/LC_MESSAGES/messages.po"
# English words the slips used to carry under their Vietnamese titles.
ENGLISH = re.compile(r"\b(Queue|ticket|Please|wait|Keep|slip|receipt|Results|request|copy)\b")


# --- slips: Vietnamese only, unless the citizen chose English -----------------------------


def _ticket() -> Ticket:
    return Ticket(
        number="B-007",
        area="B",
        area_name="Tư pháp - Hộ tịch",
        day="2026-01-05",
        seq=7,
        issued_at=NOW,
        waiting_ahead=3,
        estimated_wait_min=12,
        follow="KIOSK-QUEUE|TEST-UI|2026-01-05|B-007",
    )


def _request(status: str = "queued") -> RequestState:
    return cert_request(
        status,
        code="TEST-UI-260105-0001-K",
        created_at=NOW,
        due_at=NOW.replace(hour=17, minute=0),
        pages=2,
        payable_vnd=4000,
        channel="email",
    )


def _post() -> PostRequest:
    return PostRequest(
        id="0123456789abcdef",
        subject_type="copy",
        subject_code="TEST-UI-260105-0001-K",
        recipient_name="Nguyễn Văn An",
        phone="0912345678",
        address=Address(province="Hà Nội", ward="Phường Tây Hồ", street="Số 12 ngõ 34"),
        note="",
        created_at=NOW,
    )


SLIPS = {
    "ticket": lambda lang: ticket_slip(_ticket(), site="UBND Phường", native_qr=False, lang=lang),
    "post": lambda lang: post_confirmation_slip(_post(), site="UBND Phường", lang=lang),
    "cert_receipt": lambda lang: cert_receipt(_request("approved"), site="", lang=lang),
    "cert_slip": lambda lang: cert_slip([_request()], site="", pickup="123456", lang=lang),
}
TITLES_VI = {
    "ticket": "Phiếu số thứ tự",
    "post": "Đăng ký nhận kết quả qua bưu điện",
    "cert_receipt": "Biên nhận chứng thực bản sao điện tử",
    "cert_slip": "Phiếu hẹn chứng thực bản sao điện tử",
}


def _printed(data: bytes) -> str:
    from edge.vision.ocr import shared_ocr

    return " ".join(shared_ocr().read(np.asarray(paper(data))).text.split())


@pytest.mark.parametrize("kind", sorted(SLIPS))
def test_a_slip_is_vietnamese_only_unless_english_was_chosen(kind: str) -> None:
    vi = _printed(SLIPS[kind]("vi"))
    assert TITLES_VI[kind] in vi, vi  # read back: the OCR does see the slip's words
    assert not ENGLISH.findall(vi), vi
    en = _printed(SLIPS[kind]("en"))
    assert TITLES_VI[kind] in en, en
    assert ENGLISH.findall(en), en  # a citizen who chose English gets English lines too


def test_the_copy_receipt_carries_no_english() -> None:
    data = copy_receipt(
        code="TEST-UI-260105-0001-K",
        pages=1,
        fee=Fee(pages=1, fee_vnd=2000, payable_vnd=2000, exempt=False),
        issued_at=NOW,
        kiosk_id="TEST-UI",
        site="",
        qr="KC1:TEST",
        paper_width_mm=80,
        profile="TM-T88V",
        development=True,
        sample=True,
    )
    text = _printed(data)
    assert "Chứng thực bản sao điện tử" in text and "05/01/2026" in text, text
    assert not re.search(r"\b(sample|development)\b", text), text


# --- dates: dd/mm/yyyy on screens and slips ---------------------------------------------


def test_dates_are_day_month_year() -> None:
    assert day_text(dt.date(1970, 3, 3)) == "03/03/1970"
    assert day_text("1970-03-03") == "03/03/1970"  # as read from a paper (edge.documents)
    assert day_text("1970") == "1970" and day_text("Nguyễn Văn An") == "Nguyễn Văn An"
    assert day_text(None) == ""
    assert time_text(dt.datetime(2026, 1, 5, 2, 30, tzinfo=dt.UTC), VN) == "09:30 05/01/2026"


# --- screens rendered by the app --------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, Path]]:
    root = tmp_path_factory.mktemp("words")
    with in_process_kiosk(root) as kiosk:
        yield kiosk, root


def _render(app: App, template: str, lang: str = "vi", **ctx: object) -> str:
    with app.web.app.test_request_context("/"):
        session["lang"] = lang
        return html.unescape(screen(template, **ctx))


def _read(name_check: str) -> dict[str, object]:
    read = PageRead(
        doc_type="birth_certificate",
        label=Text("Birth certificate"),
        fields={"name": "Nguyễn Văn An", "date_of_birth": "1970-03-03"},
        name_check=name_check,
        name_message=None,
        qr=[],
        confidence=90,
    )
    shown = read.screen()
    shown["label"] = vietnamese("Birth certificate")
    return shown


def _focused(page: str) -> list[str]:
    return re.findall(r'id="([^"]+)"[^>]*\sautofocus', page)


def test_review_shows_dates_as_dd_mm_yyyy_and_a_name_mismatch_focuses_the_safe_choice(
    app: tuple[App, Path],
) -> None:
    kiosk, _ = app
    ctx = {"flow": "ecopy", "step": 4, "labels": {}}
    same = _render(kiosk, "ecopy/review.html", originals=[[(1, _read("match"))]], **ctx)
    assert "03/03/1970" in same and "1970-03-03" not in same
    assert _focused(same) == ["confirm-review"] and 'id="name-warning"' not in same
    other = _render(kiosk, "ecopy/review.html", originals=[[(1, _read("mismatch"))]], **ctx)
    assert _focused(other) == ["back-to-pages"]  # OK retakes the pages: nothing is sent
    warning = re.search(r'id="name-warning".*?</div>', other, re.S)
    assert warning and "Họ tên trên một trang giấy tờ khác với họ tên trên thẻ căn cước" in (
        warning.group(0)
    )
    # The warning names the two buttons as they are labelled on this screen.
    assert "“Đúng, tiếp tục”" in warning.group(0) and ">Đúng, tiếp tục<" in other
    assert "“Chụp lại các trang”" in warning.group(0) and ">Chụp lại các trang<" in other


def test_dossier_dates_on_the_screen_are_dd_mm_yyyy(app: tuple[App, Path]) -> None:
    kiosk, _ = app
    at = dt.datetime(2026, 1, 5, 9, 30, tzinfo=VN)
    found = DossierStatus(
        code="000.00.13.H26-241120-0007",
        found=True,
        source="central",
        fetched_at=at,
        age_s=0,
        status="ready",
        on_time=True,
        due_at=at,
        timeline=(TimelineStep(at, "received"),),
    )
    page = _render(kiosk, "dossier/status.html", flow="dossier", s=found)
    assert "05/01/2026" in page and "09:30 05/01/2026" in page and "2026-01-05" not in page


def test_every_citizen_template_has_its_own_title() -> None:
    templates = REPO / "web_ui/templates"
    skip = {"base.html", "_macros.html", "dev.html"}
    for path in sorted(templates.rglob("*.html")):
        if path.name in skip or path.name.startswith("_") or "icons" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        assert re.search(r"{% block title %}.+?{% endblock %}", text), path.name


def test_each_service_has_one_name_tile_title_and_heading(app: tuple[App, Path]) -> None:
    kiosk, _ = app
    flask_app = kiosk.web.app
    flask_app.config["TESTING"] = False
    client = LoopbackClient(flask_app, flask_app.response_class, use_cookies=True)
    start = html.unescape(client.get("/").get_data(as_text=True))
    titles = set()
    for flow in FLOWS.values():
        with flask_app.test_request_context("/"):
            session["lang"] = "vi"
            name, path = str(flow.title), url_for(flow.endpoint)
        assert f'<span class="name">{name}</span>' in start, name
        first = html.unescape(client.get(path).get_data(as_text=True))
        title = re.search(r"<title>(.*?)</title>", first, re.S).group(1)
        assert name in title, (name, title)  # the screen's title names the service
        titles.add(title)
    assert len(titles) == len(FLOWS)
    ecopy = html.unescape(client.get("/a/").get_data(as_text=True))
    assert '<h1 id="headline">Chứng thực bản sao điện tử</h1>' in ecopy
    assert "<title>Chứng thực bản sao điện tử · Ki-ốt dịch vụ công</title>" in ecopy
    token = re.search(r'name="csrf-token" content="([^"]+)"', ecopy).group(1)
    client.post("/lang", data={"lang": "en", "back": "/a/", "csrf_token": token})
    english = html.unescape(client.get("/b/").get_data(as_text=True))
    assert "<title>Choose the service area · Queue ticket · Public service kiosk</title>" in (
        english
    )
    vi = {m.id: m.string for m in read_po(VI_PO.open("rb"), locale="vi") if m.id}
    # The e-copy service's former names are gone from the catalog.
    assert "Bản sao điện tử có chứng thực" not in vi.values()
    assert vi["Certified e-copy"] == "Chứng thực bản sao điện tử"


def test_every_button_an_instruction_names_exists() -> None:
    vi = {m.id: m.string for m in read_po(VI_PO.open("rb"), locale="vi") if m.id}
    labels = {s for s in vi.values() if isinstance(s, str)}
    for msgid, text in vi.items():
        if not isinstance(text, str):
            continue
        assert "bấm Tiếp tục" not in text, msgid
        for label in re.findall(r"(?:bấm|nhấn|chọn)(?: nút)? “([^”]+)”", text):
            assert label in labels, (label, msgid)  # a label of a real button or tile


# --- verify screen: a QR that is not a copy's ---------------------------------------------


PERSON = Person(
    id_number="001203004567",
    old_id="",
    name="TRẦN THỊ BÍCH NGỌC",
    date_of_birth=dt.date(1970, 3, 3),
    sex="Nữ",
    address="Số 1 Hàng Trống, Phường Hoàn Kiếm, Hà Nội",
    issue_date=dt.date(2021, 4, 10),
)
SCANNED = {
    "ticket": "KIOSK-QUEUE|TEST-UI|2026-01-05|B-007",
    "card": PERSON.payload,
    "dossier": "https://dichvucong.gov.vn/tra-cuu?ma=000.00.13.H26-241120-0007",
    "vietqr": payment_payload(bank_bin="970436", account="0011001234567", amount_vnd=2000),
    "link": "https://example.vn/khuyen-mai",
    "unknown": "HELLO WORLD 42",
}
HEADLINES_VI = {
    "ticket": "Đây là phiếu số thứ tự, không phải bản sao",
    "card": "Đây là mã QR trên thẻ căn cước, không phải bản sao",
    "dossier": "Đây là mã trên giấy tiếp nhận hồ sơ, không phải bản sao",
    "vietqr": "Đây là mã thanh toán VietQR, không phải bản sao",
    "link": "Đây là đường liên kết web, không phải bản sao",
    "unknown": "Mã QR này không phải mã QR của bản sao",
}


def test_kinds_of_qr_with_the_kiosks_own_parsers() -> None:
    for kind, text in SCANNED.items():
        assert kind_of(text) == kind, (kind, text)
    assert set(HEADLINES) == set(SCANNED)
    # A card whose QR breaks a rule (issued in the future) is still a card.
    assert kind_of(PERSON.payload.replace("10042021", "10042099")) == "card"
    # A ticket QR as a URL when the kiosk is set up so.
    follow = "https://hangdoi.example.vn/{kiosk_id}/{day}/{number}"
    assert kind_of("https://hangdoi.example.vn/K1/2026-01-05/B-007", ticket_follow_url=follow) == (
        "ticket"
    )


def _scan(kiosk: App, client: LoopbackClient, root: Path, text: str) -> str:
    """Show text's QR to the kiosk's camera on the verify screen; the screen it leads to."""
    frame = np.full((960, 1280, 3), 70, np.uint8)
    qr = np.array(qr_image(text, 420).convert("RGB"))[:, :, ::-1]
    frame[200 : 200 + qr.shape[0], 400 : 400 + qr.shape[1]] = qr
    tmp = root / "scene.tmp.jpg"
    cv2.imwrite(str(tmp), frame)
    tmp.replace(root / "scenes" / "scene.jpg")
    for _ in range(2):  # what the camera now sees is this QR
        kiosk.camera.wait_frame(5)
    page = client.get("/e/").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        answer = client.post("/e/poll", headers={"X-CSRFToken": token}).get_json()
        if answer.get("next"):
            return html.unescape(client.get(answer["next"]).get_data(as_text=True))
        time.sleep(0.2)
    raise AssertionError(f"the verify screen did not move on: {answer}")


def test_the_verify_screen_says_what_a_qr_that_is_not_a_copy_is(
    app: tuple[App, Path], caplog: pytest.LogCaptureFixture
) -> None:
    kiosk, root = app
    flask_app = kiosk.web.app
    flask_app.config["TESTING"] = False
    client = LoopbackClient(flask_app, flask_app.response_class, use_cookies=True)
    for kind in ("ticket", "card", "vietqr"):
        page = _scan(kiosk, client, root, SCANNED[kind])
        headline = re.search(r'<h1 id="headline">(.*?)</h1>', page).group(1)
        assert headline == HEADLINES_VI[kind], page
        assert "không hợp lệ" not in page  # not "invalid copy"
        assert not re.search(r"\b(KC1|payload|invalid)\b", page)
    # Nothing of the card on the screen or in the log: only the kind.
    with caplog.at_level(logging.DEBUG):
        card_page = _scan(kiosk, client, root, SCANNED["card"])
    logged = " ".join(str(r.__dict__) for r in caplog.records)
    assert "not a copy's QR" in logged and "'kind': 'card'" in logged
    for secret in (PERSON.id_number, PERSON.name, "03031970", "Hàng Trống"):
        assert secret not in card_page and secret not in logged


def test_the_command_lines_verdict_says_the_reason_in_vietnamese_words() -> None:
    from edge.copies.verify import REASONS, Verdict

    for reason in ("not a KC1 payload", "bad copy code"):
        message = Verdict("invalid", reason=reason).message_vi
        assert reason not in message, message
        assert message.endswith(vietnamese(REASONS[reason])), message
    # A reason the table does not know is still given, as it is, for the operator.
    assert "(odd)" in Verdict("invalid", reason="odd").message_vi
