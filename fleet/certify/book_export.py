"""The certification book as the register the law asks for: CSV (for Excel) and PDF (a table)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class BookEntry(Protocol):
    """What a row of the register shows (fleet.certify.service.BookEntry is one)."""

    @property
    def number(self) -> int: ...

    @property
    def book(self) -> str: ...

    @property
    def certified_at(self) -> float: ...

    @property
    def requester(self) -> str: ...

    @property
    def doc_type(self) -> str: ...

    @property
    def pages(self) -> int: ...

    @property
    def officer_name(self) -> str: ...

    @property
    def officer_title(self) -> str: ...

    @property
    def fee_vnd(self) -> int: ...

    @property
    def copy_code(self) -> str: ...


HEADERS = (
    ("Số chứng thực", "Number"),
    ("Quyển số", "Book"),
    ("Ngày chứng thực", "Date"),
    ("Người yêu cầu", "Requester"),
    ("Giấy tờ", "Document"),
    ("Số trang", "Pages"),
    ("Người ký chứng thực", "Officer"),
    ("Lệ phí (đồng)", "Fee (VND)"),
    ("Mã bản sao", "Copy code"),
)

# DejaVu has the Vietnamese glyphs: the system's (Debian fonts-dejavu-core), else the copy the
# repository ships for the kiosk's documents (read as a file: fleet imports nothing of edge).
_FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path(__file__).resolve().parents[2] / "edge" / "assets" / "fonts",
)


@dataclass(frozen=True)
class Title:
    agency: str
    book: str
    period: str


def _row(e: BookEntry, tz: dt.tzinfo) -> list[Any]:
    when = dt.datetime.fromtimestamp(e.certified_at, tz)
    return [
        e.number,
        e.book,
        when.strftime("%d/%m/%Y %H:%M"),
        e.requester,
        e.doc_type,
        e.pages,
        f"{e.officer_name} ({e.officer_title})",
        e.fee_vnd,
        e.copy_code,
    ]


def to_csv(entries: Sequence[BookEntry], *, tz: dt.tzinfo) -> bytes:
    """UTF-8 with a BOM (Excel then reads the diacritics right), CRLF rows, one per number."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([vi for vi, _ in HEADERS])
    for e in entries:
        writer.writerow(_row(e, tz))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def font_files(configured: Path | None = None) -> tuple[Path, Path]:
    """(regular, bold) TTF files with Vietnamese glyphs."""
    if configured is not None:
        return configured, configured
    for d in _FONT_DIRS:
        regular, bold = d / "DejaVuSans.ttf", d / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    raise FileNotFoundError("no DejaVu font found: set [certify] font_file")


def to_pdf(
    entries: Sequence[BookEntry], *, title: Title, tz: dt.tzinfo, font: Path | None = None
) -> bytes:
    """The register as an A4 landscape table, its header repeated on every page."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    regular, bold = font_files(font)
    pdfmetrics.registerFont(TTFont("RegisterFont", str(regular)))
    pdfmetrics.registerFont(TTFont("RegisterFont-Bold", str(bold)))
    cell = ParagraphStyle("cell", fontName="RegisterFont", fontSize=8, leading=10)
    head = ParagraphStyle("head", fontName="RegisterFont-Bold", fontSize=8, leading=10)
    big = ParagraphStyle("title", fontName="RegisterFont-Bold", fontSize=13, leading=17)
    sub = ParagraphStyle("sub", fontName="RegisterFont", fontSize=10, leading=13)

    def esc(text: Any) -> str:
        return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def p(text: Any, style: ParagraphStyle = cell) -> Paragraph:
        return Paragraph(esc(text), style)

    data = [[Paragraph(f"{esc(vi)}<br/>{esc(en)}", head) for vi, en in HEADERS]]
    data += [[p(v) for v in _row(e, tz)] for e in entries]
    widths = [18, 32, 28, 40, 45, 14, 50, 20, 40]
    table = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, colors.black),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=landscape(A4),
        leftMargin=10 * mm,
        rightMargin=10 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=f"Sổ chứng thực bản sao điện tử {title.book}",
        author=title.agency,
    )
    story = [
        p(title.agency.upper(), sub),
        p("SỔ CHỨNG THỰC BẢN SAO ĐIỆN TỬ TỪ BẢN CHÍNH", big),
        p(f"Quyển số {title.book} — {title.period} — {len(entries)} số", sub),
        Spacer(1, 4 * mm),
        table,
    ]
    doc.build(story)
    return buf.getvalue()
