"""Regenerate the bundled sample scenes: `python -m edge.sim.make_scenes`.

All people and numbers on them are invented (marked MẪU / SAMPLE).
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import segno
from PIL import Image, ImageDraw, ImageFont

from edge.receipts import FONT_BOLD, FONT_REGULAR

OUT = Path(__file__).resolve().parent / "scenes"
SIZE = (1280, 960)  # 4:3 like the Camera Module 3 looking down at the platen
# A well-formed CCCD QR payload (PRODUCT.md section 5) for an invented person.
SAMPLE_CCCD = "001099012345||Nguyễn Văn Mẫu|01011999|Nam|Số 1 Phố Mẫu, Hoàn Kiếm, Hà Nội|15062021"


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


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    _platen(1).save(OUT / "01-empty-platen.jpg", quality=85)
    doc = _paste_warped(_platen(2), document_page(), [(380, 60), (905, 80), (930, 900), (350, 880)])
    doc.save(OUT / "02-document.jpg", quality=90)
    card = _paste_warped(_platen(3), id_card(), [(300, 230), (980, 250), (970, 690), (290, 670)])
    card.save(OUT / "03-id-card.jpg", quality=92)
    print(f"scenes written to {OUT}")


if __name__ == "__main__":
    main()
