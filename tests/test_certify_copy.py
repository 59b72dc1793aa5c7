"""The certified copy made at central: render, two PAdES signatures through PKCS#11 (SoftHSM2
tokens), the KC2 QR; checked with poppler's pdfsig and pdftotext, zbar, pyHanko."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleet.certify.copy import CopyError, CopyPage, MadeCopy, TokenKey, make_copy
from fleet.certify.statement import Certification
from protocol import copyqr
from tests.copies_helpers import nss_db, page_image, pdfsig
from tests.softhsm import SoftPki, shared_pki

CERT = Certification(
    agency="Ủy ban nhân dân phường Tây Hồ",
    place="phường Tây Hồ, thành phố Hà Nội",
    on=dt.date(2026, 12, 5),
    officer_name="Nguyễn Văn An",
    officer_title="PHÓ CHỦ TỊCH",
    number=17,
    year=2026,
    pages=2,
)
CODE = "TH-2026-000017-K7"
VERIFY = "https://verify.tayho.hanoi.gov.vn"


def jpeg_page(number: int) -> CopyPage:
    ok, data = cv2.imencode(".jpg", page_image(number), [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return CopyPage(jpeg=data.tobytes(), dpi=200)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SoftPki:
    return shared_pki(tmp_path_factory.mktemp("softhsm"))


def keys(pki: SoftPki, *, with_chain: bool = False) -> tuple[TokenKey, TokenKey]:
    der = serialization.Encoding.DER
    root = (pki.root.public_bytes(der),)
    officer = TokenKey(pki.module, pki.officer_token, pki.key_label, pki.pin)
    agency = TokenKey(pki.module, pki.agency_token, pki.key_label, pki.pin)
    if with_chain:
        officer = dataclasses.replace(
            officer, cert_chain=(pki.officer_cert.public_bytes(der), *root)
        )
        agency = dataclasses.replace(agency, cert_chain=(pki.agency_cert.public_bytes(der), *root))
    return officer, agency


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from tests.tsa_server import running_tsa

    ca = tmp_path_factory.mktemp("tsa") / "tsa-ca.pem"
    with running_tsa(ca) as url:
        yield url, ca


@pytest.fixture(scope="module")
def made(pki: SoftPki, tsa: tuple[str, Path]) -> tuple[MadeCopy, float]:
    officer, agency = keys(pki)
    der = serialization.Encoding.DER
    tsa_root = x509.load_pem_x509_certificate(tsa[1].read_bytes()).public_bytes(der)
    start = time.perf_counter()
    copy = make_copy(
        [jpeg_page(1), jpeg_page(2)],
        code=CODE,
        certification=CERT,
        officer=officer,
        agency=agency,
        verify_base=VERIFY,
        tsa_url=tsa[0],
        doc_type="Giấy khai sinh",
        crls=[pki.crl.public_bytes(der)],
        trust_roots=[pki.root.public_bytes(der), tsa_root],
    )
    return copy, time.perf_counter() - start


def test_pdfsig_reports_both_signatures_valid_and_trusted(
    made: tuple[MadeCopy, float], pki: SoftPki, tmp_path: Path
) -> None:
    copy, seconds = made
    pdf = tmp_path / "copy.pdf"
    pdf.write_bytes(copy.pdf)
    report = pdfsig(pdf, nss_db(tmp_path / "nss", pki.root_pem))
    blocks = re.split(r"^Signature #\d+:", report, flags=re.M)[1:]
    assert len(blocks) == 2, report
    for block in blocks:
        assert "Signature Validation: Signature is Valid." in block, report
        assert "Certificate Validation: Certificate is Trusted." in block, report
    assert "Nguyễn Văn An" in blocks[0] and "Ủy ban nhân dân phường Tây Hồ" in blocks[1]
    assert "Field Name: OfficerSignature" in blocks[0] and "Field Name: AgencySeal" in blocks[1]
    # pdfsig says "Not total document signed" of the seal too: B-LT puts the revocation data (DSS)
    # in an update after it. pyHanko checks that update in tests/test_certified_verify.py.
    # Without the test root trusted, pdfsig does not call them trusted (the check can fail).
    (tmp_path / "nss-empty").mkdir()
    subprocess.run(
        ["certutil", "-N", "-d", f"sql:{tmp_path / 'nss-empty'}", "--empty-password"], check=True
    )
    untrusted = pdfsig(pdf, f"sql:{tmp_path / 'nss-empty'}")
    assert "Certificate is Trusted" not in untrusted
    print(f"\nsigning time per copy (2 pages, SoftHSM2, B-T + B-LT): {seconds:.3f} s")


def test_text_of_the_copy_carries_the_certification(made: tuple[MadeCopy, float], tmp_path: Path):
    copy, _ = made
    pdf = tmp_path / "copy.pdf"
    pdf.write_bytes(copy.pdf)
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    pages = text.split("\f")
    assert len([p for p in pages if p.strip()]) == 3  # two pages as captured + certification
    last = pages[2]
    for expected in [
        "Chứng thực bản sao đúng với bản chính",
        "Số chứng thực: 17",
        "Quyển số: 01/2026-SCTĐT/BS",
        "Tại phường Tây Hồ, thành phố Hà Nội, ngày 05 tháng 12 năm 2026",
        "PHÓ CHỦ TỊCH",
        "Nguyễn Văn An",
        "ỦY BAN NHÂN DÂN PHƯỜNG TÂY HỒ",
        f"Mã bản sao: {CODE}",
    ]:
        assert expected in last, (expected, last)
    for page in pages[:3]:
        assert f"Mã: {CODE}" in page and "Ủy ban nhân dân phường Tây Hồ" in page
    # The watermark is drawn on every page (pdftotext splits rotated text: read the streams).
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(copy.pdf))
    for number in range(3):
        content = reader.root["/Pages"]["/Kids"][number]["/Contents"].get_object().data
        assert content.count(b"(TTPVHCC) Tj") == 1, number
    assert copy.sha256 == __import__("hashlib").sha256(copy.pdf).hexdigest()
    assert copy.thumbnail[:2] == b"\xff\xd8" and len(copy.thumbnail) < 40_000


def _page_pngs(pdf: bytes, tmp_path: Path, dpi: int = 150) -> list[Path]:
    (tmp_path / "copy.pdf").write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-png", str(tmp_path / "copy.pdf"), str(tmp_path / "p")],
        check=True,
        timeout=120,
    )
    return sorted(tmp_path.glob("p-*.png"))


def test_kc2_qr_is_small_reads_back_and_is_signed_by_the_agency_key(
    made: tuple[MadeCopy, float], pki: SoftPki, tmp_path: Path
) -> None:
    import segno
    from PIL import Image
    from pyzbar.pyzbar import decode

    copy, _ = made
    assert copy.qr.startswith("HTTPS://VERIFY.TAYHO.HANOI.GOV.VN/V/" + CODE + "/")
    alnum = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
    assert set(copy.qr) <= alnum
    qr = segno.make(copy.qr, error="m", micro=False)
    assert qr.mode == "alphanumeric"
    modules = qr.symbol_size(border=0)[0]
    # On a 58 mm receipt (203 dpi: 8 dots/mm, 384 printable dots = 48 mm) at 6 dots a module.
    width_mm = (modules + 8) * 6 / 8  # with the 4-module quiet zone each side
    print(
        f"\nKC2 QR: {len(copy.qr)} chars, version {qr.version}-M, {modules} modules, "
        f"{modules * 6 / 8:.1f} mm ({width_mm:.1f} mm with quiet zone) at 6 dots/module"
    )
    assert qr.version <= 10 and modules * 6 <= 384

    # Printed as on the receipt (6 px a module) and as on the PDF's last page: zbar reads both.
    out = tmp_path / "qr.png"
    qr.save(str(out), scale=6, border=4)
    assert [d.data.decode() for d in decode(Image.open(out))] == [copy.qr]
    last = _page_pngs(copy.pdf, tmp_path)[-1]
    assert copy.qr in [d.data.decode() for d in decode(Image.open(last))]

    parsed = copyqr.parse(copy.qr.lower())  # a reader that lower-cases still works
    assert parsed.code == CODE and parsed.host == "VERIFY.TAYHO.HANOI.GOV.VN"
    assert parsed.content_hash == copyqr.content_hash([jpeg_page(1).jpeg, jpeg_page(2).jpeg])
    assert parsed.signer([pki.officer_cert, pki.agency_cert]) == pki.agency_cert
    assert parsed.signer([pki.officer_cert]) is None
    for forged in [
        copy.qr.replace(f"/V/{CODE}/", "/V/TH-2026-000018-K7/"),
        copy.qr.replace("VERIFY.TAYHO", "VERIFY.TAYHQ"),
    ]:
        assert copyqr.parse(forged).signer([pki.agency_cert]) is None
    with pytest.raises(copyqr.CopyQrInvalid):
        copyqr.parse(copy.qr[:-1])
    with pytest.raises(copyqr.CopyQrInvalid):
        copyqr.parse("KC1:HN-TAYHO-01-261123-000005-X:HN-TAYHO-01:1")


def test_chain_given_instead_of_read_from_the_token_and_bad_inputs(
    pki: SoftPki, tmp_path: Path
) -> None:
    officer, agency = keys(pki, with_chain=True)
    start = time.perf_counter()
    copy = make_copy(
        [jpeg_page(1)],
        code=CODE,
        certification=CERT,
        officer=officer,
        agency=agency,
        verify_base=VERIFY,
    )
    seconds = time.perf_counter() - start
    print(f"\nsigning time per copy (1 page, SoftHSM2, B-B + B-B): {seconds:.3f} s")
    pdf = tmp_path / "bb.pdf"
    pdf.write_bytes(copy.pdf)
    report = pdfsig(pdf, nss_db(tmp_path / "nss", pki.root_pem))
    assert report.count("Signature is Valid.") == 2 and report.count("is Trusted.") == 2
    assert "Total document signed" in report.split("Signature #2:")[1]  # B-B: nothing after

    wrong_pin = dataclasses.replace(officer, pin="000000")
    with pytest.raises(CopyError, match="officer-nva"):
        make_copy(
            [jpeg_page(1)],
            code=CODE,
            certification=CERT,
            officer=wrong_pin,
            agency=agency,
            verify_base=VERIFY,
        )
    with pytest.raises(CopyError, match="verify_base"):
        make_copy(
            [jpeg_page(1)],
            code=CODE,
            certification=CERT,
            officer=officer,
            agency=agency,
            verify_base="http://verify.example/x",
        )
