"""Invented Vietnamese documents, flat and photographed on the platen, for tests and the bench.

`document(seed, kind)` renders one page of a document type (CCCD front/back, birth certificate,
diploma or certificate, land-use right certificate, marriage certificate, residence confirmation,
other) in one of the installed fonts, with a red stamp and a blue signature where the real paper
has them, and returns the reference text (rows top to bottom, the pieces of a row left to right)
and the key fields. `photographed(seed, ...)` puts such a page on the grey platen as the kiosk's
camera sees it: perspective, uneven light, a shadow, a colour cast, blur, noise, JPEG; `problem`
adds one thing the citizen must fix (blurred, glare, cut_off, empty, finger, dark). The same
arguments always give the same pixels. Nobody in these documents exists; names are drawn from
the lists in tests/cards.py.
"""

from __future__ import annotations

import datetime as dt
import functools
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edge.documents.doctype import edit_distance
from edge.identity.provinces import PROVINCES
from edge.receipts import FONT_BOLD, FONT_REGULAR
from tests.cards import FAMILY, GIVEN_F, GIVEN_M, MIDDLE_F, MIDDLE_M, STREETS, WARDS, qr_image

KINDS = (
    "cccd_front",
    "cccd_back",
    "birth_certificate",
    "diploma",
    "land_use_certificate",
    "marriage_certificate",
    "residence_confirmation",
    "other",
)
PROBLEMS = ("blurred", "glare", "cut_off", "empty", "finger", "dark")
RENDER_DPI = 300
PREVIEW = (1280, 960)  # the live frames the kiosk checks for quality and stability
CAPTURE = (2592, 1944)  # the still it rectifies and reads: about 200 dpi on an A4 page
A4 = (210.0, 297.0)
ID1 = (85.6, 54.0)

_SYSTEM_FONTS = Path("/usr/share/fonts/truetype")
# (regular, bold) per family; the bundled DejaVu Sans always, the others if Debian installed them
# (fonts-dejavu-core for DejaVu Serif, fonts-liberation2 for the Times-metric Liberation Serif).
_FONT_FILES = {
    "DejaVu Sans": (FONT_REGULAR, FONT_BOLD),
    "DejaVu Serif": (
        _SYSTEM_FONTS / "dejavu" / "DejaVuSerif.ttf",
        _SYSTEM_FONTS / "dejavu" / "DejaVuSerif-Bold.ttf",
    ),
    "Liberation Serif": (
        _SYSTEM_FONTS / "liberation2" / "LiberationSerif-Regular.ttf",
        _SYSTEM_FONTS / "liberation2" / "LiberationSerif-Bold.ttf",
    ),
}
FONTS = tuple(name for name, files in _FONT_FILES.items() if all(f.exists() for f in files))
if len(FONTS) < 2:
    raise RuntimeError("tests/pages.py needs a second font: apt install fonts-dejavu-core")

INK = (25, 25, 25)
RED = (200, 30, 45)  # stamp ink, RGB
BLUE = (30, 55, 175)  # signature ink, RGB
_PT_MM = 25.4 / 72


@dataclass(frozen=True)
class Seg:
    """A piece of text on a row: x in mm is its left edge, centre or right edge (align l/c/r)."""

    text: str
    x: float
    align: str = "l"
    bold: bool = False
    size: float = 13.0  # points
    colour: tuple[int, int, int] = INK
    mono: bool = False  # the machine-readable zone of the CCCD back


@dataclass(frozen=True)
class Doc:
    kind: str
    image: np.ndarray | None  # BGR at `dpi`, the whole sheet (None: not rendered)
    text: str  # reference text, NFC: one line per row
    fields: dict[str, str]  # the key fields a reader should find (ISO dates)
    names: tuple[str, ...]  # the people named as holder (child and parents, both spouses ...)
    font: str
    size_mm: tuple[float, float]  # width, height as it lies upright
    dpi: int
    seed: int
    stamp: tuple[int, int, int] | None  # centre x, y and radius in px, or None
    signature: tuple[int, int, int, int] | None  # x, y, w, h in px
    qr_text: str | None = None
    print_skew: float = 0.0  # degrees the print is turned on the sheet (counter-clockwise)

    @property
    def landscape(self) -> bool:
        return self.size_mm[0] > self.size_mm[1]


@dataclass(frozen=True)
class Shot:
    """A camera frame of the platen; quad is the page's own tl, tr, br, bl in the frame (float32,
    may lie partly outside it when cut off), None on an empty platen."""

    image: np.ndarray
    doc: Doc | None  # without its image
    quad: np.ndarray | None
    problem: str | None
    seed: int
    turn: float  # degrees the page is turned in the frame (clockwise on screen)
    glare_centre: tuple[float, float] | None = None
    finger_tip: tuple[float, float] | None = None


# --- text content ------------------------------------------------------------------------


def _person_name(rng: np.random.Generator, female: bool | None = None) -> str:
    female = bool(rng.integers(2)) if female is None else female
    if female:
        return f"{rng.choice(FAMILY)} {rng.choice(MIDDLE_F)} {rng.choice(GIVEN_F)}"
    return f"{rng.choice(FAMILY)} {rng.choice(MIDDLE_M)} {rng.choice(GIVEN_M)}"


def _date(rng: np.random.Generator, first: int, last: int) -> dt.date:
    start = dt.date(first, 1, 1)
    return start + dt.timedelta(days=int(rng.integers(0, (dt.date(last, 12, 31) - start).days)))


def _province(rng: np.random.Generator) -> str:
    return str(PROVINCES[str(rng.choice(sorted(PROVINCES)))])


def _address(rng: np.random.Generator) -> str:
    return (
        f"Số {int(rng.integers(1, 300))} {rng.choice(STREETS)}, {rng.choice(WARDS)}, "
        f"{_province(rng)}"
    )


def _id_number(rng: np.random.Generator, born: dt.date, female: bool) -> str:
    province = str(rng.choice(sorted(PROVINCES)))
    digit = (born.year // 100 - 19) * 2 + int(female)
    serial = "".join(str(d) for d in rng.integers(0, 10, 6))
    return f"{province}{digit}{born.year % 100:02d}{serial}"


def _ward_body(rng: np.random.Generator) -> tuple[str, str]:
    """An issuing people's committee: (its second header line, the place of the date line)."""
    ward = str(rng.choice(["PHƯỜNG CỬA NAM", "PHƯỜNG BẾN NGHÉ", "XÃ ĐÔNG HƯNG", "PHƯỜNG HÀNG BẠC"]))
    return ward, _province(rng)


def _unit(upper: str) -> str:
    """'PHƯỜNG CỬA NAM' as written in a sentence: 'phường Cửa Nam'."""
    kind, *name = upper.split()
    return " ".join([kind.lower(), *(w.capitalize() for w in name)])


def _dmy(day: dt.date) -> str:
    return f"{day:%d/%m/%Y}"


def _long_date(place: str, day: dt.date) -> str:
    return f"{place}, ngày {day.day:02d} tháng {day.month:02d} năm {day.year}"


class _Layout:
    """Rows of text on a sheet in mm; remembers where the signature block goes."""

    def __init__(self, width_mm: float, margin: tuple[float, float], font: str) -> None:
        self.width = width_mm
        self.font = font
        self.left, self.right = margin[0], width_mm - margin[1]
        self.rows: list[tuple[float, list[Seg]]] = []
        self.y = 18.0
        self.signer_at: tuple[float, float] | None = None
        self.qr: str | None = None  # a QR printed top right (the CCCD front's)

    @property
    def centre(self) -> float:
        return (self.left + self.right) / 2

    def row(self, *segs: Seg, gap: float = 1.5) -> None:
        size = max(s.size for s in segs)
        self.y += size * _PT_MM * gap
        self.rows.append((self.y, list(segs)))

    def skip(self, mm: float) -> None:
        self.y += mm

    def para(self, text: str, *, size: float = 13.0, indent: float = 0.0, bold: bool = False):
        """Wrap a paragraph to the text width (by measured glyph widths)."""
        words, line = text.split(), ""
        for word in words:
            trial = f"{line} {word}".strip()
            if _text_mm(self.font, trial, size, bold) > self.right - self.left - indent and line:
                self.row(Seg(line, self.left + indent, size=size, bold=bold))
                line = word
            else:
                line = trial
        if line:
            self.row(Seg(line, self.left + indent, size=size, bold=bold))


def _text_mm(font_name: str, text: str, size: float, bold: bool) -> float:
    font = _font(font_name, bold, round(size * 10))
    return font.getlength(text) / 10 / 72 * 25.4  # the font is loaded at 10 px per point


@functools.lru_cache(maxsize=64)
def _font(name: str, bold: bool, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(_FONT_FILES[name][int(bold)]), px)


def _header(lay: _Layout, left: list[str], *, number: str | None = None) -> None:
    """The two-column heading of an administrative paper: issuer left, national motto right."""
    right = ["CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc"]
    lx = lay.left + 33
    rx = lay.right - 58
    for i in range(max(len(left), len(right))):
        segs = []
        if i < len(left):
            segs.append(Seg(left[i], lx, "c", bold=i > 0 or len(left) == 1, size=12))
        if i < len(right):
            segs.append(Seg(right[i], rx, "c", bold=True, size=12 if i == 0 else 12.5))
        lay.row(*segs, gap=1.35)
    lay.skip(2)
    if number:
        lay.row(Seg(number, lx, "c", size=12.5))
    lay.skip(4)


def _signer(lay: _Layout, title: list[str], name: str, *, date_line: str | None = None) -> None:
    x = lay.right - 48
    if date_line:
        lay.row(Seg(date_line, lay.right, "r", size=12.5))
    for line in title:
        lay.row(Seg(line, x, "c", bold=True, size=12.5), gap=1.3)
    lay.signer_at = (x, lay.y + 16)
    lay.skip(33)
    lay.row(Seg(name, x, "c", bold=True, size=13))


def _birth_certificate(rng: np.random.Generator, lay: _Layout) -> tuple[dict, tuple]:
    ward, place = _ward_body(rng)
    female = bool(rng.integers(2))
    child = _person_name(rng, female)
    mother, father = _person_name(rng, True), _person_name(rng, False)
    born = _date(rng, 1960, 2024)
    registered = born + dt.timedelta(days=int(rng.integers(3, 60)))
    number = f"{int(rng.integers(1, 400))}"
    _header(lay, ["ỦY BAN NHÂN DÂN", ward], number=f"Số: {number}")
    lay.row(Seg("GIẤY KHAI SINH", lay.centre, "c", bold=True, size=17))
    lay.skip(5)
    p = lay.left
    lay.row(Seg(f"Họ, chữ đệm, tên: {child.upper()}", p))
    lay.row(Seg(f"Ngày, tháng, năm sinh: {_dmy(born)}", p))
    lay.row(Seg(f"Giới tính: {'Nữ' if female else 'Nam'}", p), Seg("Dân tộc: Kinh", p + 70))
    lay.row(Seg("Quốc tịch: Việt Nam", p))
    lay.para(f"Nơi sinh: Bệnh viện Đa khoa {_province(rng)}")
    lay.para(f"Quê quán: {rng.choice(WARDS)}, {_province(rng)}")
    sid = _id_number(rng, born, female)
    lay.row(Seg(f"Số định danh cá nhân: {sid}", p))
    lay.skip(3)
    lay.row(Seg(f"Họ, chữ đệm, tên người mẹ: {mother.upper()}", p))
    lay.row(Seg(f"Năm sinh: {born.year - int(rng.integers(19, 40))}", p))
    lay.para(f"Nơi cư trú: {_address(rng)}")
    lay.row(Seg(f"Họ, chữ đệm, tên người cha: {father.upper()}", p))
    lay.row(Seg(f"Năm sinh: {born.year - int(rng.integers(20, 45))}", p))
    lay.para(f"Nơi cư trú: {_address(rng)}")
    lay.skip(3)
    lay.row(Seg(f"Người đi khai sinh: {father}", p))
    lay.para(f"Nơi đăng ký khai sinh: Ủy ban nhân dân {_unit(ward)}, {place}")
    lay.row(Seg(f"Ngày, tháng, năm đăng ký: {_dmy(registered)}", p))
    lay.skip(4)
    signer = _person_name(rng)
    _signer(
        lay,
        ["NGƯỜI KÝ GIẤY KHAI SINH", "CHỦ TỊCH"],
        signer,
        date_line=_long_date(place, registered),
    )
    fields = {
        "name": child,
        "date_of_birth": born.isoformat(),
        "number": number,
        "issuer": f"ỦY BAN NHÂN DÂN {ward}",
        "issue_date": registered.isoformat(),
    }
    return fields, (child, mother, father)


def _diploma(rng: np.random.Generator, lay: _Layout) -> tuple[dict, tuple]:
    name = _person_name(rng)
    born = _date(rng, 1970, 2004)
    issued = dt.date(born.year + int(rng.integers(18, 30)), int(rng.integers(1, 13)), 15)
    place = _province(rng)
    number = f"{int(rng.integers(10**5, 10**7)):07d}"
    lay.row(Seg("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", lay.centre, "c", bold=True, size=13))
    lay.row(Seg("Độc lập - Tự do - Hạnh phúc", lay.centre, "c", bold=True, size=13))
    lay.skip(6)
    certificate = bool(rng.random() < 0.4)
    if certificate:
        issuer = str(
            rng.choice(["TRUNG TÂM NGOẠI NGỮ - TIN HỌC", "TRUNG TÂM GIÁO DỤC THƯỜNG XUYÊN"])
        )
        title = str(
            rng.choice(["CHỨNG CHỈ ỨNG DỤNG CÔNG NGHỆ THÔNG TIN CƠ BẢN", "CHỨNG CHỈ TIẾNG ANH"])
        )
        lay.row(Seg(f"GIÁM ĐỐC {issuer}", lay.centre, "c", bold=True, size=13))
        lay.row(Seg("cấp", lay.centre, "c", size=13))
        lay.row(Seg(title, lay.centre, "c", bold=True, size=19))
    else:
        issuer = "TRƯỜNG ĐẠI HỌC " + str(
            rng.choice(["BÁCH KHOA HÀ NỘI", "SƯ PHẠM", "KINH TẾ QUỐC DÂN", "Y DƯỢC"])
        )
        lay.row(Seg(f"HIỆU TRƯỞNG {issuer}", lay.centre, "c", bold=True, size=13))
        lay.row(Seg("cấp", lay.centre, "c", size=13))
        lay.row(Seg("BẰNG TỐT NGHIỆP ĐẠI HỌC", lay.centre, "c", bold=True, size=20))
        lay.row(Seg("Ngành: Công nghệ thông tin", lay.centre, "c", size=14))
    lay.skip(4)
    x = lay.left + 40
    lay.row(Seg(f"Cho: {name}", x, size=14))
    lay.row(Seg(f"Ngày sinh: {_dmy(born)}", x, size=14))
    lay.row(Seg(f"Xếp loại: {rng.choice(['Giỏi', 'Khá', 'Trung bình'])}", x, size=14))
    lay.row(Seg("Hình thức đào tạo: Chính quy", x, size=14))
    signer = _person_name(rng)
    _signer(
        lay,
        ["GIÁM ĐỐC" if certificate else "HIỆU TRƯỞNG"],
        signer,
        date_line=_long_date(place, issued),
    )
    lay.row(Seg(f"Số hiệu: {number}", lay.left + 10, size=12))
    lay.row(
        Seg(f"Số vào sổ cấp: {issued.year}/{int(rng.integers(100, 999))}", lay.left + 10, size=12)
    )
    fields = {
        "name": name,
        "date_of_birth": born.isoformat(),
        "number": number,
        "issuer": issuer,
        "issue_date": issued.isoformat(),
    }
    return fields, (name,)


def _land_use(rng: np.random.Generator, lay: _Layout) -> tuple[dict, tuple]:
    female = bool(rng.integers(2))
    name = _person_name(rng, female)
    born = _date(rng, 1945, 1995)
    issued = _date(rng, 2010, 2025)
    place = _province(rng)
    serial = f"{rng.choice(['AB', 'BĐ', 'CS', 'DA'])} {int(rng.integers(10**5, 10**6))}"
    lay.row(Seg("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", lay.centre, "c", bold=True, size=13))
    lay.row(Seg("Độc lập - Tự do - Hạnh phúc", lay.centre, "c", bold=True, size=13))
    lay.skip(6)
    lay.row(Seg("GIẤY CHỨNG NHẬN", lay.centre, "c", bold=True, size=20))
    lay.row(Seg("QUYỀN SỬ DỤNG ĐẤT, QUYỀN SỞ HỮU NHÀ Ở", lay.centre, "c", bold=True, size=14))
    lay.row(Seg("VÀ TÀI SẢN KHÁC GẮN LIỀN VỚI ĐẤT", lay.centre, "c", bold=True, size=14))
    lay.skip(5)
    p = lay.left
    lay.para("I. Người sử dụng đất, chủ sở hữu nhà ở và tài sản khác gắn liền với đất", bold=True)
    lay.row(Seg(f"{'Bà' if female else 'Ông'}: {name}", p), Seg(f"Năm sinh: {born.year}", p + 105))
    lay.row(Seg(f"CCCD số: {_id_number(rng, born, female)}", p))
    lay.para(f"Địa chỉ thường trú: {_address(rng)}")
    lay.skip(3)
    lay.para("II. Thửa đất, nhà ở và tài sản khác gắn liền với đất", bold=True)
    lay.row(
        Seg(f"a) Thửa đất số: {int(rng.integers(1, 900))}", p),
        Seg(f"Tờ bản đồ số: {int(rng.integers(1, 60))}", p + 90),
    )
    lay.para(f"b) Địa chỉ: {rng.choice(STREETS)}, {rng.choice(WARDS)}, {place}")
    area = f"{int(rng.integers(40, 400))},{int(rng.integers(0, 10))}"
    lay.row(Seg(f"c) Diện tích: {area} m2", p))
    lay.row(Seg("d) Hình thức sử dụng: Sử dụng riêng", p))
    lay.row(Seg("đ) Mục đích sử dụng: Đất ở tại đô thị", p))
    lay.row(Seg("e) Thời hạn sử dụng: Lâu dài", p))
    lay.para("g) Nguồn gốc sử dụng: Nhà nước giao đất có thu tiền sử dụng đất")
    lay.skip(4)
    signer = _person_name(rng)
    _signer(
        lay,
        ["SỞ TÀI NGUYÊN VÀ MÔI TRƯỜNG", "KT. GIÁM ĐỐC"],
        signer,
        date_line=_long_date(place, issued),
    )
    lay.skip(3)
    lay.row(Seg(f"Số vào sổ cấp GCN: CS{int(rng.integers(1000, 99999)):05d}", p, size=12))
    lay.row(Seg(serial, lay.centre, "c", bold=True, size=15, colour=(190, 30, 40)))
    fields = {"name": name, "number": serial, "issue_date": issued.isoformat()}
    return fields, (name,)


def _marriage(rng: np.random.Generator, lay: _Layout) -> tuple[dict, tuple]:
    ward, place = _ward_body(rng)
    wife, husband = _person_name(rng, True), _person_name(rng, False)
    wife_born, husband_born = _date(rng, 1960, 2004), _date(rng, 1958, 2002)
    registered = _date(rng, max(wife_born.year, husband_born.year) + 20, 2025)
    number = f"{int(rng.integers(1, 300))}"
    _header(lay, ["ỦY BAN NHÂN DÂN", ward], number=f"Số: {number}")
    lay.row(Seg("GIẤY CHỨNG NHẬN KẾT HÔN", lay.centre, "c", bold=True, size=17))
    lay.skip(5)
    p = lay.left
    for role, person, born in (("vợ", wife, wife_born), ("chồng", husband, husband_born)):
        lay.row(Seg(f"Họ, chữ đệm, tên {role}: {person.upper()}", p))
        lay.row(Seg(f"Ngày, tháng, năm sinh: {_dmy(born)}", p), Seg("Dân tộc: Kinh", p + 100))
        lay.row(Seg("Quốc tịch: Việt Nam", p))
        lay.row(Seg(f"Số định danh cá nhân: {_id_number(rng, born, role == 'vợ')}", p))
        lay.para(f"Nơi cư trú: {_address(rng)}")
        lay.skip(3)
    lay.row(Seg(f"Ngày, tháng, năm đăng ký: {_dmy(registered)}", p))
    lay.skip(2)
    signer = _person_name(rng)
    _signer(lay, ["CHỦ TỊCH"], signer, date_line=_long_date(place, registered))
    lay.skip(3)
    lay.row(Seg("Vợ", lay.left + 25, "c", bold=True), Seg("Chồng", lay.left + 80, "c", bold=True))
    lay.row(Seg(wife, lay.left + 25, "c", size=11), Seg(husband, lay.left + 80, "c", size=11))
    fields = {
        "name": wife,
        "number": number,
        "issuer": f"ỦY BAN NHÂN DÂN {ward}",
        "issue_date": registered.isoformat(),
    }
    return fields, (wife, husband)


def _residence(rng: np.random.Generator, lay: _Layout) -> tuple[dict, tuple]:
    female = bool(rng.integers(2))
    name = _person_name(rng, female)
    born = _date(rng, 1940, 2008)
    issued = _date(rng, 2022, 2025)
    ward = str(rng.choice(["PHƯỜNG CỬA NAM", "PHƯỜNG BẾN NGHÉ", "XÃ ĐÔNG HƯNG"]))
    place = _province(rng)
    number = f"{int(rng.integers(1, 999))}/XN"
    _header(lay, [f"CÔNG AN {place.upper()}", f"CÔNG AN {ward}"], number=f"Số: {number}")
    lay.row(Seg("GIẤY XÁC NHẬN THÔNG TIN VỀ CƯ TRÚ", lay.centre, "c", bold=True, size=16))
    lay.skip(4)
    p = lay.left
    lay.para(f"Công an {_unit(ward)} xác nhận thông tin về cư trú của công dân như sau:", indent=10)
    lay.row(Seg(f"1. Họ, chữ đệm và tên: {name.upper()}", p))
    lay.row(
        Seg(f"2. Ngày, tháng, năm sinh: {_dmy(born)}", p),
        Seg(f"3. Giới tính: {'Nữ' if female else 'Nam'}", p + 110),
    )
    lay.row(Seg(f"4. Số định danh cá nhân: {_id_number(rng, born, female)}", p))
    lay.para(f"5. Nơi thường trú: {_address(rng)}")
    lay.para("6. Nơi tạm trú: Không")
    lay.para(f"7. Nơi ở hiện tại: {_address(rng)}")
    lay.para(f"8. Họ, chữ đệm và tên chủ hộ: {_person_name(rng).upper()}")
    lay.para("Quan hệ với chủ hộ: Con")
    lay.skip(2)
    lay.para("Giấy xác nhận có giá trị 30 ngày kể từ ngày cấp.", indent=10)
    lay.skip(4)
    signer = _person_name(rng)
    _signer(lay, ["TRƯỞNG CÔNG AN"], signer, date_line=_long_date(place, issued))
    fields = {
        "name": name,
        "date_of_birth": born.isoformat(),
        "number": number,
        "issuer": f"CÔNG AN {ward}",
        "issue_date": issued.isoformat(),
    }
    return fields, (name,)


def _other(rng: np.random.Generator, lay: _Layout) -> tuple[dict, tuple]:
    name = _person_name(rng)
    day = _date(rng, 2015, 2025)
    place = _province(rng)
    lay.row(Seg("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", lay.centre, "c", bold=True, size=13))
    lay.row(Seg("Độc lập - Tự do - Hạnh phúc", lay.centre, "c", bold=True, size=13))
    lay.skip(8)
    if rng.random() < 0.5:
        lay.row(Seg("HỢP ĐỒNG THUÊ NHÀ", lay.centre, "c", bold=True, size=17))
        lay.skip(4)
        lay.para(
            f"Hôm nay, ngày {day.day} tháng {day.month} năm {day.year}, tại {place}, chúng tôi gồm:"
        )
        lay.para(f"Bên cho thuê (Bên A): Ông {name}, địa chỉ {_address(rng)}.")
        lay.para(f"Bên thuê (Bên B): Bà {_person_name(rng, True)}, địa chỉ {_address(rng)}.")
        clauses = [
            "Điều 1. Bên A đồng ý cho Bên B thuê căn nhà nêu trên để ở.",
            f"Điều 2. Giá thuê là {int(rng.integers(3, 15))} triệu đồng một tháng, trả vào ngày"
            " mùng năm hằng tháng bằng tiền mặt hoặc chuyển khoản.",
            f"Điều 3. Thời hạn thuê là {int(rng.integers(6, 36))} tháng kể từ ngày ký.",
            "Điều 4. Hai bên cam kết thực hiện đúng các điều khoản đã thỏa thuận. Hợp đồng"
            " được lập thành hai bản, mỗi bên giữ một bản có giá trị như nhau.",
        ]
    else:
        lay.row(Seg("ĐƠN ĐỀ NGHỊ", lay.centre, "c", bold=True, size=17))
        lay.row(Seg("Về việc hỗ trợ sửa chữa nhà ở", lay.centre, "c", size=13))
        lay.skip(4)
        lay.para(f"Kính gửi: Ủy ban nhân dân {rng.choice(WARDS)}", indent=20)
        lay.para(f"Tôi tên là: {name}, sinh năm {int(rng.integers(1950, 2000))}.")
        lay.para(f"Địa chỉ: {_address(rng)}.")
        clauses = [
            "Gia đình tôi có căn nhà cấp bốn đã xuống cấp sau mùa mưa bão vừa qua, mái ngói bị"
            " vỡ và tường bị nứt ở nhiều chỗ.",
            "Nay tôi làm đơn này kính đề nghị Ủy ban nhân dân xem xét, hỗ trợ kinh phí để gia"
            " đình tôi sửa chữa nhà ở cho an toàn.",
            "Tôi xin cam đoan những nội dung trên là đúng sự thật. Tôi xin chân thành cảm ơn.",
        ]
    for clause in clauses:
        lay.para(clause, indent=0)
    lay.skip(6)
    _signer(lay, ["NGƯỜI LÀM ĐƠN"], name, date_line=_long_date(place, day))
    return {"name": name}, (name,)


def _cccd_front(rng: np.random.Generator, lay: _Layout) -> tuple[dict, tuple]:
    female = bool(rng.integers(2))
    name = _person_name(rng, female)
    born = _date(rng, 1950, 2006)
    sid = _id_number(rng, born, female)
    issued = _date(rng, max(2016, born.year + 14), 2025)
    address = _address(rng)
    lay.y = 2.0
    x = 37.0  # the heading is centred left of the QR (top right, 20 mm)
    lay.row(Seg("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", x, "c", bold=True, size=5.5), gap=1.3)
    lay.row(Seg("Độc lập - Tự do - Hạnh phúc", x, "c", bold=True, size=5.5), gap=1.3)
    lay.row(Seg("CĂN CƯỚC CÔNG DÂN", x, "c", bold=True, size=9, colour=(170, 25, 35)), gap=1.4)
    lay.skip(1)
    c = lay.left
    lay.row(Seg("Số / No.:", c, size=6), Seg(sid, c + 11, bold=True, size=7.5))
    lay.row(Seg("Họ và tên / Full name:", c, size=6))
    lay.row(Seg(name.upper(), c, bold=True, size=7.5))
    lay.row(Seg(f"Ngày sinh / Date of birth: {_dmy(born)}", c, size=6))
    lay.row(
        Seg(f"Giới tính / Sex: {'Nữ' if female else 'Nam'}", c, size=6),
        Seg("Quốc tịch: Việt Nam", c + 28, size=6),
    )
    lay.row(Seg("Quê quán / Place of origin:", c, size=6))
    lay.para(f"{rng.choice(WARDS)}, {_province(rng)}", size=6)
    lay.row(Seg("Nơi thường trú / Place of residence:", c, size=6))
    lay.para(address, size=6)
    payload = "|".join(
        [
            sid,
            "",
            name,
            born.strftime("%d%m%Y"),
            "Nữ" if female else "Nam",
            address,
            issued.strftime("%d%m%Y"),
        ]
    )
    lay.qr = payload
    fields = {"name": name, "date_of_birth": born.isoformat(), "number": sid}
    return fields, (name,)


def _mrz_name(name: str) -> str:
    folded = unicodedata.normalize("NFD", name.replace("Đ", "D").replace("đ", "d"))
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch)).upper().split()
    return f"{plain[0]}<<{'<'.join(plain[1:])}".ljust(30, "<")[:30]


def _cccd_back(rng: np.random.Generator, lay: _Layout) -> tuple[dict, tuple]:
    female = bool(rng.integers(2))
    name = _person_name(rng, female)
    born = _date(rng, 1950, 2006)
    sid = _id_number(rng, born, female)
    issued = _date(rng, max(2016, born.year + 14), 2025)
    lay.y = 3.0
    c = 4.0
    lay.row(Seg("Đặc điểm nhận dạng / Personal identification:", c, size=6.5))
    lay.row(Seg(f"Nốt ruồi C: {int(rng.integers(1, 4))}cm dưới sau mép phải", c, size=6.5))
    lay.row(Seg(f"Ngày, tháng, năm / Date, month, year: {_dmy(issued)}", c, size=6.5))
    lay.row(Seg("CỤC TRƯỞNG CỤC CẢNH SÁT", 58, "c", bold=True, size=6.5), gap=1.3)
    lay.row(Seg("QUẢN LÝ HÀNH CHÍNH VỀ TRẬT TỰ XÃ HỘI", 58, "c", bold=True, size=6.5), gap=1.3)
    lay.signer_at = (58.0, lay.y + 6)
    lay.skip(11)
    lay.row(Seg(_person_name(rng), 58, "c", bold=True, size=7))
    lay.y = 38.5
    check = [str(d) for d in rng.integers(0, 10, 5)]
    expiry = born.replace(year=born.year + 40) if born.month * 100 + born.day != 229 else born
    mrz = [  # ICAO 9303 TD1, check digits invented
        f"IDVNM{sid[3:]}{check[0]}{sid}<<{check[1]}",
        f"{born:%y%m%d}{check[2]}{'F' if female else 'M'}{expiry:%y%m%d}{check[3]}VNM"
        + "<" * 11
        + check[4],
        _mrz_name(name),
    ]
    for line in mrz:
        lay.row(Seg(line[:30], c, size=8.5, mono=True), gap=1.25)
    fields = {
        "number": sid,
        "issuer": "CỤC CẢNH SÁT QUẢN LÝ HÀNH CHÍNH VỀ TRẬT TỰ XÃ HỘI",
        "issue_date": issued.isoformat(),
    }
    return fields, (name,)


_TEMPLATES = {
    "birth_certificate": (_birth_certificate, A4),
    "diploma": (_diploma, (A4[1], A4[0])),  # diplomas are landscape
    "land_use_certificate": (_land_use, A4),
    "marriage_certificate": (_marriage, A4),
    "residence_confirmation": (_residence, A4),
    "other": (_other, A4),
    "cccd_front": (_cccd_front, ID1),
    "cccd_back": (_cccd_back, ID1),
}


# --- rendering ---------------------------------------------------------------------------


def document(
    seed: int,
    kind: str | None = None,
    *,
    font: str | None = None,
    dpi: int = RENDER_DPI,
    render: bool = True,
) -> Doc:
    """One page of `kind` (default: drawn from KINDS by the seed), rendered at dpi; render=False
    gives the same text and fields without drawing anything (image None)."""
    rng = np.random.default_rng([seed, 4])
    kind = kind or KINDS[seed % len(KINDS)]
    font = font or FONTS[(seed // len(KINDS)) % len(FONTS)]
    build, size_mm = _TEMPLATES[kind]
    card = kind.startswith("cccd")
    lay = _Layout(size_mm[0], (27.0, 3.0) if card else (22.0, 15.0), font)
    fields, names = build(rng, lay)
    if not render:
        text = unicodedata.normalize("NFC", "\n".join(_reading_order(lay.rows, font)))
        return Doc(kind, None, text, fields, names, font, size_mm, dpi, seed, None, None, lay.qr)
    px_mm = dpi / 25.4
    w, h = round(size_mm[0] * px_mm), round(size_mm[1] * px_mm)
    paper = (236, 240, 246) if card else tuple(int(v) for v in rng.integers(246, 256, 3))
    sheet = Image.new("RGB", (w, h), paper)
    draw = ImageDraw.Draw(sheet)
    for y_mm, segs in lay.rows:
        for seg in segs:
            px = max(6, round(seg.size * _PT_MM * px_mm))
            font_obj = _mono(px) if seg.mono else _font(font, seg.bold, px)
            anchor = {"l": "ls", "c": "ms", "r": "rs"}[seg.align]
            draw.text(
                (seg.x * px_mm, y_mm * px_mm),
                seg.text,
                font=font_obj,
                fill=seg.colour,
                anchor=anchor,
            )
    lines = _reading_order(lay.rows, font)
    image = np.array(sheet)
    qr_text = lay.qr
    if qr_text:
        side = round(20 * px_mm)
        qr = np.array(qr_image(qr_text, side))
        x0, y0 = w - side - round(3 * px_mm), round(3 * px_mm)
        image[y0 : y0 + side, x0 : x0 + side] = qr
    if card and kind == "cccd_front":
        _portrait(image, px_mm)
    # Half the sheets were printed or copied a little askew (the stamp and pen come later).
    print_skew = float(rng.uniform(-1.5, 1.5)) if not card and rng.random() < 0.5 else 0.0
    if print_skew:
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), print_skew, 1.0)
        image = cv2.warpAffine(image, turn, (w, h), flags=cv2.INTER_LINEAR, borderValue=paper)
    stamp = signature = None
    if lay.signer_at is not None:
        sx, sy = lay.signer_at
        scale = 0.45 if card else 1.0
        signature = _signature(image, rng, (sx * px_mm, sy * px_mm), scale * px_mm)
        stamp = _stamp(
            image, rng, ((sx - 14 * scale) * px_mm, (sy - 2 * scale) * px_mm), scale * px_mm
        )
    return Doc(
        kind=kind,
        image=np.ascontiguousarray(image[:, :, ::-1]),
        text=unicodedata.normalize("NFC", "\n".join(lines)),
        fields=fields,
        names=names,
        font=font,
        size_mm=size_mm,
        dpi=dpi,
        seed=seed,
        stamp=stamp,
        signature=signature,
        qr_text=qr_text,
        print_skew=print_skew,
    )


def _reading_order(rows: list[tuple[float, list[Seg]]], font: str) -> list[str]:
    """Rows top to bottom, pieces on one baseline (within half a line) left to right: how a
    reader, and Tesseract's single-block mode, goes through the page."""
    merged: list[tuple[float, list[Seg]]] = []
    for y, segs in sorted(rows, key=lambda r: r[0]):
        height = max(s.size for s in segs) * _PT_MM
        if merged and y - merged[-1][0] < 0.5 * height:
            merged[-1][1].extend(segs)
        else:
            merged.append((y, list(segs)))
    return [
        " ".join(s.text for s in sorted(segs, key=lambda s: _left_mm(s, font)))
        for _, segs in merged
    ]


def _left_mm(seg: Seg, font: str) -> float:
    width = _text_mm(font, seg.text, seg.size, seg.bold)
    return seg.x - {"l": 0.0, "c": width / 2, "r": width}[seg.align]


@functools.lru_cache(maxsize=8)
def _mono(px: int) -> ImageFont.FreeTypeFont:
    path = _SYSTEM_FONTS / "dejavu" / "DejaVuSansMono.ttf"
    return ImageFont.truetype(str(path if path.exists() else FONT_REGULAR), px)


def _portrait(image: np.ndarray, px_mm: float) -> None:
    x, y, w, h = (round(v * px_mm) for v in (3, 14, 21, 28))
    image[y : y + h, x : x + w] = (205, 210, 215)
    cv2.ellipse(image, (x + w // 2, y + h // 2), (w // 3, h // 3), 0, 0, 360, (226, 190, 160), -1)


def _multiply(image: np.ndarray, layer: np.ndarray, ink: tuple[int, int, int]) -> None:
    """Ink on paper: where layer (0..1) is set, multiply the page by the ink colour."""
    colour = np.array(ink, np.float32) / 255
    region = layer > 0
    blend = 1 - layer[region, None] * (1 - colour)
    image[region] = (image[region].astype(np.float32) * blend).astype(np.uint8)


def _window(image: np.ndarray, cx: float, cy: float, rx: float, ry: float):
    """The part of the image around a mark (a view), and its top-left corner."""
    h, w = image.shape[:2]
    x0, y0 = max(0, int(cx - rx)), max(0, int(cy - ry))
    x1, y1 = min(w, int(cx + rx) + 1), min(h, int(cy + ry) + 1)
    return image[y0:y1, x0:x1], x0, y0


def _stamp(image: np.ndarray, rng: np.random.Generator, centre: tuple[float, float], px_mm: float):
    """A round red seal: two rings, a star, and a ring of letters; slightly uneven ink."""
    cx = round(centre[0] + rng.normal(0, 2 * px_mm))
    cy = round(centre[1] + rng.normal(0, 2 * px_mm))
    r = round(17 * px_mm)
    view, ox, oy = _window(image, cx, cy, r + 4 * px_mm, r + 4 * px_mm)
    h, w = view.shape[:2]
    lx, ly = cx - ox, cy - oy  # the centre in the window
    layer = np.zeros((h, w), np.float32)
    thick = max(2, round(0.7 * px_mm))
    cv2.circle(layer, (lx, ly), r, 1.0, thick, cv2.LINE_AA)
    cv2.circle(layer, (lx, ly), round(r * 0.68), 1.0, max(1, thick // 2), cv2.LINE_AA)
    star = []
    for k in range(10):
        radius = r * (0.3 if k % 2 == 0 else 0.12)
        angle = -np.pi / 2 + k * np.pi / 5
        star.append((lx + radius * np.cos(angle), ly + radius * np.sin(angle)))
    cv2.fillPoly(layer, [np.int32(star)], 1.0, cv2.LINE_AA)
    letters = "ỦY BAN NHÂN DÂN * " * 2
    font = _font(FONTS[0], True, max(6, round(3 * px_mm)))
    for i, ch in enumerate(letters):
        angle = 2 * np.pi * i / len(letters)
        glyph = Image.new("L", (round(4 * px_mm), round(4 * px_mm)), 0)
        ImageDraw.Draw(glyph).text(
            (glyph.width / 2, glyph.height / 2), ch, fill=255, font=font, anchor="mm"
        )
        glyph = glyph.rotate(-np.degrees(angle), resample=Image.Resampling.BILINEAR)
        gx = round(lx + 0.84 * r * np.sin(angle) - glyph.width / 2)
        gy = round(ly - 0.84 * r * np.cos(angle) - glyph.height / 2)
        g = np.array(glyph, np.float32) / 255
        x0, y0 = max(gx, 0), max(gy, 0)
        x1, y1 = min(gx + g.shape[1], w), min(gy + g.shape[0], h)
        if x1 > x0 and y1 > y0:
            sub = g[y0 - gy : y1 - gy, x0 - gx : x1 - gx]
            layer[y0:y1, x0:x1] = np.maximum(layer[y0:y1, x0:x1], sub)
    speckle = cv2.GaussianBlur(rng.random((h // 8 + 1, w // 8 + 1)).astype(np.float32), (0, 0), 1)
    speckle = cv2.resize(speckle, (w, h))
    _multiply(view, layer * np.clip(0.55 + 0.6 * speckle, 0, 0.95), RED)
    return cx, cy, r


def _signature(
    image: np.ndarray, rng: np.random.Generator, centre: tuple[float, float], px_mm: float
):
    """A blue pen scribble: a few smooth loops and a long underline."""
    cx, cy = centre
    width, height = 38 * px_mm, 11 * px_mm
    view, ox, oy = _window(image, cx, cy, width / 2 + 6 * px_mm, height + 4 * px_mm)
    layer = np.zeros(view.shape[:2], np.float32)
    t = np.linspace(0, 1, 400)
    xs = cx - width / 2 + width * t
    freq, phase = rng.uniform(3, 6), rng.uniform(0, 2 * np.pi)
    ys = cy + height / 2 * np.sin(2 * np.pi * freq * t + phase) * np.exp(-1.5 * t)
    xs += 4 * px_mm * np.cos(2 * np.pi * freq * t + phase)
    pts = np.int32(np.stack([xs, ys], axis=1))
    pen = max(2, round(0.45 * px_mm))
    tail = np.int32([[cx - width / 2, cy + height * 0.7], [cx + width / 2, cy + height * 0.4]])
    offset = np.int32([ox, oy])
    cv2.polylines(layer, [pts - offset], False, 1.0, pen, cv2.LINE_AA)
    cv2.polylines(layer, [tail - offset], False, 1.0, pen, cv2.LINE_AA)
    _multiply(view, layer * 0.95, BLUE)
    x0, y0 = pts.min(axis=0)
    x1, y1 = np.maximum(pts.max(axis=0), tail.max(axis=0))
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def flat(doc: Doc, dpi: int) -> np.ndarray:
    """The document as a flatbed scan at dpi (area resampling of the render)."""
    assert doc.image is not None, "a document made with render=False has no pixels"
    if dpi == doc.dpi:
        return doc.image
    scale = dpi / doc.dpi
    return cv2.resize(doc.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


@functools.lru_cache(maxsize=8)  # a 300 dpi A4 render is 26 MB
def cached_document(seed: int, kind: str | None = None, font: str | None = None) -> Doc:
    """document(seed, kind, font=font) made once per process (treat the image as read-only)."""
    return document(seed, kind, font=font)


# --- the camera ----------------------------------------------------------------------------


def platen(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """The empty platen: a darker, textured grey (its own grain plus a fine weave)."""
    w, h = size
    base = np.float32(rng.normal((88, 92, 98), 4))
    texture = cv2.GaussianBlur(_noise(rng, (h, w), 9), (0, 0), max(1.0, w / 600))
    weave = 4 * np.sin(np.arange(w, dtype=np.float32) * 0.9)[None, :]
    img = base + (texture + weave)[:, :, None] + _noise(rng, (h, w, 3), 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def _noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    cv2.setRNGSeed(int(rng.integers(2**31)))
    out = np.empty(shape, np.float32)
    cv2.randn(out, 0.0, float(sigma))
    return out


def _page_quad(
    rng: np.random.Generator, doc: Doc, size: tuple[int, int], *, cut: bool
) -> tuple[np.ndarray, float]:
    """Where the page's own corners land in the frame, and its turn in degrees."""
    fw, fh = size
    wm, hm = doc.size_mm
    landscape = wm > hm
    # The kiosk frames an A4 sheet lying across (long side along the frame's width).
    px_mm = fw * rng.uniform(0.86, 0.91) / A4[1]
    if doc.kind.startswith("cccd"):
        turn = float(rng.uniform(-25, 25) + rng.choice([0, 180]))
    else:
        base = rng.choice([0, 180]) if landscape else rng.choice([90, 270])
        turn = float(base + rng.uniform(-4, 4))
    w, h = wm * px_mm, hm * px_mm
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    rad = np.deg2rad(turn)
    rot = np.array([[np.cos(rad), -np.sin(rad)], [np.sin(rad), np.cos(rad)]])
    corners = corners @ rot.T + rng.uniform(-0.012, 0.012, (4, 2)) * max(w, h)
    reach = np.abs(corners).max(axis=0)
    margin = 0.02 * fw
    fit = min(1.0, *((np.array([fw, fh]) / 2 - margin) / reach))
    corners, reach = corners * fit, reach * fit  # shrink a turned sheet to stay in the frame
    room = np.array([fw, fh]) / 2 - reach - margin
    centre = np.array([fw / 2, fh / 2]) + rng.uniform(-room, room)
    if cut:  # pushed over one frame edge by 8-20 % of its size
        axis = int(rng.integers(2))
        over = reach[axis] * 2 * rng.uniform(0.08, 0.2)
        centre[axis] = size[axis] / 2 + rng.choice([-1, 1]) * (size[axis] / 2 - reach[axis] + over)
    return (corners + centre).astype(np.float32), turn


def photographed(
    seed: int,
    kind: str | None = None,
    *,
    size: tuple[int, int] = CAPTURE,
    problem: str | None = None,
    font: str | None = None,
) -> Shot:
    """A document on the platen as the camera sees it; problem adds one fault (see PROBLEMS)."""
    rng = np.random.default_rng([seed, 5, PROBLEMS.index(problem) + 1 if problem else 0])
    fw, fh = size
    frame = platen(rng, size).astype(np.float32)
    if problem == "empty":
        return Shot(_camera(frame, rng, size, problem), None, None, problem, seed, 0.0)
    # Render close to the frame's scale: the camera cannot see finer than that anyway.
    doc_dpi = 300 if fw > 2000 else 150
    doc = (
        cached_document(seed, kind, font)
        if doc_dpi == RENDER_DPI
        else document(seed, kind, font=font, dpi=doc_dpi)
    )
    quad, turn = _page_quad(rng, doc, size, cut=problem == "cut_off")
    sheet = doc.image
    assert sheet is not None
    h, w = sheet.shape[:2]
    side = float(np.hypot(*(quad[1] - quad[0])))
    shrink = side / w
    if shrink < 0.9:
        sheet = cv2.resize(sheet, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        h, w = sheet.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    matrix = cv2.getPerspectiveTransform(src, quad)
    warped = cv2.warpPerspective(sheet, matrix, size, flags=cv2.INTER_LINEAR)
    alpha = cv2.warpPerspective(
        np.full((h, w), 255, np.uint8), matrix, size, flags=cv2.INTER_LINEAR
    )
    alpha = alpha.astype(np.float32)[:, :, None] / 255
    # A soft drop shadow of the sheet on the platen, a little offset.
    drop = cv2.GaussianBlur(alpha[:, :, 0], (0, 0), fw / 300)
    drop = np.roll(drop, (round(fh / 250), round(fw / 250)), axis=(0, 1))[:, :, None]
    frame *= 1 - 0.35 * drop
    frame *= 1 - alpha
    frame += warped * alpha
    del warped, drop
    extra: dict[str, object] = {}
    if problem == "finger":
        extra["finger_tip"] = _finger(frame, rng, quad, size)
    image = _camera(frame, rng, size, problem, quad=quad, alpha=alpha, extra=extra)
    return Shot(
        image,
        replace(doc, image=None),  # cached_document(seed, kind) has the pixels
        quad,
        problem,
        seed,
        turn,
        glare_centre=extra.get("glare"),  # type: ignore[arg-type]
        finger_tip=extra.get("finger_tip"),  # type: ignore[arg-type]
    )


def place(
    page: np.ndarray, quad: np.ndarray, *, size: tuple[int, int] = PREVIEW, seed: int = 0
) -> np.ndarray:
    """A flat page image laid on the platen with its corners (tl, tr, br, bl) at quad, under
    even light: for shots whose geometry a test chooses."""
    rng = np.random.default_rng([seed, 6])
    frame = platen(rng, size)
    h, w = page.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    matrix = cv2.getPerspectiveTransform(src, np.float32(quad))
    warped = cv2.warpPerspective(page, matrix, size, flags=cv2.INTER_AREA)
    alpha = cv2.warpPerspective(np.full((h, w), 255, np.uint8), matrix, size)[:, :, None] / 255
    out = frame * (1 - alpha) + warped * 0.9 * alpha
    return cv2.GaussianBlur(out.astype(np.uint8), (0, 0), 0.6)


def _finger(frame: np.ndarray, rng: np.random.Generator, quad: np.ndarray, size: tuple[int, int]):
    """A fingertip holding the page down: enters from the frame edge nearest a page side."""
    fw, fh = size
    centre = quad.mean(axis=0)
    i = int(rng.integers(4))
    a, b = quad[i], quad[(i + 1) % 4]
    edge_point = a + (b - a) * rng.uniform(0.3, 0.7)
    outward = edge_point - centre
    outward /= np.linalg.norm(outward)
    reach = fw * rng.uniform(0.06, 0.1)
    tip = edge_point - outward * reach
    root = edge_point + outward * fw  # far outside the frame
    width = fw * rng.uniform(0.045, 0.06)
    mask = np.zeros((fh, fw), np.float32)
    cv2.line(mask, tuple(np.int32(root)), tuple(np.int32(tip)), 1.0, round(width), cv2.LINE_AA)
    cv2.circle(mask, tuple(np.int32(tip)), round(width / 2), 1.0, -1, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), width / 12)[:, :, None]
    skin = np.float32(rng.normal((125, 150, 205), (8, 8, 8)))  # BGR
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    normal = np.array([-outward[1], outward[0]])
    across = ((xx - tip[0]) * normal[0] + (yy - tip[1]) * normal[1]) / (width / 2)
    shade = (1 - 0.25 * np.clip(across, -1, 1) ** 2)[:, :, None]
    frame[:] = frame * (1 - mask) + skin * shade * mask
    return float(tip[0]), float(tip[1])


def _camera(
    frame: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int],
    problem: str | None,
    *,
    quad: np.ndarray | None = None,
    alpha: np.ndarray | None = None,
    extra: dict | None = None,
) -> np.ndarray:
    """Light and lens: uneven light, a soft shadow, colour cast, glare, blur, noise, JPEG."""
    fw, fh = size
    # Light fields are smooth: compute them on a coarse grid and scale up.
    cw, ch = fw // 8, fh // 8
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32) * 8
    strength = rng.uniform(0.08, 0.25)
    theta = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - fw / 2) * np.cos(theta) + (yy - fh / 2) * np.sin(theta)) / (fw / 2)
    vignette = ((xx - fw / 2) ** 2 + (yy - fh / 2) ** 2) / ((fw / 2) ** 2 + (fh / 2) ** 2)
    light = 1 + strength * ramp - 0.5 * strength * vignette
    if rng.random() < 0.6:  # the citizen's head or arm between the lamp and the page
        phi = rng.uniform(0, 2 * np.pi)
        offset = rng.uniform(0.2, 0.6) * fw / 2
        dist = (xx - fw / 2) * np.cos(phi) + (yy - fh / 2) * np.sin(phi) - offset
        soft = 1 / (1 + np.exp(-dist / (fw * 0.02)))
        light *= 1 - rng.uniform(0.15, 0.3) * soft
    # Auto-exposure keeps the brightest paper below clipping; the lamp adds a colour cast.
    gain = rng.uniform(0.86, 0.95) / light.max() * rng.uniform(0.95, 1.04, 3).astype(np.float32)
    if problem == "dark":
        gain *= rng.uniform(0.22, 0.32)
    light_full = cv2.resize(light.astype(np.float32), (fw, fh), interpolation=cv2.INTER_LINEAR)
    img = frame  # float32, ours to change in place
    img *= light_full[:, :, None]
    img *= gain
    if problem == "glare" and quad is not None and alpha is not None:
        centre = quad.mean(axis=0) + rng.uniform(-0.25, 0.25, 2) * np.ptp(quad, axis=0)
        sigma = rng.uniform(0.035, 0.06) * fw
        spot = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2))
        spot = cv2.resize(spot.astype(np.float32), (fw, fh), interpolation=cv2.INTER_LINEAR)
        # A specular reflection off the paper: the platen is matte and shows none.
        img += rng.uniform(170, 240) * spot[:, :, None] * alpha
        if extra is not None:
            extra["glare"] = (float(centre[0]), float(centre[1]))
    np.clip(img, 0, 255, out=img)
    blur = (
        rng.uniform(3.0, 4.5) * fw / PREVIEW[0]
        if problem == "blurred"
        else rng.uniform(0.3, 0.8) * fw / CAPTURE[0] * 1.6
    )
    cv2.GaussianBlur(img, (0, 0), blur, dst=img)
    img += _noise(rng, img.shape, rng.uniform(2, 5))
    out = cv2.convertScaleAbs(img)  # rounds and saturates to 0-255
    ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(80, 93))])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


@functools.lru_cache(maxsize=24)  # 15 MB a capture frame, 4 MB a preview
def cached_shot(
    seed: int, kind: str | None = None, size: tuple[int, int] = CAPTURE, problem: str | None = None
) -> Shot:
    """photographed(...) made once per process (treat the image as read-only)."""
    return photographed(seed, kind, size=size, problem=problem)


# --- measuring ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """What the pipeline made of one document; no pixels kept (many are cached at once)."""

    doc: Doc  # without its image
    ocr: Any  # edge.vision.ocr.OcrResult
    size_mm: tuple[float, float]  # of the flat page, as it came out upright
    shape: tuple[int, int]  # height, width of the flat page in px
    rotation: int  # quarter turns the reader applied

    @property
    def cer(self) -> float:
        return cer(self.doc.text, self.ocr.text)


@functools.lru_cache(maxsize=64)
def reading(seed: int, kind: str | None = None, *, photo: bool = False) -> Reading:
    """The document of (seed, kind) read by the kiosk's pipeline, once per process: flat at the
    pipeline's DPI (a flatbed scan), or photographed on the platen (CAPTURE) and scanned."""
    from edge.vision.ocr import shared_ocr
    from edge.vision.page import DPI, flat_page, scan

    if photo:
        page = scan(cached_shot(seed, kind).image)
    else:
        page = flat_page(flat(cached_document(seed, kind), DPI), dpi=DPI)
    page, result = shared_ocr().read_page(page)
    doc = document(seed, kind, render=False)
    return Reading(doc, result, page.size_mm, page.gray.shape, page.rotation)


def corpus_cer(readings: list[Reading]) -> float:
    """Edits over reference characters, summed over the pages (long pages weigh more)."""
    edits = sum(
        edit_distance(normalise_text(r.doc.text), normalise_text(r.ocr.text)) for r in readings
    )
    return edits / max(1, sum(len(normalise_text(r.doc.text)) for r in readings))


def normalise_text(text: str) -> str:
    """NFC, every run of whitespace (line breaks included) as one space."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate: Levenshtein distance / reference length, after normalise_text."""
    ref, hyp = normalise_text(reference), normalise_text(hypothesis)
    return edit_distance(ref, hyp) / max(1, len(ref))
