"""Issuing and verifying copies end to end: pdfsig and zbar as independent checkers."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pyzbar.pyzbar import decode

from edge.adapters.printer_sim import SimulatedPrinter
from edge.copies.code import CopySequence, make_code, parse_code
from edge.copies.receipt import copy_receipt
from edge.copies.verify import write_revocations
from edge.errors import StoreError
from edge.events import EventBus
from edge.identity.cccd import parse_cccd
from edge.printing import PrintQueue
from tests.copies_helpers import (
    CITIZEN_QR,
    copy_service,
    nss_db,
    page_image,
    pdfsig,
    write_config,
    write_pages,
)
from tests.escpos_readback import native_qr_payloads, paper
from tests.mqtt_broker import assert_valid

CITIZEN = parse_cccd(CITIZEN_QR, today=dt.date(2026, 11, 23))


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("kiosk")
    with copy_service(root) as service:
        issued = service.issue([page_image(1), page_image(2)], CITIZEN)
        pdf = root / "copy.pdf"
        pdf.write_bytes(issued.pdf)
        yield service, issued, pdf, root


def test_issued_pdf_is_valid_for_pdfsig_and_for_us(kiosk, tmp_path: Path) -> None:
    service, issued, pdf, _ = kiosk
    nss = nss_db(tmp_path / "nss", service.paths.dev_dir / "ca.pem")
    report = pdfsig(pdf, nss)
    assert "Signature is Valid." in report, report
    assert "Certificate is Trusted." in report, report
    assert "Total document signed" in report
    assert "ETSI.CAdES.detached" in report  # PAdES
    assert "HN-TEST-01" in report  # the signer is the kiosk
    verdict = service.verify_pdf(issued.pdf)
    assert verdict.status == "development", verdict
    assert (verdict.code, verdict.kiosk_id, verdict.pages) == (issued.code, "HN-TEST-01", 2)
    assert verdict.development and verdict.details["level"] == "PAdES-B-B"


def test_pdf_pages_footer_watermark_fonts_and_qr(kiosk, tmp_path: Path) -> None:
    _, issued, pdf, _ = kiosk
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True).stdout
    rows = fonts.splitlines()[2:]
    assert rows and all(" yes yes " in row for row in rows), fonts  # embedded subsets only
    assert "DejaVuSans" in fonts
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    assert re.search(r"Pages:\s+2\n", info) and "595.276 x 841.89 pts (A4)" in info
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True
    ).stdout
    assert "BẢN SAO ĐIỆN TỬ ĐƯỢC CHỨNG THỰC TỪ BẢN CHÍNH" in text
    assert f"Mã bản sao: {issued.code}" in text
    assert "Trang 1/2" in text and "Trang 2/2" in text
    assert "Ki-ốt: HN-TEST-01 – Phường Tây Hồ" in text
    local = issued.issued_at.astimezone(dt.timezone(dt.timedelta(hours=7)))
    assert f"{local:%H:%M:%S %d/%m/%Y} (GMT+7)" in text
    assert "KHÔNG CÓ GIÁ TRỊ PHÁP LÝ" in text  # development copies say so
    # The watermark on every page: "TTPVHCC" turned to the diagonal, drawn see-through.
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(issued.pdf))
    for kid in reader.root["/Pages"]["/Kids"]:
        page = kid.get_object()
        content = page["/Contents"].get_object().data
        found = re.search(rb"/(\w+) gs\n([-0-9. ]+) cm\nBT[^\n]*\(TTPVHCC\) Tj", content)
        assert found, content[:300]
        a, b = (float(v) for v in found[2].split()[:2])
        assert 50 < np.degrees(np.arctan2(b, a)) < 60  # A4's diagonal: 54.7 degrees
        assert float(page["/Resources"]["/ExtGState"]["/" + found[1].decode()]["/ca"]) < 0.5
    # 200 dpi: the 30 mm QR's 0.6 mm modules are ~4.8 px. At 110 dpi (~2.6 px a module) zbar
    # missed one payload in a full CI run (each copy's signature makes a different pattern).
    subprocess.run(["pdftoppm", "-r", "200", "-png", str(pdf), str(tmp_path / "p")], check=True)
    pages = sorted(tmp_path.glob("p-*.png"))
    assert len(pages) == 2
    for page in pages:
        codes = decode(Image.open(page))
        assert [c.data.decode() for c in codes] == [issued.qr]
    # The watermark is grey and see-through over the page: the diagonal's middle is not white.
    image = np.asarray(Image.open(pages[0]).convert("L"))
    assert image[300:560, 180:460].min() < 240


@pytest.mark.parametrize("where", ["content", "signature", "last"])
def test_one_byte_tamper_is_caught(kiosk, tmp_path: Path, where: str) -> None:
    service, issued, _, _ = kiosk
    data = bytearray(issued.pdf)
    contents = data.find(b"/Contents <") + len(b"/Contents <")
    at = {"content": len(data) // 3, "signature": contents + 200, "last": len(data) - 1}[where]
    data[at] ^= 0x01
    verdict = service.verify_pdf(bytes(data))
    assert verdict.status == "invalid", (where, verdict)
    if where == "content":
        tampered = tmp_path / "tampered.pdf"
        tampered.write_bytes(bytes(data))
        assert "Signature is Valid." not in pdfsig(tampered)


def test_changed_qr_code_is_caught(kiosk) -> None:
    service, issued, _, _ = kiosk
    assert service.verify_qr(issued.qr).status == "development"
    original = parse_code(issued.code)
    other = make_code(original.kiosk_id, original.day, original.seq + 1).text
    forged = issued.qr.replace(issued.code, other)
    verdict = service.verify_qr(forged)
    assert verdict.status == "invalid" and "signature" in verdict.reason
    assert (
        service.verify_qr(issued.qr.replace(issued.code, issued.code[:-1] + "0")).status
        == "invalid"
    )
    assert service.verify_qr("not a copy").status == "invalid"


def test_untrusted_signer_is_unknown_issuer(kiosk, tmp_path: Path) -> None:
    service, _, _, _ = kiosk
    with copy_service(tmp_path / "other", kiosk_id="HN-OTHER-01") as stranger:  # own dev CA
        foreign = stranger.issue([page_image(9)], CITIZEN)
        assert stranger.verify_pdf(foreign.pdf).status == "development"
    assert service.verify_pdf(foreign.pdf).status == "unknown-issuer"
    assert service.verify_qr(foreign.qr).status == "unknown-issuer"
    # An impostor using this kiosk's id: its PDF has no trusted chain, its QR a wrong key.
    with copy_service(tmp_path / "impostor") as impostor:
        forged = impostor.issue([page_image(9)], CITIZEN)
    assert service.verify_pdf(forged.pdf).status == "unknown-issuer"
    assert service.verify_qr(forged.qr).status == "invalid"
    path = tmp_path / "foreign.pdf"
    path.write_bytes(foreign.pdf)
    report = pdfsig(path, nss_db(tmp_path / "nss", service.paths.dev_dir / "ca.pem"))
    assert "Signature is Valid." in report and "Certificate is Trusted." not in report


def test_other_kiosks_qr_verifies_offline_once_its_certificate_is_known(tmp_path: Path) -> None:
    with copy_service(tmp_path / "b", kiosk_id="HN-TEST-02") as b:
        copy_b = b.issue([page_image(3)], CITIZEN)
        b_ca, b_cert = b.paths.dev_dir / "ca.pem", b.paths.signing_cert
    with copy_service(tmp_path / "a") as a:
        assert a.verify_qr(copy_b.qr).status == "unknown-issuer"
        (a.paths.trust_dir / "kiosks").mkdir(parents=True)
        shutil.copy(b_cert, a.paths.trust_dir / "kiosks" / "HN-TEST-02.pem")
        assert a.verify_qr(copy_b.qr).status == "unknown-issuer"  # its CA is not trusted yet
        shutil.copy(b_ca, a.paths.trust_dir / "center-b.pem")
        verdict = a.verify_qr(copy_b.qr)
        assert (verdict.status, verdict.kiosk_id, verdict.code) == (
            "development",
            "HN-TEST-02",
            copy_b.code,
        )
        assert a.verify_pdf(copy_b.pdf).status == "development"


def test_revocation_list_is_honoured(tmp_path: Path) -> None:
    with copy_service(tmp_path) as service:
        first = service.issue([page_image(1)], CITIZEN)
        second = service.issue([page_image(2)], CITIZEN)
        write_revocations(
            service.paths.revocation_file, {"codes": [{"code": first.code, "reason": "cấp nhầm"}]}
        )
        assert service.verify_pdf(first.pdf).status == "revoked"
        assert service.verify_qr(first.qr).status == "revoked"
        assert service.verify_qr(second.qr).status == "development"
        serial = f"{service.signer.certificate.serial_number:x}"
        later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(tzinfo=None).isoformat()
        write_revocations(
            service.paths.revocation_file,
            {"certificates": [{"serial": serial, "revoked_at": later}]},
        )
        assert (
            service.verify_pdf(second.pdf).status == "development"
        )  # issued before the revocation
        write_revocations(service.paths.revocation_file, {"certificates": [{"serial": serial}]})
        assert service.verify_pdf(second.pdf).status == "revoked"
        assert service.verify_qr(second.qr).reason == "signing certificate revoked"
        with pytest.raises(ValueError):
            write_revocations(service.paths.revocation_file, {"certificates": [{"serial": 5}]})


def test_stored_encrypted_listed_queued_and_purged_after_ack(tmp_path: Path) -> None:
    with copy_service(tmp_path) as service:
        issued = service.issue([page_image(1), page_image(2), page_image(3)], CITIZEN)
        # At the kiosk: Hanoi's support (Resolution 77/2025/NQ-HĐND) covers online ones only.
        assert (issued.fee.fee_vnd, issued.fee.payable_vnd) == (5000, 5000)
        assert [r.code for r in service.list()] == [issued.code]
        assert service.pdf(issued.code) == issued.pdf
        assert service.copies.citizen(issued.code)["name"] == "Nguyễn Văn An"
        message = service.outbox.pending()[0]
        assert (message.id, message.topic) == (f"copy-{issued.code}", "records/copy")
        assert_valid(
            {**message.payload, "id": message.id, "seq": 1, "queued_at": message.payload["time"]},
            "record",
        )
        record = message.payload["data"]
        assert_valid(record, "copy")
        assert record["code"] == issued.code and record["citizen"]["id_number"] == "001099012345"
        assert record["pdf_sha256"] and len(record["pdf_base64"]) > 1000
        service.store.close()  # checkpoints the WAL into the file
        raw = service.store.path.read_bytes()
        assert b"%PDF" not in raw and "Nguyễn".encode() not in raw and b"001099012345" not in raw
        service.store.open()
        now = time.time()
        assert service.purge(now=now) == 0  # central does not have it yet
        service.outbox.acknowledge(message.id)  # PUBACK: only the broker has it
        assert service.purge(now=now + 30 * 86400) == 0
        assert service.acknowledge(["copy-NOT-A-COPY", "telemetry-1"], now=now) == 0
        assert service.acknowledge([message.id], now=now) == 1  # central's record-ack/1
        assert service.acknowledge([message.id], now=now + 86400) == 0  # redelivered: no change
        assert service.purge(now=now) == 0  # retention: 7 days by default
        assert service.purge(now=now + 6 * 86400) == 0
        assert service.purge(now=now + 7 * 86400 + 1) == 1
        assert service.list() == []


def test_sequence_survives_restored_database_lost_floor_and_clock_step_back(tmp_path: Path) -> None:
    with copy_service(tmp_path) as service:
        first = service.issue([page_image(1)], CITIZEN)
        backup = tmp_path / "backup.db"
        with sqlite3.connect(backup) as dst:
            service.store.conn.backup(dst)
        codes = [first.code] + [service.issue([page_image(1)], CITIZEN).code for _ in range(2)]
        db = service.store.path
    # Restore the older database (the floor file is on its own and stays).
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    shutil.copy(backup, db)
    with copy_service(tmp_path) as service:
        assert len(service.list()) == 1
        restored = service.issue([page_image(1)], CITIZEN)
        before = max(parse_code(c).seq for c in codes)
        assert parse_code(restored.code).seq > before
        # Clock stepped back a day: the number still goes up, the code is still new.
        earlier = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        back = service.issue([page_image(1)], CITIZEN, now=earlier)
        assert parse_code(back.code).seq > parse_code(restored.code).seq
        assert back.issued_at < restored.issued_at
        codes += [restored.code, back.code]
    # The floor file lost as well: the database still knows the highest number reserved.
    service.paths.sequence_floor.unlink()
    with copy_service(tmp_path) as service:
        lost = service.issue([page_image(1)], CITIZEN)
        assert parse_code(lost.code).seq > parse_code(back.code).seq
        codes.append(lost.code)
    assert len(set(codes)) == len(codes) == 6


def test_damaged_floor_file_stops_issuing_rather_than_guess(tmp_path: Path) -> None:
    with copy_service(tmp_path) as service:
        service.issue([page_image(1)], CITIZEN)
    service.paths.sequence_floor.write_text("garbage")
    with copy_service(tmp_path) as service:
        with pytest.raises(StoreError, match="damaged"):
            service.issue([page_image(1)], CITIZEN)
        assert len(service.list()) == 1


def test_two_processes_take_separate_blocks(tmp_path: Path) -> None:
    with copy_service(tmp_path) as service:
        daemon = CopySequence(service.store, service.paths.sequence_floor, block=3)
        cli = CopySequence(service.store, service.paths.sequence_floor, block=3)
        numbers = [daemon.reserve(), cli.reserve(), daemon.reserve(), cli.reserve()]
        numbers += [daemon.reserve() for _ in range(3)]
        assert len(set(numbers)) == len(numbers)
        assert numbers == [1, 4, 2, 5, 3, 7, 8]  # 6 is burnt: the CLI stopped
        assert int(service.paths.sequence_floor.read_text()) == 9


def test_receipt_qr_read_back_from_the_printed_job_verifies(tmp_path: Path) -> None:
    with copy_service(tmp_path, extra='fee_channel = "online"') as service:  # Hanoi: Miễn phí
        issued = service.issue([page_image(1), page_image(2), page_image(3)], CITIZEN)
        printer = SimulatedPrinter(tmp_path / "printer")
        printer.plug_in()
        service.printer = PrintQueue(
            printer, store=service.store, key=service.copies.key, bus=EventBus()
        )
        outcome = service.print_receipt(issued.code)  # 80 mm, TM-T88V: native QR command
        assert outcome.printed
        job = next((tmp_path / "printer").glob("*.bin")).read_bytes()
        [native] = native_qr_payloads(job)
        assert service.verify_qr(native).status == "development"
        # The Vietnamese text comes out right: Tesseract (vie) reads the printed raster back.
        from edge.vision.ocr import shared_ocr

        printed = shared_ocr().read(np.asarray(paper(job))).text
        for line in ("BIÊN NHẬN", "Số trang: 3", "Phí: Miễn phí", "Phường Tây Hồ", "77/2025"):
            assert line in printed, printed
        # The code in bold: OCR may see a stray mark next to a dash; the characters are all there.
        assert issued.code in [re.sub(r"[^A-Z0-9-]", "", x) for x in printed.splitlines()]
        # 58 mm with a printer that has no QR command: the QR goes out as a raster image.
        data = copy_receipt(
            code=issued.code, pages=3, fee=issued.fee, issued_at=issued.issued_at,
            kiosk_id="HN-TEST-01", site="Phường Tây Hồ", qr=issued.qr,
            paper_width_mm=58, profile="NT-5890K",
        )  # fmt: skip
        assert not native_qr_payloads(data)
        sheet = paper(data)
        assert sheet.width <= 384 + 32  # 58 mm: 384 dots and the read-back margin
        found = [c.data.decode() for c in decode(sheet)]
        assert found == [issued.qr]
        verdict = service.verify_qr(found[0])
        assert (verdict.status, verdict.code) == ("development", issued.code)


def test_failed_receipt_print_is_kept_for_reprint(tmp_path: Path) -> None:
    with copy_service(tmp_path) as service:
        issued = service.issue([page_image(1)], CITIZEN)
        printer = SimulatedPrinter(tmp_path / "printer")
        printer.plug_in()
        printer.set_sensors(paper="out")
        queue = PrintQueue(printer, store=service.store, key=service.copies.key, bus=EventBus())
        service.printer = queue
        outcome = service.print_receipt(issued.code)
        assert not outcome.printed and "paper" in outcome.error
        assert service.list()[0].receipt_job == outcome.job_id
        printer.set_sensors(paper="ok")
        assert queue.reprint(outcome.job_id, actor="cli").printed


def kiosk_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_issue_verify_list_and_receipt_demo(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    pages = [str(p) for p in write_pages(tmp_path, 2)]
    out = tmp_path / "copy.pdf"
    result = kiosk_cli(
        "copy",
        "issue",
        "--config",
        config,
        "--pages",
        *pages,
        "--citizen-qr",
        CITIZEN_QR,
        "--out",
        str(out),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert set(body) >= {"code", "qr", "pages", "fee_vnd", "payable_vnd", "pdf"}
    assert (body["pages"], body["fee_vnd"], body["payable_vnd"], body["pdf"]) == (
        2,
        4000,
        4000,  # at the kiosk, not online: no Hanoi support (docs/fees.md)
        str(out),
    )
    assert "Nguyễn" not in result.stderr and "001099012345" not in result.stderr
    ok = kiosk_cli("copy", "verify", "--config", config, str(out), "--json")
    # Signed with the development key: sound, but never valid (exit 1, "development").
    assert ok.returncode == 1 and json.loads(ok.stdout)["status"] == "development"
    by_qr = kiosk_cli("copy", "verify", "--config", config, "--qr", body["qr"])
    assert by_qr.returncode == 1 and "development: Bản sao KHÔNG hợp lệ" in by_qr.stdout
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0x20
    out.write_bytes(bytes(data))
    bad = kiosk_cli("copy", "verify", "--config", config, str(out), "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["status"] == "invalid"
    again = tmp_path / "again.pdf"
    assert (
        kiosk_cli("copy", "get", body["code"], "--config", config, "--out", str(again)).returncode
        == 0
    )
    again_verdict = kiosk_cli("copy", "verify", "--config", config, str(again), "--json")
    assert json.loads(again_verdict.stdout)["status"] == "development"
    missing = kiosk_cli(
        "copy", "get", "HN-TEST-01-261123-000099-Q", "--config", config, "--out", str(again)
    )
    assert missing.returncode == 2 and (
        "không có bản sao" in missing.stderr or "ký tự kiểm tra" in missing.stderr
    )
    listing = kiosk_cli("copy", "list", "--config", config, "--json")
    assert [c["code"] for c in json.loads(listing.stdout)["copies"]] == [body["code"]]
    refused = kiosk_cli(
        "copy",
        "issue",
        "--config",
        config,
        "--pages",
        pages[0],
        "--citizen-qr",
        "123|x",
        "--out",
        str(out),
        "--json",
    )
    assert refused.returncode == 2 and "Mã QR trên thẻ không hợp lệ" in refused.stderr
    demo = tmp_path / "demo.bin"
    result = kiosk_cli("receipt", "demo", "--out", str(demo), "--paper", "58", "--json")
    assert result.returncode == 0, result.stderr
    assert [c.data.decode() for c in decode(paper(demo.read_bytes()))] == [
        json.loads(result.stdout)["qr"]
    ]
    ticket = tmp_path / "ticket.bin"
    result = kiosk_cli(
        "receipt", "demo", "--kind", "ticket", "--out", str(ticket), "--paper", "58", "--json"
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["number"] == "C-027" and shown["qr"].startswith("KIOSK-QUEUE|")
    assert [c.data.decode() for c in decode(paper(ticket.read_bytes()))] == [shown["qr"]]
    checklist = tmp_path / "checklist.bin"
    result = kiosk_cli("receipt", "demo", "--kind", "checklist", "--out", str(checklist))
    assert result.returncode == 0, result.stderr
    assert checklist.read_bytes().startswith(b"\x1b@") and len(checklist.read_bytes()) > 10_000


def test_scanned_pages_from_the_vision_pipeline_and_a_card_kept_at_its_size(tmp_path: Path) -> None:
    from edge.copies.pdf import MM
    from edge.vision.page import flat_page

    card = np.full((638, 1011, 3), 235, np.uint8)  # ID-1 at 300 dpi
    card[100:140, 80:900] = 30
    pages = [flat_page(page_image(1)), flat_page(card, dpi=300)]
    assert pages[1].dpi == 300
    with copy_service(tmp_path) as service:
        issued = service.issue(pages, CITIZEN)
        assert service.verify_pdf(issued.pdf).status == "development"
    path = tmp_path / "copy.pdf"
    path.write_bytes(issued.pdf)
    listing = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True)
    rows = [line.split() for line in listing.stdout.splitlines()[2:]]
    assert [r[2] for r in rows] == ["image", "image"] and all(r[8] == "jpeg" for r in rows)
    # The card is drawn at its real size (85.6 mm wide), not blown up to the page.
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(issued.pdf))
    content = reader.root["/Pages"]["/Kids"][1].get_object()["/Contents"].get_object().data
    width_pt = float(
        re.search(rb"q\n([0-9.]+) 0 0 [0-9.]+ [0-9.]+ [0-9.]+ cm\n/FormXob", content)[1]
    )
    assert abs(width_pt / MM - 85.6) < 0.5


def test_with_a_timestamp_authority_the_signature_is_pades_b_t(tmp_path: Path) -> None:
    from tests.tsa_server import running_tsa

    with (
        running_tsa(tmp_path / "tsa-root.pem") as url,
        copy_service(tmp_path / "k", extra=f'tsa_url = "{url}"') as service,
    ):
        issued = service.issue([page_image(1)], CITIZEN)
        assert service.verify_pdf(issued.pdf).status == "unknown-issuer"  # TSA not trusted
        shutil.copy(tmp_path / "tsa-root.pem", service.paths.trust_dir / "tsa-root.pem")
        verdict = service.verify_pdf(issued.pdf)
        assert verdict.status == "development" and verdict.details["level"] == "PAdES-B-T"
        assert service.list()[0].code == issued.code
        path = tmp_path / "stamped.pdf"
        path.write_bytes(issued.pdf)
        report = pdfsig(path, nss_db(tmp_path / "nss", service.paths.dev_dir / "ca.pem"))
        assert "Signature is Valid." in report and "Certificate is Trusted." in report


def test_payable_fee_gets_a_vietqr_and_the_receipt_shows_the_amount(tmp_path: Path) -> None:
    from edge.vietqr import parse

    extra = '[copies.vietqr]\nbank_bin = "970415"\naccount = "113366668888"'
    with copy_service(tmp_path, kiosk_id="HCM-Q1-01", extra=extra) as service:
        fee = service.quote(3)
        assert (fee.fee_vnd, fee.payable_vnd, fee.label_vi) == (5000, 5000, "5.000 đ")
        fields = parse(service.payment_qr(fee, reference="S0042"))
        assert fields["54"] == "5000" and fields["62"] == "0820PHI CHUNG THUC S0042"
        assert "970415" in fields["38"] and "113366668888" in fields["38"]
        issued = service.issue([page_image(1), page_image(2), page_image(3)], CITIZEN)
        assert (issued.fee.payable_vnd, issued.code[:10]) == (5000, "HCM-Q1-01-")
        printed = shared_text(service.receipt(issued.code))
        assert "Phí: 5.000 đ" in printed and "Lệ phí" not in printed, printed
        assert "226/2016/TT-BTC" in printed, printed
    online = 'fee_channel = "online"\n' + extra
    with copy_service(tmp_path / "hn", extra=online) as hanoi:
        assert hanoi.payment_qr(hanoi.quote(3), reference="S1") is None  # Miễn phí


def shared_text(job: bytes) -> str:
    from edge.vision.ocr import shared_ocr

    return shared_ocr().read(np.asarray(paper(job))).text


def issue_cli(config: str, page: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return kiosk_cli(
        "copy", "issue", "--config", config, "--pages", str(page),
        "--citizen-qr", CITIZEN_QR, "--out", str(out), *extra,
    )  # fmt: skip


def test_cli_issue_removes_leftovers_and_uses_one_number_per_run(tmp_path: Path) -> None:
    """Issue 21 item 8: a run killed while writing left `.NAME.pdf.tmp` (a hidden copy of a
    citizen's document) for good, and every run burnt a block of 10 copy numbers."""
    import fcntl

    config = str(write_config(tmp_path))
    [page] = write_pages(tmp_path, 1)
    out = tmp_path / "copy.pdf"
    leftovers = [tmp_path / ".earlier.pdf.tmp", tmp_path / ".copy.pdf.tmp"]
    for path in leftovers:
        path.write_bytes(b"%PDF-1.7 what a killed run had written")
    kept = {  # not ours, or another run's write in progress: left alone
        tmp_path / "earlier.pdf.tmp": b"not hidden",
        tmp_path / ".earlier.pdf.tmp.bak": b"someone's backup",
        tmp_path / ".notes.txt.tmp": b"another program's",
        tmp_path / ".busy.pdf.tmp": b"being written",
    }
    for path, data in kept.items():
        path.write_bytes(data)
    (tmp_path / ".folder.pdf.tmp").mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"a file a planted link points to")
    (tmp_path / ".link.pdf.tmp").symlink_to(secret)
    with open(tmp_path / ".busy.pdf.tmp", "rb") as busy:
        fcntl.flock(busy, fcntl.LOCK_EX)  # as the writer of a run in progress holds it
        first = issue_cli(config, page, out, "--json")
    assert first.returncode == 0, first.stderr
    assert not any(path.exists() for path in leftovers)
    assert all(path.read_bytes() == data for path, data in kept.items())
    assert (tmp_path / ".folder.pdf.tmp").is_dir() and (tmp_path / ".link.pdf.tmp").is_symlink()
    assert secret.read_bytes() == b"a file a planted link points to"
    assert out.read_bytes().startswith(b"%PDF") and out.stat().st_mode & 0o777 == 0o600
    # A link planted at the very name the PDF is written through is removed, not followed.
    (tmp_path / ".second.pdf.tmp").symlink_to(secret)
    second = issue_cli(config, page, tmp_path / "second.pdf", "--json")
    assert second.returncode == 0, second.stderr
    assert not (tmp_path / ".second.pdf.tmp").is_symlink()
    assert secret.read_bytes() == b"a file a planted link points to"
    assert (tmp_path / "second.pdf").read_bytes().startswith(b"%PDF")
    codes = [json.loads(r.stdout)["code"] for r in (first, second)]
    assert [parse_code(c).seq for c in codes] == [1, 2]
    with copy_service(tmp_path) as service:  # the next number is 3: nothing was burnt
        assert service.sequence.high() == 2
        assert int(service.paths.sequence_floor.read_text()) == 2


def test_cli_issue_that_cannot_write_its_file_names_the_issued_copy(tmp_path: Path) -> None:
    """A failure after the commit (here the temporary name is taken by a folder, which is not
    ours to remove) says which copy was issued and how to get it; nothing is lost."""
    config = str(write_config(tmp_path))
    [page] = write_pages(tmp_path, 1)
    out = tmp_path / "copy.pdf"
    (tmp_path / ".copy.pdf.tmp").mkdir()
    failed = issue_cli(config, page, out)
    assert failed.returncode == 1 and not out.exists()
    [announced, error] = failed.stderr.splitlines()
    code = re.fullmatch(r"kiosk: copy (\S+) issued, writing .*copy\.pdf", announced)[1]
    assert error.startswith(f"kiosk: copy {code} was issued and stored, but {out} could not be")
    assert error.endswith(f"`kiosk copy get {code} --out FILE` writes it")
    assert "Traceback" not in failed.stderr
    as_json = issue_cli(config, page, out, "--json")
    assert as_json.returncode == 1
    body = json.loads(as_json.stderr)["error"]  # --json: stderr stays one JSON document
    assert body["code"] == "copy_not_written" and "kiosk copy get" in body["message"]
    recovered = tmp_path / "recovered.pdf"
    got = kiosk_cli("copy", "get", code, "--config", config, "--out", str(recovered))
    assert got.returncode == 0, got.stderr
    verdict = kiosk_cli("copy", "verify", "--config", config, str(recovered), "--json")
    assert json.loads(verdict.stdout)["status"] == "development"  # sound, development key
    # A target that is a folder is refused before a number is used.
    (tmp_path / "folder.pdf").mkdir()
    refused = issue_cli(config, page, tmp_path / "folder.pdf")
    assert refused.returncode == 2 and "is a folder" in refused.stderr
    with copy_service(tmp_path) as service:
        assert [parse_code(r.code).seq for r in service.list()] == [2, 1]
        assert service.sequence.high() == 2
