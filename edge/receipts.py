"""Receipt layout, once, as ESC/POS bytes: Vietnamese text rasterised, QR native where supported."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from edge import __version__

FONT_DIR = Path(__file__).resolve().parent / "assets" / "fonts"
FONT_REGULAR = FONT_DIR / "DejaVuSans.ttf"
FONT_BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"
# Printable dots across the paper at 203 dpi when the profile does not say.
DEFAULT_DOTS = {80: 576, 58: 384}


@lru_cache(maxsize=16)
def _font(bold: bool, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_BOLD if bold else FONT_REGULAR), size)


class Receipt:
    """Builds one job. Text goes out as a bitmap because printer code pages cannot be trusted
    with Vietnamese diacritics (TCVN-3 exists on some models only; CP1258 needs decomposition).
    """

    def __init__(self, *, paper_width_mm: int, profile: str, native_qr: bool | None = None) -> None:
        from escpos.printer import Dummy

        self._printer = Dummy(profile=profile)
        media = self._printer.profile.profile_data.get("media", {}).get("width", {})
        if media.get("mm") == paper_width_mm and isinstance(media.get("pixels"), int):
            self.width_dots = media["pixels"]
        else:
            self.width_dots = DEFAULT_DOTS[paper_width_mm]
        supported = bool(self._printer.profile.supports("qrCode"))
        self.native_qr = supported if native_qr is None else native_qr and supported
        self._printer.hw("INIT")

    def text(
        self, text: str, *, size: int = 24, bold: bool = False, center: bool = False
    ) -> Receipt:
        self._printer.image(
            self.render_text(text, size=size, bold=bold, center=center),
            impl="bitImageRaster",
            center=False,
        )
        return self

    def render_text(
        self, text: str, *, size: int = 24, bold: bool = False, center: bool = False
    ) -> Image.Image:
        """The text as a 1-bit image the paper's width. Stacked Vietnamese marks on capitals
        (Ế, Ỗ, Ặ) rise above the font's ascent, so the first line is pushed down by that much
        and the line pitch leaves room for them under a line with descenders."""
        font = _font(bold, size)
        lines = [wrapped for para in text.split("\n") for wrapped in self._wrap(para, font)]
        ascent, descent = font.getmetrics()
        rise = max(0, -min(font.getbbox(line or " ")[1] for line in lines)) + 1
        line_height = max(int(size * 1.3), ascent + descent + rise + 1)
        image = Image.new("1", (self.width_dots, rise + line_height * len(lines) + 4), 1)
        draw = ImageDraw.Draw(image)
        for i, line in enumerate(lines):
            x = (self.width_dots - draw.textlength(line, font=font)) / 2 if center else 0
            draw.text((x, rise + i * line_height), line, font=font, fill=0)
        return image

    def rule(self) -> Receipt:
        image = Image.new("1", (self.width_dots, 10), 1)
        ImageDraw.Draw(image).line([(0, 5), (self.width_dots, 5)], fill=0, width=2)
        self._printer.image(image, impl="bitImageRaster", center=False)
        return self

    def qr(self, data: str, *, size: int = 6) -> Receipt:
        self._printer.set(align="center")
        self._printer.qr(data, size=size, native=self.native_qr, center=not self.native_qr)
        self._printer.set(align="left")
        return self

    def feed(self, lines: int = 1) -> Receipt:
        self._printer.ln(lines)
        return self

    def build(self) -> bytes:
        self._printer.cut()
        return self._printer.output

    def _wrap(self, text: str, font: ImageFont.FreeTypeFont) -> list[str]:
        if not text:
            return [""]
        lines: list[str] = []
        current = ""
        for word in text.split(" "):
            candidate = f"{current} {word}".strip()
            if current and font.getlength(candidate) > self.width_dots:
                lines.append(current)
                current = word
            else:
                current = candidate
        lines.append(current)
        return lines


def selftest_page(
    *,
    kiosk_id: str,
    site: str,
    printer: str,
    paper_width_mm: int,
    profile: str,
    now: dt.datetime,
    native_qr: bool | None = None,
) -> bytes:
    """The technician's test page: every element a real receipt uses, and the alphabet."""
    receipt = Receipt(paper_width_mm=paper_width_mm, profile=profile, native_qr=native_qr)
    receipt.text("TRANG IN THỬ", size=34, bold=True, center=True)
    receipt.text("Test page", size=22, center=True)
    receipt.rule()
    receipt.text(
        f"Ki-ốt: {kiosk_id}\n"
        f"Địa điểm: {site or '-'}\n"
        f"Máy in: {printer}\n"
        f"Khổ giấy: {paper_width_mm} mm\n"
        f"Thời gian: {now.strftime('%d/%m/%Y %H:%M:%S')}\n"
        f"Phần mềm: kiosk-edge {__version__}"
    )
    receipt.rule()
    receipt.text(
        "Tiếng Việt: ă â đ ê ô ơ ư Ă Â Đ Ê Ô Ơ Ư\náàảãạ ấầẩẫậ ếềểễệ ốồổỗộ ớờởỡợ ứừửữự ỳýỷỹỵ"
    )
    receipt.feed()
    receipt.qr(f"KIOSK-TEST|{kiosk_id}|{now.strftime('%Y%m%dT%H%M%S')}")
    receipt.text("Quét mã QR để kiểm tra máy in", size=20, center=True)
    receipt.feed(2)
    return receipt.build()
