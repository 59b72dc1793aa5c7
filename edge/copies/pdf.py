"""The copy as a PDF: A4 pages from the rectified page images, watermark, footer with QR.

reportlab draws it; fonts are DejaVu (bundled, Vietnamese glyphs), embedded as subsets. Page
images go in as JPEG streams byte for byte (no ASCII85 wrapper), so a verifier can hash exactly
what it finds in the file (qrpayload.content_hash). The QR is drawn as vector squares.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import segno
from PIL import Image

from edge import __version__
from edge.errors import BadInput
from edge.receipts import FONT_BOLD, FONT_REGULAR

WATERMARK = "TTPVHCC"
MAX_DPI = 200  # embedded images are resampled to at most this at their printed size
JPEG_QUALITY = 82
DEFAULT_DPI = 200  # a page image that does not say its resolution
MM = 72 / 25.4
A4_PT = (210 * MM, 297 * MM)
MARGIN = 10 * MM
FOOTER_H = 36 * MM
QR_SIZE = 30 * MM


@cache
def _fonts() -> None:
    from reportlab import rl_config
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    # Raw JPEG streams (DCTDecode only): 25 % smaller, and hashable as they are.
    rl_config.useA85 = 0
    pdfmetrics.registerFont(TTFont("DejaVuSans", str(FONT_REGULAR)))
    pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(FONT_BOLD)))


@dataclass(frozen=True, slots=True)
class PageImage:
    """One page ready to embed: JPEG bytes and the size it is drawn at (points)."""

    jpeg: bytes
    width_pt: float
    height_pt: float
    box: tuple[float, float, float, float]  # x, y, w, h on the A4 page


def image_box() -> tuple[float, float, float, float]:
    """Where a page image may go: above the footer, inside the margins."""
    x, y = MARGIN, MARGIN + FOOTER_H + 3 * MM
    return x, y, A4_PT[0] - 2 * MARGIN, A4_PT[1] - MARGIN - y


def prepare_page(image: np.ndarray | Image.Image, dpi: float | None = None) -> PageImage:
    """Fit the page into the image box, aspect kept, never enlarged past its real size."""
    if isinstance(image, Image.Image):
        pil = image.convert("RGB") if image.mode not in ("RGB", "L") else image
        image = np.asarray(pil)
        if image.ndim == 3:
            image = image[:, :, ::-1]  # to BGR, as the camera pipeline gives
    if not isinstance(image, np.ndarray) or not (
        image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)
    ):
        raise BadInput("a page image must be grey or BGR")
    height_px, width_px = image.shape[:2]
    if width_px < 50 or height_px < 50:
        raise BadInput("ảnh trang quá nhỏ (page image smaller than 50 px)")
    dpi = float(dpi or DEFAULT_DPI)
    real_w, real_h = width_px / dpi * 72, height_px / dpi * 72
    bx, by, bw, bh = image_box()
    scale = min(1.0, bw / real_w, bh / real_h)
    w, h = real_w * scale, real_h * scale
    target = (max(1, round(w / 72 * MAX_DPI)), max(1, round(h / 72 * MAX_DPI)))
    if target[0] < width_px:
        image = cv2.resize(image, target, interpolation=cv2.INTER_AREA)
    if image.ndim == 2:
        pil = Image.fromarray(image, "L")
    else:
        pil = Image.fromarray(np.ascontiguousarray(image[:, :, ::-1]), "RGB")
    out = io.BytesIO()
    pil.save(out, "JPEG", quality=JPEG_QUALITY, dpi=(MAX_DPI, MAX_DPI))
    x, y = bx + (bw - w) / 2, by + (bh - h)  # centred across, at the top of the box
    return PageImage(out.getvalue(), w, h, (x, y, w, h))


def load_page_file(path: Path) -> PageImage:
    """A page image file (PNG, JPEG ...), at the resolution it states or DEFAULT_DPI."""
    try:
        with Image.open(path) as im:
            im.load()
            dpi = im.info.get("dpi", (None,))[0]
            return prepare_page(im, dpi if dpi and dpi > 20 else None)
    except FileNotFoundError as err:
        raise BadInput(f"không tìm thấy ảnh trang {path} (page image not found)") from err
    except OSError as err:
        raise BadInput(f"không đọc được ảnh trang {path} (not an image)") from err


def _jpeg_reader(jpeg: bytes):
    """An ImageReader that reportlab names by the JPEG bytes, not by decoding every pixel
    (its default); the stream still goes in untouched through jpeg_fh()."""
    from reportlab.lib.utils import ImageReader

    class JpegReader(ImageReader):
        _dataA = None  # no alpha channel (normally set while decoding)

        def getRGBData(self) -> bytes:
            return jpeg

    return JpegReader(io.BytesIO(jpeg))


def _draw_qr(canvas, matrix: list, x: float, y: float, size: float) -> None:
    n = len(matrix) + 8  # quiet zone of 4 modules each side
    cell = size / n
    path = canvas.beginPath()
    for row, line in enumerate(matrix):
        for col, dark in enumerate(line):
            if dark:
                path.rect(x + (col + 4) * cell, y + size - (row + 5) * cell, cell, cell)
    canvas.setFillColorRGB(0, 0, 0)
    canvas.drawPath(path, stroke=0, fill=1)


def render(
    pages: Sequence[PageImage],
    *,
    code: str,
    issued_at: dt.datetime,
    kiosk_id: str,
    site: str,
    qr_text: str,
    timezone: str = "Asia/Ho_Chi_Minh",
    development: bool = False,
) -> bytes:
    """The unsigned PDF. The QR payload is also the document's Keywords (read by verify)."""
    from reportlab.pdfgen.canvas import Canvas

    if not pages:
        raise BadInput("bản sao phải có ít nhất một trang (a copy needs a page)")
    _fonts()
    local = issued_at.astimezone(ZoneInfo(timezone))
    offset = local.utcoffset() or dt.timedelta()
    when = f"{local:%H:%M:%S %d/%m/%Y} (GMT{offset.total_seconds() / 3600:+g})"
    out = io.BytesIO()
    c = Canvas(out, pagesize=A4_PT, pageCompression=1, initialFontName="DejaVuSans")
    c.setTitle(f"Bản sao điện tử chứng thực {code}")
    c.setAuthor(f"Ki-ốt {kiosk_id}")
    c.setSubject(f"{WATERMARK} e-copy {code}")
    c.setKeywords(qr_text)
    c.setCreator(f"kiosk-edge {__version__}")
    width, height = A4_PT
    total = len(pages)
    matrix = list(segno.make(qr_text, error="m", micro=False).matrix)
    for number, page in enumerate(pages, start=1):
        x, y, w, h = page.box
        c.drawImage(_jpeg_reader(page.jpeg), x, y, w, h)
        c.setStrokeColorRGB(0.75, 0.75, 0.75)
        c.setLineWidth(0.5)
        c.rect(x, y, w, h, stroke=1, fill=0)
        # Watermark along the diagonal, over the image, see-through.
        c.saveState()
        c.setFillColorRGB(0.55, 0.55, 0.6, alpha=0.22)
        c.translate(width / 2, height / 2 + FOOTER_H / 2)
        c.rotate(math.degrees(math.atan2(height, width)))
        c.setFont("DejaVuSans-Bold", 96)
        c.drawCentredString(0, -34, WATERMARK)
        c.restoreState()
        # Footer: text on the left, QR on the right.
        c.setStrokeColorRGB(0, 0, 0)
        c.line(MARGIN, MARGIN + FOOTER_H, width - MARGIN, MARGIN + FOOTER_H)
        _draw_qr(c, matrix, width - MARGIN - QR_SIZE, MARGIN + (FOOTER_H - QR_SIZE) / 2, QR_SIZE)
        lines = [
            ("DejaVuSans-Bold", 10, "BẢN SAO ĐIỆN TỬ ĐƯỢC CHỨNG THỰC TỪ BẢN CHÍNH"),
            ("DejaVuSans-Bold", 9, f"Mã bản sao: {code}"),
            ("DejaVuSans", 8.5, f"Thời gian chứng thực: {when}"),
            ("DejaVuSans", 8.5, f"Ki-ốt: {kiosk_id}" + (f" – {site}" if site else "")),
            ("DejaVuSans", 8.5, f"Trang {number}/{total}"),
            ("DejaVuSans", 7.5, "Quét mã QR hoặc nhập mã bản sao để kiểm tra. Ký số PAdES."),
        ]
        if development:
            lines.append(
                ("DejaVuSans-Bold", 8, "BẢN THỬ NGHIỆM (DEVELOPMENT) – KHÔNG CÓ GIÁ TRỊ PHÁP LÝ")
            )
        ty = MARGIN + FOOTER_H - 12
        for font, size, text in lines:
            c.setFont(font, size)
            if development and text.startswith("BẢN THỬ"):
                c.setFillColorRGB(0.8, 0, 0)
            else:
                c.setFillColorRGB(0, 0, 0)
            c.drawString(MARGIN, ty, text)
            ty -= size + 3.2
        c.showPage()
    c.save()
    return out.getvalue()
