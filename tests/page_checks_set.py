"""The test set of tests/data/page-checks: originals and their variants, with ground truth.

    PYTHONPATH=. python -m tests.page_checks_set        # rebuilds the set (deterministic)

Originals are tests/pages.py documents with a red seal, at 150 dpi, given paper texture. Each
variant changes one thing: blur (Gaussian sigmas in px at 150 dpi), underexposure (gains),
a photocopy (grey, toner specks, halftoned mid-tones), a photo of a screen (the page through an
RGB subpixel grid, resampled without filtering: moire), an Art. 22 mark stamped on it (and one
decoy with ordinary words), correction-fluid patches, a hole, a tear, a printed QR (one KC1 copy
QR signed with the test key below, one foreign). labels.json holds, per image, the checks that
must fire and, for the originals, blurred and dark pages, Tesseract's character error rate
(measured here, with the kiosk's own reader) that defines "readable".

Everything is synthetic: a generator, not a camera. docs/page-checks.md says what that means.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image, ImageDraw, ImageFont

from tests import pages as docs
from tests.cards import qr_image

SET = Path(__file__).resolve().parent / "data" / "page-checks"
DPI = 150
QUALITY = 60
SCREEN_QUALITY = 40  # the moire is fine texture: costly to keep, and a camera's JPEG loses some too
READABLE_CER = 0.10
PX_MM = DPI / 25.4
# (seed, kind) of the originals: A4 sheets with a seal.
ORIGINALS = (
    (2, "birth_certificate"),
    (3, "marriage_certificate"),
    (4, "residence_confirmation"),
    (5, "land_use_certificate"),
    (6, "other"),
    (7, "birth_certificate"),
)
BLUR_SIGMAS = (1.3, 2.2, 2.8, 3.4, 4.5)
DARK_GAINS = (0.2, 0.1, 0.06, 0.035)
MARKS = ("MẬT", "TỐI MẬT", "KHÔNG ĐƯỢC SAO CHỤP", "TUYỆT MẬT")
DECOY = "Ghi chú: mật độ dân số cao; không tiết lộ mật khẩu; giữ bí mật thông tin cá nhân."
# The test signing key (P-256, a fixed scalar: a test key, never a kiosk's).
TEST_KEY = ec.derive_private_key(0x5EC2E7_16_0C0FFEE_1234567, ec.SECP256R1())
TEST_KIOSK = "TEST-01"
FOREIGN_QR = "https://dichvucong.example.vn/tra-cuu?ma=HS-2026-000123"
_FONT = docs._FONT_FILES[docs.FONTS[0]][1]


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([16, *key])


def original(i: int) -> tuple[np.ndarray, docs.Doc]:
    """Original i: the document at 150 dpi on textured paper (BGR)."""
    seed, kind = ORIGINALS[i]
    doc = docs.document(seed, kind, dpi=DPI)
    assert doc.image is not None and doc.stamp is not None
    rng = _rng(1, i)
    img = doc.image.astype(np.float32)
    h, w = img.shape[:2]
    slow = cv2.resize(rng.normal(0, 1, (h // 64 + 2, w // 64 + 2)).astype(np.float32), (w, h))
    fibres = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.2)
    tint = np.float32(rng.uniform(0.90, 0.94, 3))
    img = img * tint * (1 + 0.01 * slow[:, :, None]) + 2 * fibres[:, :, None]
    img += rng.normal(0, 0.8, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), doc


def blurred(page: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(page, (0, 0), sigma)


def dark(page: np.ndarray, gain: float, seed: int) -> np.ndarray:
    """Underexposed: the light times gain, then the sensor's noise (the same in absolute terms)."""
    rng = _rng(2, seed)
    img = page.astype(np.float32) * gain + rng.normal(0, 2.0, page.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def photocopy(page: np.ndarray, seed: int) -> np.ndarray:
    """A toner copy: grey, harder contrast, halftoned mid-tones (the seal becomes dots), toner
    specks on the paper, a little softness."""
    rng = _rng(3, seed)
    gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gray = np.clip((gray - 40) * 1.25, 0, 255)
    h, w = gray.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = 4.2  # px at 150 dpi: a 36 lpi screen at 45 degrees
    screen = 0.5 + 0.25 * (
        np.cos(2 * np.pi * (xx + yy) / period / 1.414)
        + np.cos(2 * np.pi * (xx - yy) / period / 1.414)
    )
    mid = (gray > 50) & (gray < 215)
    tone = gray / 255
    gray = np.where(mid, np.where(tone > screen, 235.0, 40.0), gray)
    specks = rng.random((h, w)) < 0.0015
    gray[specks] = rng.uniform(40, 140, int(specks.sum()))
    gray = cv2.GaussianBlur(gray, (0, 0), 0.6) + rng.normal(0, 2.0, (h, w))
    gray = np.clip(gray, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def screen_photo(page: np.ndarray, seed: int) -> np.ndarray:
    """The page shown on a screen and photographed: each pixel lit through R, G and B
    sub-pixel stripes (pitch not a multiple of the camera's pixels, turned a little), sampled
    at 2x and brought down without filtering, so the grid aliases into moire; backlight tint."""
    rng = _rng(4, seed)
    h, w = page.shape[:2]
    big = cv2.resize(page, (w * 2, h * 2), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    pitch = rng.uniform(2.6, 3.4)  # one RGB triplet, in 2x pixels
    angle = np.deg2rad(rng.uniform(1.0, 4.0))
    yy, xx = np.mgrid[0 : 2 * h, 0 : 2 * w].astype(np.float32)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    rows = 0.8 + 0.2 * np.cos(2 * np.pi * v / pitch)
    for c, shift in ((2, 0.0), (1, 1 / 3), (0, 2 / 3)):  # BGR channels: R, G, B stripes
        stripe = 0.5 + 0.5 * np.cos(2 * np.pi * (u / pitch - shift))
        big[:, :, c] *= (0.35 + 0.65 * stripe) * rows
    del yy, xx, u, v, rows
    small = big[::2, ::2] * 1.6  # point sampling: the camera's pixels do not average the grid
    small = small * np.float32([1.05, 0.98, 0.9]) + 8
    small = cv2.GaussianBlur(small, (0, 0), 0.5) + rng.normal(0, 1.0, small.shape)
    return np.clip(small, 0, 255).astype(np.uint8)


def _draw_text(
    page: np.ndarray, text: str, xy_mm: tuple[float, float], pt: float, colour, *, box: bool
):
    """Text (RGB colour) drawn onto a BGR page, framed like a stamp when box."""
    img = Image.fromarray(page[:, :, ::-1].copy())
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(_FONT), max(8, round(pt * 25.4 / 72 * PX_MM)))
    x, y = xy_mm[0] * PX_MM, xy_mm[1] * PX_MM
    draw.text((x, y), text, font=font, fill=colour, anchor="ls")
    if box:
        left, t, r, b = draw.textbbox((x, y), text, font=font, anchor="ls")
        pad = 2.5 * PX_MM
        draw.rectangle(
            (left - pad, t - pad, r + pad, b + pad),
            outline=colour,
            width=max(2, round(0.6 * PX_MM)),
        )
    return np.ascontiguousarray(np.array(img)[:, :, ::-1])


def with_mark(page: np.ndarray, mark: str) -> np.ndarray:
    """An Art. 22 mark stamped in red, framed, in the top margin."""
    return _draw_text(page, mark, (130.0, 14.0), 15, (200, 30, 45), box=True)


def with_decoy(page: np.ndarray) -> np.ndarray:
    return _draw_text(page, DECOY, (22.0, 285.0), 11, docs.INK, box=False)


def with_correction(page: np.ndarray, seed: int) -> np.ndarray:
    """Two patches of correction fluid over print: flat bright white, soft edges."""
    rng = _rng(5, seed)
    img = page.astype(np.float32)
    h, w = page.shape[:2]
    for _ in range(2):
        cw, ch = rng.uniform(15, 30) * PX_MM, rng.uniform(5, 9) * PX_MM
        cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.3, 0.7) * h
        mask = np.zeros((h, w), np.float32)
        cv2.ellipse(
            mask, (round(cx), round(cy)), (round(cw / 2), round(ch / 2)), 0, 0, 360, 1.0, -1
        )
        mask = cv2.GaussianBlur(mask, (0, 0), 1.5)[:, :, None]
        fluid = np.float32(rng.uniform(249, 254, 3)) + rng.normal(0, 0.6, (h, w, 1)).astype(
            np.float32
        )
        img = img * (1 - mask) + fluid * mask
    return np.clip(img, 0, 255).astype(np.uint8)


def _platen(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return docs.platen(_rng(6, seed), (shape[1], shape[0]))


def with_hole(page: np.ndarray, seed: int) -> np.ndarray:
    """A hole through the page (8-12 mm, ragged): the platen shows through."""
    rng = _rng(7, seed)
    h, w = page.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    c = np.array([rng.uniform(0.3, 0.7) * w, rng.uniform(0.4, 0.7) * h])
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    radius = rng.uniform(4, 6) * PX_MM * rng.uniform(0.75, 1.25, 24)
    pts = c + np.stack([np.cos(angles), np.sin(angles)], 1) * radius[:, None]
    cv2.fillPoly(mask, [np.int32(pts)], 1)
    out = page.copy()
    out[mask > 0] = _platen(page.shape, seed)[mask > 0]
    return out


def with_tear(page: np.ndarray, seed: int) -> np.ndarray:
    """A torn-off corner region along the right edge: a jagged notch showing the platen."""
    rng = _rng(8, seed)
    h, w = page.shape[:2]
    y0 = rng.uniform(0.3, 0.6) * h
    depth = rng.uniform(15, 25) * PX_MM
    ys = np.linspace(y0, y0 + rng.uniform(40, 60) * PX_MM, 14)
    xs = w - depth * np.sin(np.linspace(0, np.pi, 14)) * rng.uniform(0.7, 1.0, 14)
    pts = np.concatenate([[[w, ys[0]]], np.stack([xs, ys], 1), [[w, ys[-1]]]])
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.int32(pts)], 1)
    out = page.copy()
    out[mask > 0] = _platen(page.shape, seed)[mask > 0]
    return out


def kc1_payload() -> str:
    """A copy QR as the kiosk prints it, signed with TEST_KEY (RFC 6979: the same every run)."""
    from edge.copies import qrpayload
    from edge.copies.code import CopyCode

    code = CopyCode(TEST_KIOSK, dt.date(2026, 12, 1), 42)
    issued = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    digest = qrpayload.content_hash([b"page-1"])

    def sign(data: bytes) -> bytes:
        return TEST_KEY.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))

    return qrpayload.build(code, issued, digest, sign)


def test_public_key_pem() -> str:
    return (
        TEST_KEY.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def with_qr(page: np.ndarray, payload: str) -> np.ndarray:
    """A QR printed at the bottom right, 25 mm."""
    side = round(25 * PX_MM)
    qr = np.array(qr_image(payload, side))[:, :, ::-1].astype(np.float32)
    out = page.copy()
    h, w = page.shape[:2]
    y0, x0 = h - side - round(12 * PX_MM), w - side - round(15 * PX_MM)
    region = out[y0 : y0 + side, x0 : x0 + side].astype(np.float32)
    out[y0 : y0 + side, x0 : x0 + side] = np.minimum(region, qr * 0.93).astype(np.uint8)
    return out


def variants() -> list[tuple[str, np.ndarray, dict[str, Any]]]:
    """(file name, image, label) for the whole set."""
    made: list[tuple[str, np.ndarray, dict[str, Any]]] = []
    base = [original(i) for i in range(len(ORIGINALS))]

    def add(
        name: str, image: np.ndarray, i: int, variant: str, fires: list[str], **extra: Any
    ) -> None:
        label = {
            "original": i,
            "kind": base[i][1].kind,
            "variant": variant,
            "fires": fires,
            **extra,
        }
        made.append((f"{name}.jpg", image, label))

    for i, (page, _) in enumerate(base):
        add(f"orig-{i}", page, i, "original", [])
    for i in (0, 1):
        for s in BLUR_SIGMAS:
            add(f"blur-{i}-s{s}", blurred(base[i][0], s), i, "blur", [], sigma=s)
    for i in (2, 3):
        for g in DARK_GAINS:
            add(f"dark-{i}-g{g}", dark(base[i][0], g, i), i, "dark", [], gain=g)
    for i in range(3):
        add(f"copy-{i}", photocopy(base[i][0], i), i, "photocopy", ["photocopy"])
    for i in range(3):
        add(f"screen-{i}", screen_photo(base[i][0], i), i, "screen", ["screen"])
    for k, mark in enumerate(MARKS):
        i = (4, 5, 0, 1)[k]
        add(f"mark-{k}", with_mark(base[i][0], mark), i, "mark", ["forbidden_mark"], mark=mark)
    add("decoy-2", with_decoy(base[2][0]), 2, "decoy", [], text=DECOY)
    add("fluid-3", with_correction(base[3][0], 3), 3, "correction", ["damage"], damage="correction")
    add("fluid-4", with_correction(base[4][0], 4), 4, "correction", ["damage"], damage="correction")
    add("hole-1", with_hole(base[1][0], 1), 1, "hole", ["damage"], damage="hole")
    add("tear-5", with_tear(base[5][0], 5), 5, "tear", ["damage"], damage="hole")
    add(
        "qr-ours-2",
        with_qr(base[2][0], kc1_payload()),
        2,
        "qr",
        ["qr"],
        qr_kind="kc1",
        qr_verdict="valid",
    )
    add(
        "qr-foreign-5",
        with_qr(base[5][0], FOREIGN_QR),
        5,
        "qr",
        ["qr"],
        qr_kind="unknown",
        qr_verdict="not_verified",
    )
    return made


def ocr_cer(image: np.ndarray, reference: str) -> tuple[float, str]:
    """Tesseract's character error rate on the page, read as the kiosk reads a flat page."""
    from edge.vision.ocr import shared_ocr
    from edge.vision.page import flat_page

    _, result = shared_ocr().read_page(flat_page(image, dpi=DPI))
    return docs.cer(reference, result.text), result.text


def build(folder: Path = SET) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    labels: dict[str, Any] = {
        "dpi": DPI,
        "readable_cer": READABLE_CER,
        "test_key_pem": test_public_key_pem(),
        "kiosk_id": TEST_KIOSK,
        "images": {},
    }
    for name, image, label in variants():
        quality = SCREEN_QUALITY if label["variant"] == "screen" else QUALITY
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        (folder / name).write_bytes(data.tobytes())
        if label["variant"] in ("original", "blur", "dark"):
            seed, kind = ORIGINALS[label["original"]]
            reference = docs.document(seed, kind, render=False).text
            cer, _ = ocr_cer(cv2.imdecode(data, cv2.IMREAD_COLOR), reference)
            label["cer"] = round(cer, 4)
            label["readable"] = cer <= READABLE_CER
        labels["images"][name] = label
    text = json.dumps(labels, ensure_ascii=False, indent=1, sort_keys=True)
    (folder / "labels.json").write_text(unicodedata.normalize("NFC", text) + "\n", encoding="utf-8")
    return labels


def load(folder: Path = SET) -> dict[str, Any]:
    return json.loads((folder / "labels.json").read_text(encoding="utf-8"))


def image(name: str, folder: Path = SET) -> np.ndarray:
    found = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
    assert found is not None, name
    return found


if __name__ == "__main__":
    built = build()
    total = sum(p.stat().st_size for p in SET.iterdir())
    print(f"{len(built['images'])} images, {total / 1e6:.2f} MB in {SET}")
