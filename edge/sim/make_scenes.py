"""Regenerate the bundled sample scenes: `python -m edge.sim.make_scenes`.

All people and numbers on them are invented (marked MẪU / SAMPLE).
"""

from __future__ import annotations

import datetime as dt
import io
import textwrap
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import segno
from PIL import Image, ImageDraw, ImageFont

from edge.identity.mrz import check_digit
from edge.receipts import FONT_BOLD, FONT_DIR, FONT_REGULAR

OUT = Path(__file__).resolve().parent / "scenes"
SIZE = (1280, 960)  # 4:3 like the Camera Module 3 looking down at the platen
# A well-formed CCCD QR payload (PRODUCT.md section 5) for an invented person.
SAMPLE_CCCD = "001099012345||Nguyễn Văn Mẫu|01011999|Nam|Số 1 Phố Mẫu, Hoàn Kiếm, Hà Nội|15062021"
# The same invented person's 2024 "thẻ Căn cước" (issued after 1 July 2024; CCCD field order, the
# old 9-digit CMND kept; docs/identity-qr.md) and an invented child born 2022 (no portrait).
SAMPLE_CAN_CUOC = (
    "001099012345|012345678|Nguyễn Văn Mẫu|01011999|Nam|Số 1 Phố Mẫu, Hoàn Kiếm, Hà Nội|20082024"
)
SAMPLE_CHILD = (
    "001222012345||Nguyễn Văn Bé|05052022|Nam|Số 1 Phố Mẫu, Hoàn Kiếm, Hà Nội|10092024|"
    "|Nguyễn Văn Mẫu|Trần Thị Mẫu"
)
CARD_PX = (856, 540)  # ID-1 (85.6 x 54 mm) at 10 px/mm
QR_BOX = (616, 24, 216)  # x, y, side: top right (front of a CCCD, back of a 2024 card here)
PORTRAIT_BOX = (40, 150, 190, 250)  # x, y, w, h
# An OCR-B-like monospace for the MRZ: DejaVu Sans Mono (fonts-dejavu-core), else the bundled one.
MRZ_FONTS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"),
    FONT_DIR / "DejaVuSansMono.ttf",
)


def _platen(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.full((SIZE[1], SIZE[0], 3), (92, 96, 104), np.uint8)
    noise = rng.normal(0, 6, base.shape).astype(np.int16)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def _paste_warped(
    scene: Image.Image, item: Image.Image, corners: list[tuple[int, int]]
) -> Image.Image:
    """Place item on the scene with a perspective, as a camera above a platen would see it."""
    w, h = item.size
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    matrix = cv2.getPerspectiveTransform(src, np.float32(corners))
    canvas = np.array(scene)
    warped = cv2.warpPerspective(np.array(item), matrix, SIZE)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), matrix, SIZE)
    canvas[mask > 0] = warped[mask > 0]
    return Image.fromarray(canvas)


def document_page() -> Image.Image:
    page = Image.new("RGB", (620, 877), "white")  # A4 proportions
    d = ImageDraw.Draw(page)
    title = ImageFont.truetype(str(FONT_BOLD), 26)
    body = ImageFont.truetype(str(FONT_REGULAR), 18)
    d.text((310, 40), "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", font=body, fill="black", anchor="mm")
    d.text((310, 66), "Độc lập - Tự do - Hạnh phúc", font=body, fill="black", anchor="mm")
    d.text((310, 130), "GIẤY KHAI SINH (MẪU)", font=title, fill="black", anchor="mm")
    lines = [
        "Họ, chữ đệm, tên: NGUYỄN VĂN MẪU",
        "Ngày, tháng, năm sinh: 01/01/1999",
        "Giới tính: Nam    Dân tộc: Kinh    Quốc tịch: Việt Nam",
        "Nơi sinh: Bệnh viện Phụ sản Hà Nội",
        "Quê quán: Hoàn Kiếm, Hà Nội",
        "Số định danh cá nhân: 001099012345",
        "",
        "Tài liệu mẫu dùng cho mô phỏng ki-ốt. SAMPLE ONLY.",
    ]
    for i, line in enumerate(lines):
        d.text((50, 200 + i * 34), line, font=body, fill="black")
    d.ellipse((420, 640, 560, 780), outline=(200, 30, 30), width=5)  # a red stamp
    d.text((490, 710), "MẪU", font=title, fill=(200, 30, 30), anchor="mm")
    return page


def id_card() -> Image.Image:
    card = Image.new("RGB", (856, 540), (222, 236, 246))  # ID-1 proportions, 10 px/mm
    d = ImageDraw.Draw(card)
    bold = ImageFont.truetype(str(FONT_BOLD), 28)
    body = ImageFont.truetype(str(FONT_REGULAR), 22)
    d.text((428, 40), "CĂN CƯỚC CÔNG DÂN (MẪU)", font=bold, fill=(150, 20, 20), anchor="mm")
    d.rectangle((40, 110, 250, 380), fill=(200, 200, 200), outline="black")
    d.text((145, 245), "ẢNH", font=body, fill="black", anchor="mm")
    d.text((280, 120), "Số: 001099012345", font=body, fill="black")
    d.text((280, 170), "Họ và tên: NGUYỄN VĂN MẪU", font=body, fill="black")
    d.text((280, 220), "Ngày sinh: 01/01/1999", font=body, fill="black")
    qr = segno.make(SAMPLE_CCCD, error="m", micro=False)
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=4, border=2)
    qr_img = Image.open(buffer).convert("RGB")
    card.paste(qr_img, (856 - qr_img.width - 40, 540 - qr_img.height - 30))
    return card


def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def _mrz_font(size: int) -> ImageFont.FreeTypeFont:
    for path in MRZ_FONTS:
        if path.is_file():
            return _font(path, size)
    raise FileNotFoundError("no monospace font for the MRZ: apt install fonts-dejavu-core")


def td1_mrz(id_number: str, dob: dt.date, sex: str, expiry: dt.date, name: str) -> str:
    """The three TD1 lines a Vietnamese card carries (ICAO 9303 part 5): the last 9 digits of the
    ID number as the document number, the 12 digits in optional data 1."""
    number = id_number[3:]
    line1 = f"IDVNM{number}{check_digit(number)}{id_number}".ljust(30, "<")
    born, ends = dob.strftime("%y%m%d"), expiry.strftime("%y%m%d")
    head = f"{born}{check_digit(born)}{'M' if sex == 'Nam' else 'F'}{ends}{check_digit(ends)}VNM"
    optional_2 = "<" * 11
    composite = check_digit(line1[5:30] + head[0:7] + head[8:15] + optional_2)
    plain = unicodedata.normalize("NFKD", name.replace("Đ", "D").replace("đ", "d"))
    ascii_name = "".join(ch for ch in plain if ch.isascii()).upper().split()
    line3 = f"{ascii_name[0]}<<{'<'.join(ascii_name[1:])}"[:30].ljust(30, "<")
    return "\n".join([line1, head + optional_2 + composite, line3])


def drawn_face(size: tuple[int, int]) -> Image.Image:
    """A drawn, invented face (not a person) for the simulator's portraits."""
    w, h = size
    img = Image.new("RGB", size, (205, 210, 215))
    d = ImageDraw.Draw(img)
    cx, cy = w // 2, h // 2 - 10
    d.ellipse((cx - 55, cy - 70, cx + 55, cy + 70), fill=(226, 190, 160), outline=(90, 60, 40))
    d.ellipse((cx - 30, cy - 20, cx - 14, cy - 10), fill=(40, 30, 30))
    d.ellipse((cx + 14, cy - 20, cx + 30, cy - 10), fill=(40, 30, 30))
    d.arc((cx - 25, cy + 20, cx + 25, cy + 45), 20, 160, fill=(120, 40, 40), width=3)
    return img


def can_cuoc_front(
    id_number: str, name: str, dob: dt.date, sex: str, portrait: Image.Image | None
) -> Image.Image:
    """The front of an invented 2024 "thẻ Căn cước": portrait left (none on a child's card
    under 6), the personal ID number printed large, no QR (it is on the back)."""
    card = Image.new("RGB", CARD_PX, (226, 238, 228))
    d = ImageDraw.Draw(card)
    small, body = _font(FONT_REGULAR, 17), _font(FONT_REGULAR, 21)
    bold, number = _font(FONT_BOLD, 26), _font(FONT_BOLD, 40)
    d.text((428, 36), "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", font=small, fill="black", anchor="mm")
    d.text((428, 60), "Độc lập - Tự do - Hạnh phúc", font=small, fill="black", anchor="mm")
    d.text((428, 100), "CĂN CƯỚC (MẪU) / IDENTITY CARD", font=bold, fill=(150, 20, 20), anchor="mm")
    x, y, pw, ph = PORTRAIT_BOX
    if portrait is not None:
        card.paste(portrait.convert("RGB").resize((pw, ph)), (x, y))
    left = 255
    d.text(
        (left, 140),
        "Số định danh cá nhân / Personal identification number",
        font=small,
        fill="black",
    )
    d.text((left, 165), id_number, font=number, fill=(20, 20, 20))
    lines = [
        "Họ, chữ đệm và tên khai sinh / Full name:",
        name.upper(),
        f"Ngày, tháng, năm sinh / Date of birth: {dob:%d/%m/%Y}",
        f"Giới tính / Sex: {sex}    Quốc tịch / Nationality: Việt Nam",
    ]
    for i, line in enumerate(lines):
        d.text((left, 240 + i * 36), line, font=body, fill=(25, 25, 25))
    d.text(
        (CARD_PX[0] - 30, CARD_PX[1] - 24),
        "MẪU / SAMPLE",
        font=small,
        fill=(150, 20, 20),
        anchor="rm",
    )
    return card


def can_cuoc_back(payload: str, mrz: str, residence: str) -> Image.Image:
    """The back of an invented 2024 card: residence, QR at the top right, MRZ at the bottom."""
    card = Image.new("RGB", CARD_PX, (232, 236, 226))
    d = ImageDraw.Draw(card)
    small, body = _font(FONT_REGULAR, 17), _font(FONT_REGULAR, 20)
    d.text((40, 40), "Nơi cư trú / Place of residence:", font=body, fill="black")
    for i, line in enumerate(textwrap.wrap(residence, 40)[:3]):
        d.text((40, 72 + i * 28), line, font=body, fill="black")
    d.text((40, 200), "BỘ CÔNG AN (MẪU / SAMPLE)", font=small, fill=(150, 20, 20))
    qx, qy, side = QR_BOX
    code = segno.make(payload, error="m", micro=False)
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=1, border=2)
    qr = Image.open(buffer).convert("RGB").resize((side, side), Image.Resampling.NEAREST)
    card.paste(qr, (qx, qy))
    d.rectangle((0, 330, CARD_PX[0], CARD_PX[1]), fill=(250, 250, 248))
    font = _mrz_font(40)
    for i, line in enumerate(mrz.splitlines()):
        d.text((428, 370 + i * 56), line, font=font, fill=(10, 10, 10), anchor="mm")
    return card


def sample_can_cuoc(payload: str, portrait: Image.Image | None) -> tuple[Image.Image, Image.Image]:
    """(front, back) of the invented 2024 card whose QR holds payload (CCCD field order)."""
    fields = payload.split("|")
    id_number, name, sex, residence = fields[0], fields[2], fields[4], fields[5]
    dob = dt.datetime.strptime(fields[3], "%d%m%Y").date()
    issued = dt.datetime.strptime(fields[6], "%d%m%Y").date()
    expiry = issued.replace(year=issued.year + 10)
    front = can_cuoc_front(id_number, name, dob, sex, portrait)
    back = can_cuoc_back(payload, td1_mrz(id_number, dob, sex, expiry, name), residence)
    return front, back


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    _platen(1).save(OUT / "01-empty-platen.jpg", quality=85)
    doc = _paste_warped(_platen(2), document_page(), [(380, 60), (905, 80), (930, 900), (350, 880)])
    doc.save(OUT / "02-document.jpg", quality=90)
    card = _paste_warped(_platen(3), id_card(), [(300, 230), (980, 250), (970, 690), (290, 670)])
    card.save(OUT / "03-id-card.jpg", quality=92)
    corners = [(300, 230), (980, 250), (970, 690), (290, 670)]
    front, back = sample_can_cuoc(SAMPLE_CAN_CUOC, drawn_face(PORTRAIT_BOX[2:]))
    _paste_warped(_platen(4), front, corners).save(OUT / "04-can-cuoc-front.jpg", quality=92)
    _paste_warped(_platen(5), back, corners).save(OUT / "05-can-cuoc-back.jpg", quality=92)
    child_front, _ = sample_can_cuoc(SAMPLE_CHILD, None)
    _paste_warped(_platen(6), child_front, corners).save(
        OUT / "06-child-card-front.jpg", quality=92
    )
    print(f"scenes written to {OUT}")


if __name__ == "__main__":
    main()
