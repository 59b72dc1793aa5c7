"""E-copy test parts: a kiosk's copy service on a temp state dir, page images, an NSS trust db."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from edge import config as cfg
from edge.copies.issue import CopyService
from edge.store import DataKey, Store
from edge.store.outbox import Outbox

CITIZEN_QR = "001099012345||Nguyễn Văn An|01011999|Nam|Số 1 Hàng Bạc, Hoàn Kiếm, Hà Nội|01012021"


def write_config(root: Path, *, kiosk_id: str = "HN-TEST-01", extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "config.toml"
    path.write_text(
        f"""
[kiosk]
id = "{kiosk_id}"
site = "Phường Tây Hồ"

[storage]
state_dir = "state"

[printer]
type = "simulated"
output_dir = "printer-out"

[copies]
development_ca = true
{extra}
""",
        encoding="utf-8",
    )
    return path


@contextmanager
def copy_service(root: Path, **kwargs: str) -> Iterator[CopyService]:
    config = cfg.load(write_config(root, **kwargs))
    config.storage.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = DataKey.load_or_create(config.storage.data_key_path)
    store = Store(config.storage.db_path)
    store.open()
    try:
        service = CopyService(config, store=store, key=key, outbox=Outbox(store, key))
        service.open()
        yield service
    finally:
        store.close()


def page_image(number: int, *, width: int = 1654, height: int = 2339) -> np.ndarray:
    """A flat A4 page at 200 dpi (BGR) with a title, lines of text and a red seal."""
    image = np.full((height, width, 3), 248, np.uint8)
    cv2.putText(image, f"GIAY KHAI SINH - TRANG {number}", (150, 300), 0, 2.4, (20, 20, 20), 6)
    for i in range(14):
        y = 480 + i * 100
        cv2.putText(
            image, f"Dong {i + 1}: noi dung ban chinh {number}", (150, y), 0, 1.3, (40, 40, 40), 3
        )
    cv2.circle(image, (1250, 1950), 170, (30, 30, 200), 12)
    return image


def write_pages(folder: Path, count: int) -> list[Path]:
    paths = []
    for n in range(1, count + 1):
        path = folder / f"page{n}.png"
        cv2.imwrite(str(path), page_image(n))
        paths.append(path)
    return paths


def nss_db(folder: Path, ca_pem: Path) -> str:
    """An NSS database trusting ca_pem, for poppler's pdfsig (-nssdir)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{folder}", "--empty-password"], check=True)
    subprocess.run(
        [
            "certutil",
            "-A",
            "-d",
            f"sql:{folder}",
            "-n",
            "kiosk-ca",
            "-t",
            "CT,C,C",
            "-i",
            str(ca_pem),
        ],
        check=True,
    )
    return f"sql:{folder}"


def pdfsig(pdf: Path, nssdir: str | None = None) -> str:
    args = ["pdfsig"] + (["-nssdir", nssdir] if nssdir else []) + [str(pdf)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr
