"""Issue 16's full loop, on real parts end to end: a citizen's originals captured by the kiosk's
e-copy session, sent signed through its outbox and fleet client over a real Mosquitto (mTLS, the
shipped ACL) to the real console and its Certifier (SQLite and PostgreSQL); an officer logs in to
the real desk app in headless Chromium (password, TOTP, token PIN), sees the request with its
pages and flags, approves one original (two PAdES signatures through PKCS#11 on SoftHSM2) and
refuses the other, whose "MẬT" stamp the kiosk's page checks flagged (R then 3: secret); the
kiosk hears both, prints the receipt (read back from the ESC/POS bytes: Tesseract for the text,
the native QR's data, zbar on the copy's own QR), holds the signed PDF (pdfsig, pdftotext, the
kiosk's own verifier) and shows the refusal in Vietnamese."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyotp
import pytest

from edge.adapters.a4printer_sim import FolderA4Printer
from edge.adapters.payment_sim import SimulatedPayment
from edge.adapters.printer_sim import SimulatedPrinter
from edge.certify.requests import page_checks
from edge.events import EventBus
from edge.printing import PrintQueue
from fleet.certify.accounts import create_officer
from fleet.certify.web import DeskConfig, create_app
from fleet.console import Console, build_console
from protocol.certify import REFUSAL_REASONS
from tests import pages as docs
from tests.browser import chromium
from tests.certify_helpers import AGENCY, KEY_LABEL, OFFICER_TOKEN, TestSigner
from tests.copies_helpers import nss_db, pdfsig
from tests.fleet_console_helpers import Postgres, database_url, running_postgres
from tests.mqtt_broker import Broker, FleetPki, wait_until
from tests.softhsm import PIN
from tests.test_certify_kiosk import KIOSK, KioskSide
from tests.test_certify_service import console_config
from web_ui.server import WebServer

pytest.importorskip("playwright.sync_api")

OFFICER = "nguyen.van.an"
OFFICER_NAME = "Nguyễn Văn An"  # as on the officer's token certificate (fleet/certify/devpki.py)
PASSWORD = "mật-khẩu-dài-đủ-2026"
SITE = "UBND Phường Bến Nghé"
REFUSE_DIGIT, REFUSE_CODE = "3", "secret"  # the desk's R then 3
WAIT_S = 60.0  # every wait is bounded


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request, tmp_path)


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> TestSigner:
    return TestSigner(tmp_path_factory.mktemp("signer"))


@pytest.fixture
def console(
    url: str, tmp_path: Path, broker: Broker, fleet_pki: FleetPki, signer: TestSigner
) -> Iterator[Console]:
    c = build_console(console_config(tmp_path / "central", broker, fleet_pki, url, signer))
    c.start()
    try:
        assert c.ingest.wait_connected(10), "console did not connect"
        assert c.certifier is not None
        yield c
    finally:
        c.stop()


@pytest.fixture
def desk(console: Console, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The officer's desk on the loopback, over the console's own Certifier and store."""
    uri = create_officer(
        console.store,
        OFFICER,
        full_name=OFFICER_NAME,
        title="Phó Chủ tịch",
        agency=AGENCY,
        role="officer",
        password=PASSWORD,
        token_label=OFFICER_TOKEN,
        key_label=KEY_LABEL,
    )
    config = DeskConfig(
        secret_key_file=tmp_path / "desk.key", cookie_secure=False, queue_refresh_s=1
    )
    app = create_app(console.certifier, console.store, config)
    web = WebServer(app, host="127.0.0.1", port=0, threads=4)
    web.start()
    try:
        yield {
            "url": f"http://127.0.0.1:{web.port}",
            "totp": pyotp.TOTP(pyotp.parse_uri(uri).secret),
        }
    finally:
        web.stop()


@pytest.fixture(scope="module")
def verifier() -> Any:
    from edge.vision.face import FaceVerifier

    return FaceVerifier()


def marked_page() -> np.ndarray:
    """A page stamped "MẬT" (secret: Decree 23/2015 Art. 22), from the page-checks set
    (tests/page_checks_set.py, mark-0), laid on the platen as the camera takes a still."""
    from tests.page_checks_set import image

    page = image("mark-0.jpg")
    h, w = page.shape[:2]
    width, height = docs.CAPTURE
    ph = height * 0.9
    pw = ph * w / h
    x0, y0 = (width - pw) / 2, (height - ph) / 2
    quad = [[x0 + 10, y0], [x0 + pw, y0 + 15], [x0 + pw - 8, y0 + ph], [x0, y0 + ph - 12]]
    return docs.place(page, np.array(quad), size=docs.CAPTURE, seed=4)


Shot = tuple[int, str] | Callable[[], np.ndarray]  # tests/pages.py (seed, kind), or a frame
TWO_ORIGINALS: tuple[tuple[Shot, ...], ...] = (
    ((2, "birth_certificate"), (3, "birth_certificate")),
    (marked_page,),
)


@contextlib.contextmanager
def ecopy_kiosk(
    root: Path,
    broker: Broker,
    pki: FleetPki,
    verifier: Any,
    originals: tuple[tuple[Shot, ...], ...] = TWO_ORIGINALS,
) -> Iterator[dict[str, Any]]:
    """The kiosk: its store, outbox, fleet client and certification requests (with the real
    page checks), and an e-copy session whose identified citizen has placed `originals` (each
    its pages: a (seed, kind) photographed by tests/pages.py, or a frame maker) and whose pages
    are read; the receipt printer
    faked at its port (ESC/POS bytes to files). Also bench/certify.py's kiosk."""
    from edge.config import CopiesSection
    from edge.fees import Fee, quote
    from edge.services.consent import ConsentStore
    from edge.services.ecopy import EcopySession
    from edge.services.identify import VerificationSession
    from tests.test_ecopy_session import card_scene, identify_by_staff, place

    side = KioskSide(root / "kiosk", pki, check=page_checks())
    bus = EventBus()
    bus.start()
    session = None
    try:
        side.connect(broker, pki)
        transport = SimulatedPrinter(root / "printer")
        transport.plug_in()
        printer = PrintQueue(transport, store=side.store, key=side.key, bus=bus)

        class Quotes:
            def quote(self, pages: int) -> Fee:
                return quote(pages, CopiesSection(fee_channel="at-kiosk"), KIOSK)

        card_holder = docs.photographed(2, "birth_certificate", size=docs.PREVIEW).doc
        assert card_holder is not None
        frame, _ = card_scene(card_holder.fields["name"])
        identity = VerificationSession(
            consents=ConsentStore(side.store, side.key, kiosk_id=KIOSK),
            verifier=verifier,
            new_challenge=lambda: None,
            bus=bus,
        )
        session = EcopySession(
            identity,
            copies=Quotes(),
            payment=SimulatedPayment(qr=lambda fee, ref: None),
            bus=bus,
            clock=side.clock,  # a Monday, 10:00: the office is open
            certify=side.certify,
            wait_s=180,
            central_up=lambda: True,
            printer=printer,
            a4printer=FolderA4Printer(root / "a4"),
            print_copy=False,
            slip_options={"site": SITE},
        )
        identify_by_staff(session, frame)
        for i, original in enumerate(originals):
            if i:
                assert session.new_original()
            for shot in original:
                if callable(shot):
                    place(session, shot())
                else:
                    place(session, docs.photographed(*shot, size=docs.PREVIEW).image)
        assert [len(o) for o in session.originals()] == [len(o) for o in originals]
        assert session.read_pages() is None  # OCR, upright, the document type
        yield {"side": side, "session": session, "printed": root / "printer"}
    finally:
        if session is not None:
            session.close()
        bus.stop()
        side.close()


@pytest.fixture
def kiosk(
    tmp_path: Path, broker: Broker, fleet_pki: FleetPki, verifier: Any
) -> Iterator[dict[str, Any]]:
    with ecopy_kiosk(tmp_path, broker, fleet_pki, verifier) as k:
        assert k["session"].originals() == [[1, 2], [3]]
        yield k


def _pdf_text(pdf: Path) -> str:
    out = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout


def _zbar_on_last_page(pdf: Path, folder: Path) -> list[str]:
    from PIL import Image
    from pyzbar.pyzbar import decode  # type: ignore[import-untyped]

    subprocess.run(
        ["pdftoppm", "-r", "150", "-png", str(pdf), str(folder / "page")],
        check=True,
        timeout=60,
    )
    last = sorted(folder.glob("page-*.png"))[-1]
    return [c.data.decode() for c in decode(Image.open(last))]


def test_the_full_loop_from_the_kiosk_to_the_officer_and_back(
    kiosk: dict[str, Any],
    console: Console,
    desk: dict[str, Any],
    signer: TestSigner,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    from edge.copies.verify import TrustStore, verify_pdf, verify_qr
    from edge.vision.ocr import shared_ocr
    from tests.escpos_readback import native_qr_payloads, paper

    side: KioskSide = kiosk["side"]
    s = kiosk["session"]

    caplog.set_level(logging.INFO)
    card = s.identity.card
    assert card is not None and card.name and card.id_number
    # The citizen's last page is in: pay, choose to collect here, send.
    assert s.issue() == "fee"  # not paid yet
    s.payment.confirm(s.reference)
    assert s.give_contact("", "kiosk") == "issue"
    assert s.issue() == "wait"
    approve_code, refuse_code = s.codes
    assert side.fleet is not None
    side.fleet.kick()
    assert s.wait_state()["next"] == "wait"
    wait_until(
        lambda: [i.id for i in console.certifier.queue(AGENCY)] == s.codes,
        WAIT_S,
        "both requests in the officer's queue",
    )
    wait_until(
        lambda: all(st.status == "queued" for st in side.certify.states(s.codes)),
        WAIT_S,
        "the kiosk told 'queued'",
    )
    flags = {code: console.certifier.request(code).flags for code in s.codes}
    assert [f["check"] for f in flags[refuse_code]] == ["forbidden_mark"], flags

    # The officer at the desk, in Chromium.
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 900}, locale="vi-VN")
        page.set_default_timeout(WAIT_S * 1000)
        page.goto(f"{desk['url']}/queue")
        page.wait_for_url("**/login")
        page.fill("#username", OFFICER)
        page.fill("#password", PASSWORD)
        page.fill("#code", desk["totp"].now())
        page.fill("#pin", PIN)
        page.click("#login")
        page.wait_for_url("**/queue")
        assert page.inner_text("#count") == "2"
        rows = page.locator("#requests tbody tr")
        assert [rows.nth(i).get_attribute("data-id") for i in range(2)] == s.codes
        page.keyboard.press("j")  # the first (oldest) request selected
        assert page.locator("tr.selected").get_attribute("data-id") == approve_code
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/requests/{approve_code}")
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('#pages img'))"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        assert page.locator("#pages img").count() == 2  # the first original's two pages

        def flags_shown() -> list[str | None]:
            shown = page.locator("#flags li[data-flag]")
            return [shown.nth(i).get_attribute("data-flag") for i in range(shown.count())]

        assert flags_shown() == [f["check"] for f in flags[approve_code]]
        if not flags[approve_code]:
            assert page.inner_text("#flags") == "Không có / none"
        assert KIOSK in page.inner_text("#fields")
        page.screenshot(path=str(tmp_path / "desk-request.png"))

        # A: both signatures through PKCS#11, then on to the next request.
        page.keyboard.press("a")
        page.wait_for_url(f"**/requests/{refuse_code}")
        assert "Đã chứng thực, số 1" in page.inner_text(".flash.ok")
        assert page.locator("#pages img").count() == 1
        # The kiosk's check saw the "MẬT" stamp: the officer sees it, labelled, with its page.
        assert flags_shown() == ["forbidden_mark"]
        flag = page.inner_text('#flags li[data-flag="forbidden_mark"]')
        print(f"\nthe desk shows: {flag}")
        assert "Dấu cấm sao" in flag and "MẬT" in flag  # the mark as read, with diacritics
        page.screenshot(path=str(tmp_path / "desk-flagged.png"))
        # R then a digit: refused for that reason, the queue now empty.
        page.keyboard.press("r")
        assert page.locator("#refuse-panel").is_visible()
        page.keyboard.press(REFUSE_DIGIT)
        page.wait_for_url("**/queue")
        assert page.inner_text("#count") == "0"

    # Back at the kiosk: the answers over Mosquitto, the receipt printed once.
    wait_until(
        lambda: side.certify.get(approve_code).status == "approved", WAIT_S, "approval heard"
    )
    wait_until(lambda: side.certify.get(refuse_code).status == "refused", WAIT_S, "refusal heard")
    state = s.wait_state()
    assert state["next"] == "result"
    approved, refused = state["requests"]
    assert approved["status"] == "approved" and approved["number"] == "1"
    book = approved["book"]
    assert re.fullmatch(r"\d{2}/\d{4}-SCTĐT/BS", book), book
    reason = refused["reason"]
    assert (reason.vi, reason.en) == REFUSAL_REASONS[REFUSE_CODE]
    assert refused["advice"].vi.startswith("Vui lòng mang bản gốc đến quầy")
    s.wait_state()  # asked again: nothing printed again
    (receipt_file,) = sorted(kiosk["printed"].glob("*.bin"))
    receipt = receipt_file.read_bytes()
    kept = side.certify.get(approve_code)
    assert kept.qr
    assert native_qr_payloads(receipt) == [kept.qr]
    printed = shared_ocr().read(np.asarray(paper(receipt))).text
    lines = [" ".join(x.split()) for x in printed.splitlines()]
    assert "Biên nhận chứng thực bản sao" in " ".join(printed.split()), printed  # title wraps
    assert "Số chứng thực: 1" in lines, printed
    assert f"Quyển số: {book}" in lines, printed
    # The code: OCR may see a stray mark by a dash; every character is there, in order.
    codes_read = [
        re.sub(r"[^A-Z0-9-]", "", x.split(":", 1)[1]) for x in lines if x.startswith("Mã yêu cầu:")
    ]
    assert codes_read == [approve_code], printed

    # The signed copy the kiosk holds.
    pdf = tmp_path / "copy.pdf"
    pdf.write_bytes(side.certify.pdf(approve_code) or b"")
    report = pdfsig(pdf, nss_db(tmp_path / "nss", signer.pki.root_pem))
    blocks = re.split(r"^Signature #\d+:", report, flags=re.M)[1:]
    assert len(blocks) == 2, report
    for block in blocks:
        assert "Signature Validation: Signature is Valid." in block, report
        assert "Certificate Validation: Certificate is Trusted." in block, report
    assert "Field Name: OfficerSignature" in blocks[0] and "Field Name: AgencySeal" in blocks[1]
    text = " ".join(_pdf_text(pdf).split())
    config = console.certifier.config
    today = dt.datetime.now(ZoneInfo(config.timezone))
    for expected in (
        "Chứng thực bản sao đúng với bản chính",
        "Số chứng thực: 01",
        f"Quyển số: {book}",
        f"Tại {config.place}, ngày {today:%d} tháng {today:%m} năm {today:%Y}",
        OFFICER_NAME,
        f"Mã bản sao: {approve_code}",
    ):
        assert expected in text, (expected, text)
    assert config.agency_name.upper() in text.upper(), text
    assert _zbar_on_last_page(pdf, tmp_path) == [kept.qr]  # the receipt's QR is the copy's

    trust_dir = tmp_path / "trust"
    (trust_dir / "certification" / "agencies").mkdir(parents=True)
    (trust_dir / "certification" / "official-root.pem").write_bytes(
        signer.pki.root.public_bytes(serialization.Encoding.PEM)
    )
    (trust_dir / "certification" / "agencies" / "seal.pem").write_bytes(
        signer.pki.agency_cert.public_bytes(serialization.Encoding.PEM)
    )
    trust = TrustStore(trust_dir, trust_dir / "revoked.json")
    verdict = verify_pdf(pdf.read_bytes(), trust)
    assert verdict.status == "valid", verdict
    facts = verdict.as_dict()
    assert (facts["code"], facts["number"], facts["book"]) == (approve_code, "01", book)
    agency_cn = signer.pki.agency_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert facts["officer"] == OFFICER_NAME and facts["agency"] == agency_cn[0].value
    assert verify_qr(kept.qr, trust).status == "valid"
    # The register agrees: number 1 in this year's book, by this officer.
    v = console.certifier.verification(approve_code)
    assert v is not None and (v.status, v.number, v.officer_name) == ("valid", 1, OFFICER_NAME)
    assert v.doc_type == "Giấy khai sinh"  # named as the kiosk recognised it, not as a code
    # The citizen's name and ID number reached no log, the kiosk's nor central's.
    logged = caplog.text
    assert "certified copy approved" in logged  # the loop's logs were captured
    assert card.name not in logged and card.id_number not in logged
