"""The certified copy: the pages as captured, the certification statement, two PAdES signatures.

make_copy() renders the PDF (reportlab; each page image embedded as its JPEG bytes, untouched, so
a verifier can hash what it finds in the file), with the TTPVHCC watermark on every page and a
last page carrying the certification (Circular 01/2020/TT-BTP's statement, rendered through
fleet.certify.statement), the copy's code and its KC2 QR (protocol.copyqr, signed by the agency seal key). Then two signatures made through PKCS#11
(pyHanko's PKCS11Signer on python-pkcs11): the officer's first (PAdES B-B, B-T with a TSA), then
the agency seal, the last signature covering the whole file (B-T with a TSA; B-LT when CRLs are
given: the revocation data goes into the file's DSS).

Fonts: DejaVu Sans (Vietnamese glyphs). fleet must not import edge, so the font is found as a
file: $FLEET_FONT_DIR, then the system's (Debian fonts-dejavu-core:
/usr/share/fonts/truetype/dejavu), then the copy edge ships as package data
(edge/assets/fonts, by path, next to this package in a checkout or site-packages).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from fleet.certify.statement import Certification, signature_block, statement_lines
from protocol import copyqr

WATERMARK = "TTPVHCC"
MM = 72 / 25.4
A4_PT = (210 * MM, 297 * MM)
MARGIN = 12 * MM
FOOTER_H = 14 * MM
QR_SIZE = 42 * MM
THUMBNAIL_PX = 240
OFFICER_FIELD = "OfficerSignature"
AGENCY_FIELD = "AgencySeal"
TIMEZONE = "Asia/Ho_Chi_Minh"
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")


@dataclass(frozen=True)
class TokenKey:
    """A key on a PKCS#11 token, with its certificate."""

    module: str
    token_label: str
    key_label: str
    pin: str
    cert_chain: tuple[bytes, ...] = ()  # DER, signer first; read from the token when empty


@dataclass(frozen=True)
class CopyPage:
    jpeg: bytes
    dpi: float


@dataclass(frozen=True)
class MadeCopy:
    pdf: bytes
    qr: str
    thumbnail: bytes  # JPEG of page 1, THUMBNAIL_PX wide
    sha256: str  # hex SHA-256 of pdf


class CopyError(RuntimeError):
    """The copy could not be made (font missing, token or key unusable, bad page)."""


def font_dir() -> Path:
    """Where DejaVu Sans is (see the module's docstring)."""
    here = Path(__file__).resolve().parents[2]
    candidates = [
        *([Path(os.environ["FLEET_FONT_DIR"])] if os.environ.get("FLEET_FONT_DIR") else []),
        Path("/usr/share/fonts/truetype/dejavu"),
        here / "edge" / "assets" / "fonts",
    ]
    for folder in candidates:
        if all((folder / name).is_file() for name in FONT_FILES):
            return folder
    raise CopyError("DejaVu Sans not found (set FLEET_FONT_DIR or install fonts-dejavu-core)")


@cache
def _fonts() -> None:
    from reportlab import rl_config
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    rl_config.useA85 = 0  # raw JPEG streams: hashable as they are
    folder = font_dir()
    pdfmetrics.registerFont(TTFont("DejaVuSans", str(folder / FONT_FILES[0])))
    pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(folder / FONT_FILES[1])))


def _jpeg_reader(jpeg: bytes) -> Any:
    """An ImageReader that embeds the JPEG bytes untouched (DCTDecode), without decoding them."""
    from reportlab.lib.utils import ImageReader

    class JpegReader(ImageReader):
        _dataA = None

        def getRGBData(self) -> bytes:
            return jpeg

    return JpegReader(io.BytesIO(jpeg))


def _image_size(jpeg: bytes) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(jpeg)) as im:
            if im.format != "JPEG":
                raise CopyError("a page must be a JPEG image")
            return im.size
    except OSError as err:
        raise CopyError("a page is not a readable image") from err


def _watermark(c: Any) -> None:
    width, height = A4_PT
    c.saveState()
    c.setFillColorRGB(0.55, 0.55, 0.6, alpha=0.22)
    c.translate(width / 2, height / 2)
    c.rotate(math.degrees(math.atan2(height, width)))
    c.setFont("DejaVuSans-Bold", 96)
    c.drawCentredString(0, -34, WATERMARK)
    c.restoreState()


def _footer(c: Any, code: str, number: int, total: int, agency: str) -> None:
    c.setFillColorRGB(0, 0, 0)
    c.setStrokeColorRGB(0, 0, 0)
    c.setLineWidth(0.5)
    c.line(MARGIN, MARGIN + FOOTER_H - 4, A4_PT[0] - MARGIN, MARGIN + FOOTER_H - 4)
    c.setFont("DejaVuSans", 8.5)
    c.drawString(MARGIN, MARGIN + FOOTER_H - 15, f"Bản sao chứng thực điện tử – Mã: {code}")
    c.drawString(MARGIN, MARGIN + FOOTER_H - 26, agency)
    c.drawRightString(A4_PT[0] - MARGIN, MARGIN + FOOTER_H - 15, f"Trang {number}/{total}")


def _draw_qr(c: Any, text: str, x: float, y: float, size: float) -> None:
    import segno

    matrix = list(segno.make(text, error="m", micro=False).matrix)
    cell = size / (len(matrix) + 8)  # quiet zone of 4 modules each side
    path = c.beginPath()
    for row, line in enumerate(matrix):
        for col, dark in enumerate(line):
            if dark:
                path.rect(x + (col + 4) * cell, y + size - (row + 5) * cell, cell, cell)
    c.setFillColorRGB(0, 0, 0)
    c.drawPath(path, stroke=0, fill=1)


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    from reportlab.lib.utils import simpleSplit

    return simpleSplit(text, font, size, width) or [""]


def render(
    pages: Sequence[CopyPage],
    *,
    code: str,
    certification: Certification,
    qr: str,
    doc_type: str = "",
) -> bytes:
    """The unsigned PDF: the pages, then the certification page. The QR text is also the
    document's Keywords; its Subject carries the number and the book (read by verifiers)."""
    from reportlab.pdfgen.canvas import Canvas

    if not pages:
        raise CopyError("a copy needs at least one page")
    _fonts()
    out = io.BytesIO()
    c = Canvas(out, pagesize=A4_PT, pageCompression=1)
    c.setFont("DejaVuSans", 10)
    number, book = f"{certification.number:02d}", certification.book_ref()
    c.setTitle(f"Bản sao chứng thực {code}" + (f" – {doc_type}" if doc_type else ""))
    c.setAuthor(certification.agency)
    c.setSubject(f"{WATERMARK} | Mã: {code} | Số chứng thực: {number} | Quyển số: {book}")
    c.setKeywords(qr)
    c.setCreator("kiosk-edge fleet certifier")
    width, height = A4_PT
    total = len(pages) + 1
    box_x, box_y = MARGIN, MARGIN + FOOTER_H
    box_w, box_h = width - 2 * MARGIN, height - MARGIN - box_y
    for index, page in enumerate(pages, start=1):
        px_w, px_h = _image_size(page.jpeg)
        dpi = page.dpi if page.dpi and page.dpi > 20 else 200.0
        real_w, real_h = px_w / dpi * 72, px_h / dpi * 72
        scale = min(1.0, box_w / real_w, box_h / real_h)
        w, h = real_w * scale, real_h * scale
        x, y = box_x + (box_w - w) / 2, box_y + (box_h - h)
        c.drawImage(_jpeg_reader(page.jpeg), x, y, w, h)
        c.setStrokeColorRGB(0.75, 0.75, 0.75)
        c.setLineWidth(0.5)
        c.rect(x, y, w, h, stroke=1, fill=0)
        _watermark(c)
        _footer(c, code, index, total, certification.agency)
        c.showPage()

    # The certification page, per the model statement.
    y = height - MARGIN - 14
    c.setFillColorRGB(0, 0, 0)
    c.setFont("DejaVuSans-Bold", 11)
    for line in _wrap(certification.agency.upper(), "DejaVuSans-Bold", 11, width / 2 - MARGIN):
        c.drawString(MARGIN, y, line)
        y -= 15
    y -= 18
    c.setFont("DejaVuSans-Bold", 14)
    c.drawCentredString(width / 2, y, "LỜI CHỨNG CHỨNG THỰC BẢN SAO TỪ BẢN CHÍNH")
    y -= 28
    text_w = width - 2 * MARGIN
    for line in statement_lines(certification):
        for part in _wrap(line, "DejaVuSans", 11.5, text_w):
            c.setFont("DejaVuSans", 11.5)
            c.drawString(MARGIN, y, part)
            y -= 17
    y -= 10
    qr_top = y
    block_x = width / 2 + 10 * MM
    for i, line in enumerate(signature_block(certification)):
        font = "DejaVuSans-Bold" if line.isupper() else "DejaVuSans"
        c.setFont(font, 11)
        for part in _wrap(line, font, 11, width - MARGIN - block_x + 30 * MM):
            c.drawCentredString((block_x + width - MARGIN) / 2, y, part)
            y -= 16
        if i == 0:
            y -= 4
    y -= 6
    c.setFont("DejaVuSans", 9)
    c.drawCentredString((block_x + width - MARGIN) / 2, y, "(Đã ký số)")
    _draw_qr(c, qr, MARGIN, qr_top - QR_SIZE, QR_SIZE)
    c.setFont("DejaVuSans-Bold", 9.5)
    c.drawString(MARGIN, qr_top - QR_SIZE - 12, f"Mã bản sao: {code}")
    c.setFont("DejaVuSans", 8)
    notes = [
        "Quét mã QR để kiểm tra bản sao trên trang tra cứu công khai;",
        "ki-ốt kiểm tra được cả khi không có mạng (chữ ký của cơ quan trong mã).",
        "Bản sao mang hai chữ ký số PAdES: người thực hiện chứng thực và cơ quan.",
    ]
    for i, note in enumerate(notes):
        c.drawString(MARGIN, qr_top - QR_SIZE - 26 - 11 * i, note)
    _watermark(c)
    _footer(c, code, total, total, certification.agency)
    c.showPage()
    c.save()
    return out.getvalue()


def _asn1(der: bytes) -> Any:
    from asn1crypto import x509 as asn1_x509

    return asn1_x509.Certificate.load(der)


def _open(key: TokenKey) -> Any:
    from pyhanko.config.pkcs11 import TokenCriteria
    from pyhanko.sign.pkcs11 import open_pkcs11_session

    try:
        return open_pkcs11_session(
            key.module, token_criteria=TokenCriteria(label=key.token_label), user_pin=key.pin
        )
    except Exception as err:  # python-pkcs11 raises many types (no token, wrong PIN ...)
        raise CopyError(f"token {key.token_label!r} unusable: {type(err).__name__}") from err


def _signer(session: Any, key: TokenKey) -> Any:
    from pyhanko.sign.pkcs11 import PKCS11Signer

    if key.cert_chain:
        return PKCS11Signer(
            session,
            key_label=key.key_label,
            signing_cert=_asn1(key.cert_chain[0]),
            ca_chain=[_asn1(d) for d in key.cert_chain[1:]],
            use_raw_mechanism=True,
        )
    # use_raw_mechanism: pyHanko hashes, the token signs with CKM_ECDSA (SoftHSM2 and many
    # smart cards have no CKM_ECDSA_SHA256).
    return PKCS11Signer(
        session, key_label=key.key_label, cert_label=key.key_label, use_raw_mechanism=True
    )


def _sign_raw(session: Any, key_label: str) -> Any:
    from pkcs11 import Mechanism, ObjectClass

    private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label)

    def sign(data: bytes) -> bytes:
        # CKM_ECDSA over the SHA-256 digest (SoftHSM2 has no CKM_ECDSA_SHA256): r||s.
        return bytes(private.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA))

    return sign


def sign_pdf(
    pdf: bytes,
    signer: Any,
    *,
    field: str,
    reason: str,
    location: str,
    tsa_url: str | None = None,
    crls: Sequence[bytes] = (),
    trust_roots: Sequence[bytes] = (),
) -> bytes:
    """One more PAdES signature (incremental). With crls: B-LT (validation data embedded)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.fields import SigSeedSubFilter

    timestamper = None
    if tsa_url:
        from pyhanko.sign.timestamps import HTTPTimeStamper

        timestamper = HTTPTimeStamper(tsa_url)
    context = None
    if crls:
        from asn1crypto import crl as asn1_crl
        from pyhanko_certvalidator import ValidationContext

        context = ValidationContext(
            trust_roots=[_asn1(d) for d in trust_roots],
            crls=[asn1_crl.CertificateList.load(d) for d in crls],
            allow_fetching=False,
            revocation_mode="soft-fail",
        )
    meta = signers.PdfSignatureMetadata(
        field_name=field,
        subfilter=SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        reason=reason,
        location=location,
        embed_validation_info=context is not None,
        validation_context=context,
        use_pades_lta=False,
    )
    out = io.BytesIO()
    signers.PdfSigner(
        meta, signer=signer, timestamper=timestamper, new_field_spec=fields.SigFieldSpec(field)
    ).sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), output=out)
    return out.getvalue()


def thumbnail(jpeg: bytes, width: int = THUMBNAIL_PX) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as im:
        rgb = im.convert("RGB")
    height = max(1, round(rgb.height * width / rgb.width))
    small = rgb.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=70)
    return out.getvalue()


def _host(verify_base: str) -> str:
    parts = urlsplit(verify_base if "://" in verify_base else f"https://{verify_base}")
    if parts.scheme.lower() != "https" or not parts.netloc or parts.path.strip("/"):
        raise CopyError("verify_base must be https://<host>[:port] (the QR path is /v/...)")
    return copyqr.normalise_host(parts.netloc)


def make_copy(
    pages: Sequence[CopyPage],
    *,
    code: str,
    certification: Certification,
    officer: TokenKey,
    agency: TokenKey,
    verify_base: str,
    tsa_url: str | None = None,
    doc_type: str = "",
    crls: Sequence[bytes] = (),
    trust_roots: Sequence[bytes] = (),
    issued_at: dt.datetime | None = None,
) -> MadeCopy:
    """Render and sign one certified copy (officer, then agency seal).

    crls (DER) and trust_roots (DER): revocation data for the agency signature's B-LT (both
    needed; without crls the agency signature is B-T with tsa_url, else B-B)."""
    if not pages:
        raise CopyError("a copy needs at least one page")
    when = (issued_at or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    digest = copyqr.content_hash([p.jpeg for p in pages])
    place = f"{certification.place}, {when.astimezone(ZoneInfo(TIMEZONE)):%d/%m/%Y}"
    agency_session = _open(agency)
    try:
        qr = copyqr.build(
            host=_host(verify_base),
            code=code,
            issued_at=when,
            digest=digest,
            sign_raw=_sign_raw(agency_session, agency.key_label),
        )
        pdf = render(pages, code=code, certification=certification, qr=qr, doc_type=doc_type)
        officer_session = _open(officer)
        try:
            pdf = sign_pdf(
                pdf,
                _signer(officer_session, officer),
                field=OFFICER_FIELD,
                reason=f"Chứng thực bản sao từ bản chính, số {certification.number:02d}, "
                f"quyển số {certification.book_ref()}",
                location=place,
                tsa_url=tsa_url,
            )
        finally:
            officer_session.close()
        pdf = sign_pdf(
            pdf,
            _signer(agency_session, agency),
            field=AGENCY_FIELD,
            reason=f"Đóng dấu của {certification.agency}",
            location=place,
            tsa_url=tsa_url,
            crls=crls,
            trust_roots=trust_roots,
        )
    finally:
        agency_session.close()
    return MadeCopy(
        pdf=pdf,
        qr=qr,
        thumbnail=thumbnail(pages[0].jpeg),
        sha256=hashlib.sha256(pdf).hexdigest(),
    )


def timed_make_copy(*args: Any, **kwargs: Any) -> tuple[MadeCopy, float]:
    """make_copy and its wall-clock seconds (bench and tests)."""
    start = time.perf_counter()
    made = make_copy(*args, **kwargs)
    return made, time.perf_counter() - start
