"""Invented CCCD cards photographed on the platen, for tests: seeded, so every scene is repeatable.

`scene(seed, level)` renders a card (Pillow, DejaVu, a segno QR of a valid payload), puts it on the
platen with a random perspective and degrades the shot: uneven light, low contrast, a glare spot,
blur, sensor noise and JPEG. Nobody on these cards exists; each is marked MẪU / SAMPLE.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import textwrap
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import segno
from PIL import Image, ImageDraw, ImageFont

from edge.identity.provinces import PROVINCES
from edge.receipts import FONT_BOLD, FONT_REGULAR

FRAME = (1280, 960)  # width, height of a Camera Module 3 frame as the kiosk streams it
CARD = (856, 540)  # ID-1, 85.6 x 54 mm at 10 px/mm
QR_BOX = (616, 24, 216)  # x, y, side of the QR on the card: top right, as on the chip CCCD
PORTRAIT_BOX = (40, 150, 190, 250)  # x, y, w, h of the portrait on the card
TODAY = dt.date(2026, 1, 15)

Level = Literal["clean", "moderate", "heavy"]

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi"]
FAMILY += ["Đỗ", "Hồ", "Ngô", "Dương", "Lý", "Đinh", "Trương", "Lương", "Tạ"]
MIDDLE_M = ["Văn", "Hữu", "Đức", "Minh", "Quang", "Xuân", "Thành", "Công", "Gia", "Bảo"]
MIDDLE_F = ["Thị", "Ngọc", "Thu", "Thanh", "Minh", "Kim", "Mỹ", "Phương", "Diệu", "Bảo"]
GIVEN_M = ["An", "Bình", "Cường", "Dũng", "Đạt", "Hải", "Hùng", "Khánh", "Long", "Nam", "Phong"]
GIVEN_M += ["Quân", "Sơn", "Thắng", "Tuấn", "Việt", "Vĩnh", "Hưng", "Lộc", "Trọng"]
GIVEN_F = ["Anh", "Ánh", "Chi", "Giang", "Hà", "Hạnh", "Hương", "Lan", "Linh", "Mai", "Nga"]
GIVEN_F += ["Ngọc", "Nhung", "Phương", "Quỳnh", "Thảo", "Trang", "Tuyết", "Yến", "Hằng"]
STREETS = ["Phố Mẫu", "Đường Láng", "Phố Huế", "Đường Nguyễn Trãi", "Ngõ 36 Phố Thử"]
STREETS += ["Đường Lê Lợi", "Đường Trần Hưng Đạo", "Phố Hàng Bạc", "Đường 3 Tháng 2"]
WARDS = ["Phường Cửa Nam", "Phường Dịch Vọng Hậu", "Xã Thử Nghiệm", "Phường Bến Nghé"]
WARDS += ["Thị trấn Mẫu", "Phường Ô Chợ Dừa", "Xã Đông Hưng"]


@dataclass(frozen=True)
class Person:
    id_number: str
    old_id: str
    name: str
    date_of_birth: dt.date
    sex: str
    address: str
    issue_date: dt.date

    @property
    def payload(self) -> str:
        return "|".join(
            [
                self.id_number,
                self.old_id,
                self.name,
                self.date_of_birth.strftime("%d%m%Y"),
                self.sex,
                self.address,
                self.issue_date.strftime("%d%m%Y"),
            ]
        )


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # BGR, FRAME sized
    person: Person
    # 4x2 float32 in the frame: the card's own top-left, top-right, bottom-right, bottom-left.
    card_quad: np.ndarray
    qr_quad: np.ndarray  # 4x2 float32, same order, in the frame
    seed: int
    level: str
    upside_down: bool
    payload: str  # what the QR holds: person.payload unless a test forced another


def random_person(rng: np.random.Generator, today: dt.date = TODAY) -> Person:
    """A valid, invented citizen: the ID number agrees with sex and birth year."""
    female = bool(rng.integers(2))
    born = dt.date(1935, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 76)))
    digit = (born.year // 100 - 19) * 2 + int(female)
    province = str(rng.choice(sorted(PROVINCES)))
    serial = "".join(str(d) for d in rng.integers(0, 10, 6))
    id_number = f"{province}{digit}{born.year % 100:02d}{serial}"
    old_id = "" if rng.random() < 0.4 else "".join(str(d) for d in rng.integers(0, 10, 9))
    if female:
        name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE_F)} {rng.choice(GIVEN_F)}"
    else:
        name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE_M)} {rng.choice(GIVEN_M)}"
    address = (
        f"Số {int(rng.integers(1, 300))} {rng.choice(STREETS)}, {rng.choice(WARDS)}, "
        f"{PROVINCES[str(rng.choice(sorted(PROVINCES)))]}"
    )
    earliest = max(born + dt.timedelta(days=14 * 365), dt.date(2016, 1, 1))
    span = max(1, (today - earliest).days)
    issued = min(today, earliest + dt.timedelta(days=int(rng.integers(0, span))))
    return Person(id_number, old_id, name, born, "Nữ" if female else "Nam", address, issued)


def qr_image(payload: str, side: int) -> Image.Image:
    """The payload as a QR (level M, quiet zone 2 modules) scaled to side x side pixels."""
    code = segno.make(payload, error="m", micro=False)
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=1, border=2)
    return Image.open(buffer).convert("RGB").resize((side, side), Image.Resampling.NEAREST)


def render_card(
    person: Person, rng: np.random.Generator, *, payload: str | None = None, qr: bool = True
) -> Image.Image:
    """The front of an invented chip CCCD: portrait left, QR top right, fields in the middle.

    payload replaces the QR content (for invalid-payload tests); qr=False leaves its place blank.
    """
    w, h = CARD
    tint = np.array([222, 236, 246]) + rng.integers(-10, 10, 3)
    card = Image.new("RGB", CARD, tuple(int(c) for c in tint))
    d = ImageDraw.Draw(card)
    for i in range(0, w + h, 18):  # faint guilloche-like security lines
        d.line([(i, 0), (i - h, h)], fill=tuple(int(c) - 12 for c in tint), width=1)
    small = ImageFont.truetype(str(FONT_REGULAR), 17)
    body = ImageFont.truetype(str(FONT_REGULAR), 21)
    bold = ImageFont.truetype(str(FONT_BOLD), 26)
    d.text((320, 40), "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", font=small, fill="black", anchor="mm")
    d.text((320, 64), "Độc lập - Tự do - Hạnh phúc", font=small, fill="black", anchor="mm")
    d.text((320, 104), "CĂN CƯỚC CÔNG DÂN (MẪU)", font=bold, fill=(150, 20, 20), anchor="mm")
    x, y, pw, ph = PORTRAIT_BOX
    d.rectangle((x, y, x + pw, y + ph), fill=(205, 210, 215), outline=(60, 60, 60))
    cx, cy = x + pw // 2, y + ph // 2 - 10
    d.ellipse((cx - 55, cy - 70, cx + 55, cy + 70), fill=(226, 190, 160), outline=(90, 60, 40))
    d.ellipse((cx - 30, cy - 20, cx - 14, cy - 10), fill=(40, 30, 30))
    d.ellipse((cx + 14, cy - 20, cx + 30, cy - 10), fill=(40, 30, 30))
    d.arc((cx - 25, cy + 20, cx + 25, cy + 45), 20, 160, fill=(120, 40, 40), width=3)
    lines = [
        f"Số / No.: {person.id_number}",
        f"Họ và tên: {person.name.upper()}",
        f"Ngày sinh: {person.date_of_birth:%d/%m/%Y}   Giới tính: {person.sex}",
        "Quốc tịch: Việt Nam",
        "Nơi thường trú:",
        *textwrap.wrap(person.address, 44)[:2],
    ]
    for i, line in enumerate(lines):
        d.text((255, 250 + i * 33), line, font=body, fill=(25, 25, 25))
    qx, qy, side = QR_BOX
    if qr:
        card.paste(qr_image(payload or person.payload, side), (qx, qy))
    d.text((w - 30, h - 24), "MẪU / SAMPLE", font=small, fill=(150, 20, 20), anchor="rm")
    return card


# Degradation ranges per level: (low, high) drawn uniformly.
LEVELS: dict[str, dict[str, tuple[float, float]]] = {
    "clean": {
        "width": (680, 760),
        "angle": (-5, 5),
        "tilt": (0.0, 0.01),
        "light": (0.0, 0.0),
        "contrast": (1.0, 1.0),
        "glare": (0, 0),
        "blur": (0.0, 0.0),
        "noise": (0, 0),
        "jpeg": (95, 95),
    },
    "moderate": {
        "width": (560, 780),
        "angle": (-30, 30),
        "tilt": (0.0, 0.07),
        "light": (0.1, 0.3),
        "contrast": (0.6, 1.0),
        "glare": (40, 130),
        "blur": (0.3, 1.3),
        "noise": (2, 6),
        "jpeg": (60, 90),
    },
    "heavy": {
        "width": (480, 660),
        "angle": (-45, 45),
        "tilt": (0.04, 0.1),
        "light": (0.3, 0.5),
        "contrast": (0.35, 0.55),
        "glare": (120, 220),
        "blur": (1.2, 2.0),
        "noise": (5, 9),
        "jpeg": (35, 60),
    },
}


@functools.lru_cache(maxsize=256)
def cached_scene(seed: int, level: Level = "moderate") -> Scene:
    """scene(seed, level), made once per test session (treat the image as read-only)."""
    return scene(seed, level)


def scene(
    seed: int,
    level: Level = "moderate",
    person: Person | None = None,
    *,
    payload: str | None = None,
    qr: bool = True,
) -> Scene:
    """One photographed card; the same arguments always give the same pixels."""
    rng = np.random.default_rng([seed, list(LEVELS).index(level)])
    ranges = LEVELS[level]

    def draw(key: str) -> float:
        low, high = ranges[key]
        return float(rng.uniform(low, high))

    person = person or random_person(rng)
    card = np.array(render_card(person, rng, payload=payload, qr=qr))[:, :, ::-1]  # BGR
    frame = platen(rng)
    quad = _placement(rng, draw("width"), draw("angle"), draw("tilt"))
    upside_down = bool(rng.random() < 0.25)  # the citizen put the card upside down
    if upside_down:
        quad = np.roll(quad, 2, axis=0)
    frame, matrix = _paste(frame, card, quad)
    qx, qy, side = QR_BOX
    qr_corners = np.float32([[qx, qy], [qx + side, qy], [qx + side, qy + side], [qx, qy + side]])
    qr_quad = cv2.perspectiveTransform(qr_corners[None], matrix)[0]
    frame = _degrade(frame, rng, draw, qr_quad, level)
    return Scene(
        image=frame,
        person=person,
        card_quad=quad.astype(np.float32),
        qr_quad=qr_quad.astype(np.float32),
        seed=seed,
        level=level,
        upside_down=upside_down,
        payload=payload or person.payload,
    )


def platen(rng: np.random.Generator) -> np.ndarray:
    """The empty, slightly textured grey platen under the camera."""
    w, h = FRAME
    base = np.float32(rng.normal((92, 96, 104), 4))
    texture = cv2.GaussianBlur(_noise(rng, (h, w), 8), (0, 0), 3)
    noise = _noise(rng, (h, w, 3), 3)
    return np.clip(base + texture[:, :, None] + noise, 0, 255).astype(np.uint8)


@functools.cache
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def _noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian noise from OpenCV's generator (5x faster than numpy's), seeded from rng."""
    cv2.setRNGSeed(int(rng.integers(2**31)))
    out = np.empty(shape, np.float32)
    cv2.randn(out, 0.0, float(sigma))
    return out


def _placement(rng: np.random.Generator, width: float, angle: float, tilt: float) -> np.ndarray:
    """Four corners of the card in the frame: size, turn, then per-corner perspective jitter."""
    fw, fh = FRAME
    height = width * CARD[1] / CARD[0]
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * [width / 2, height / 2]
    rad = np.deg2rad(angle)
    rot = np.array([[np.cos(rad), -np.sin(rad)], [np.sin(rad), np.cos(rad)]])
    corners = corners @ rot.T + rng.uniform(-tilt, tilt, (4, 2)) * width
    reach = np.abs(corners).max(axis=0)
    margin = 20
    cx = rng.uniform(reach[0] + margin, fw - reach[0] - margin) if fw > 2 * reach[0] else fw / 2
    cy = rng.uniform(reach[1] + margin, fh - reach[1] - margin) if fh > 2 * reach[1] else fh / 2
    return corners + np.array([cx, cy])


def _paste(frame: np.ndarray, card: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Warp the card onto the frame with rounded corners and a soft edge."""
    h, w = card.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    matrix = cv2.getPerspectiveTransform(src, np.float32(quad))
    size = (frame.shape[1], frame.shape[0])
    mask = np.zeros((h, w), np.uint8)
    radius = 32  # ID-1 corner radius 3.18 mm
    cv2.rectangle(mask, (radius, 0), (w - radius, h), 255, -1)
    cv2.rectangle(mask, (0, radius), (w, h - radius), 255, -1)
    for cx, cy in [(radius, radius), (w - radius, radius), (w - radius, h - radius)]:
        cv2.circle(mask, (cx, cy), radius, 255, -1)
    cv2.circle(mask, (radius, h - radius), radius, 255, -1)
    warped = cv2.warpPerspective(card, matrix, size, flags=cv2.INTER_AREA)
    alpha = cv2.warpPerspective(mask, matrix, size, flags=cv2.INTER_LINEAR) / 255.0
    out = frame * (1 - alpha[:, :, None]) + warped * alpha[:, :, None]
    return out.astype(np.uint8), matrix


def _degrade(frame, rng, draw, qr_quad: np.ndarray, level: str) -> np.ndarray:
    h, w = frame.shape[:2]
    img = frame.astype(np.float32)
    # Uneven light: a linear ramp in a random direction plus a vignette.
    strength = draw("light")
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = _grid(h, w)
    ramp = ((xx - w / 2) * np.cos(theta) + (yy - h / 2) * np.sin(theta)) / (w / 2)
    vignette = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
    img *= (1 + strength * ramp - 0.5 * strength * vignette)[:, :, None]
    # Low contrast around mid grey.
    contrast = draw("contrast")
    img = 128 + contrast * (img - 128)
    # Glare: a bright spot from the kiosk's light on the laminate; on the QR half the time when heavy.
    peak = draw("glare")
    if peak > 0:
        if level == "heavy" and rng.random() < 0.5:
            centre = qr_quad.mean(axis=0) + rng.normal(0, 25, 2)
        else:
            centre = rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h])
        sigma = rng.uniform(30, 80)
        spot = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2))
        img += peak * spot[:, :, None]
    img = np.clip(img, 0, 255)
    blur = draw("blur")
    if blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    noise = draw("noise")
    if noise > 0:
        img += _noise(rng, img.shape, noise)
    out = np.clip(img, 0, 255).astype(np.uint8)
    quality = int(draw("jpeg"))
    ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def empty_platen(seed: int) -> np.ndarray:
    """The platen with nothing on it, shot like a moderate scene."""
    rng = np.random.default_rng([seed, 99])
    ranges = LEVELS["moderate"]
    frame = platen(rng)
    return _degrade(frame, rng, lambda k: float(rng.uniform(*ranges[k])), np.zeros((4, 2)), "")


def qr_on_paper(payload: str, seed: int, *, side: int = 300) -> np.ndarray:
    """A QR printed on a square slip of paper on the platen: a QR, but no card outline."""
    rng = np.random.default_rng([seed, 7])
    frame = platen(rng)
    paper = np.full((side + 80, side + 80, 3), 245, np.uint8)
    paper[40 : 40 + side, 40 : 40 + side] = np.array(qr_image(payload, side))[:, :, ::-1]
    x, y = (
        int(rng.integers(50, FRAME[0] - side - 130)),
        int(rng.integers(50, FRAME[1] - side - 130)),
    )
    frame[y : y + side + 80, x : x + side + 80] = paper
    return frame
