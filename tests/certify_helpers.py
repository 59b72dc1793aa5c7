"""The certifier's tests' parts: requests, officers, the officer's and the agency's SoftHSM2
tokens (copies made by the real fleet.certify.copy.make_copy through PKCS#11). Also
`python -m tests.certify_helpers approve-loop ...`, the process the kill -9 test kills."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from fleet.certify.config import CertifyConfig, SealKey
from fleet.certify.copy import make_copy
from fleet.certify.service import Certifier
from fleet.store import FleetStore
from fleet.store.schema import officers
from protocol.crypto import DataKey
from tests.softhsm import MODULE, PIN, shared_pki

AGENCY = "HN-BADINH"
# fleet.certify.devpki.make_pki's labels.
OFFICER_TOKEN, AGENCY_TOKEN, KEY_LABEL = "officer-nva", "agency-seal", "signing"


def certify_config(**kw: Any) -> CertifyConfig:
    base: dict[str, Any] = dict(
        agency_id=AGENCY,
        agency_name="Ủy ban nhân dân phường Tây Hồ",  # as the test seal certificate names it
        place="Hà Nội",
        verify_base="https://chungthuc.example.vn",
    )
    return CertifyConfig(**{**base, **kw})


def add_officer(
    store: FleetStore, username: str = "tran.thi.binh", *, agency: str = AGENCY, **kw: Any
) -> None:
    row: dict[str, Any] = dict(
        username=username,
        full_name="Trần Thị Bình",
        title="Công chức Tư pháp - Hộ tịch",
        agency=agency,
        role="officer",
        password_hash="not-used-here",
        totp_secret=b"not-used-here",
        token_label=OFFICER_TOKEN,
        key_label=KEY_LABEL,
        active=True,
        failed_logins=0,
        created_at=time.time(),
    )
    row.update(kw)
    with store.begin() as conn:
        conn.execute(officers.insert().values(**row))


def page_jpeg(size: tuple[int, int] = (1240, 1754), text: str = "GIẤY KHAI SINH") -> bytes:
    """A scanned-looking A4 page at 150 dpi (PIL), JPEG."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, (250, 248, 240))
    draw = ImageDraw.Draw(img)
    for y in range(200, size[1] - 200, 40):
        draw.line((120, y, size[0] - 120, y), fill=(60, 60, 60), width=2)
    draw.text((150, 100), text, fill=(0, 0, 0))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def request_row(code: str, *, received_at: float, pages: int = 1, kiosk_id: str = "HN-K1"):
    return dict(
        id=code,
        kiosk_id=kiosk_id,
        agency=AGENCY,
        received_at=received_at,
        deadline=received_at + 8 * 3600,
        doc_type="birth_certificate",
        pages=pages,
        flags=[],
        package_sha256="0" * 64,
    )


def package(code: str, jpeg: bytes, *, pages: int = 1, name: str = "Nguyễn Văn An") -> dict:
    """A cert-request/1 package as the kiosk builds it (protocol/schemas/cert-request.json),
    before its signature; the page is `jpeg` (size read from it)."""
    from PIL import Image

    width, height = Image.open(io.BytesIO(jpeg)).size
    page = {
        "jpeg_base64": base64.b64encode(jpeg).decode(),
        "dpi": 150,
        "width": width,
        "height": height,
        "sha256": hashlib.sha256(jpeg).hexdigest(),
    }
    return {
        "schema": "cert-request/1",
        "request_id": f"cert-{code}",
        "code": code,
        "kiosk_id": code.rsplit("-", 3)[0],
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "original": 1,
        "originals": 1,
        "doc_type": "birth_certificate",
        "doc_label": {"vi": "Giấy khai sinh", "en": "Birth certificate"},
        "pages": [{"n": n, **page} for n in range(1, pages + 1)],
        "fields": {"name": name},
        "ocr_text": "GIẤY KHAI SINH",
        "citizen": {"id_number": "001190012345", "name": name, "verified_by": "face_chip"},
        "delivery": {"channel": "kiosk"},
        "fee": {"pages": pages, "fee_vnd": 2000 * pages, "payable_vnd": 0, "exempt": True},
        "checks": [],
        "capture": {"camera": {"source": "test"}},
    }


def seed_requests(store: FleetStore, n: int, *, start: float, jpeg: bytes) -> list[str]:
    codes = []
    for i in range(n):
        code = f"HN-K1-261205-{i + 1:06d}-X"
        row = request_row(code, received_at=start + i)
        pkg = json.dumps(package(code, jpeg)).encode()
        assert store.cert_add_request(row, package=pkg)
        codes.append(code)
    return codes


# --- the signer: fleet.certify.copy.make_copy on SoftHSM2 tokens (tests/softhsm.py) ---------


class TestSigner:
    """The officer's and the agency's SoftHSM2 tokens (one set per process; a subprocess finds
    them through the SOFTHSM2_CONF it inherits) and the seal PIN file the config points at."""

    __test__ = False  # a helper, not a test

    make_copy = staticmethod(make_copy)

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.pki = shared_pki(root / "tokens")
        (root / "seal.pin").write_text(PIN, encoding="utf-8")

    @staticmethod
    def private_tokens(folder: Path) -> dict[str, str]:
        """The environment of a process that will be killed: a copy of the token files of its
        own (a SoftHSM2 token was once not found after a kill -9 of a process using it: its file
        store is not crash-safe as a hardware token is), so one kill cannot spoil the rest."""
        shutil.copytree(Path(os.environ["SOFTHSM2_CONF"]).parent / "tokens", folder / "tokens")
        conf = folder / "softhsm2.conf"
        conf.write_text(
            f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\n"
            "log.level = ERROR\nslots.removable = false\n",
            encoding="utf-8",
        )
        return {**os.environ, "SOFTHSM2_CONF": str(conf)}

    @classmethod
    def load(cls, root: Path) -> TestSigner:
        """In the approve-loop process: the tokens its SOFTHSM2_CONF names."""
        self = cls.__new__(cls)
        self.root = root
        return self

    def config(self, **kw: Any) -> CertifyConfig:
        seal = SealKey(
            module=MODULE, token_label=AGENCY_TOKEN, key_label=KEY_LABEL,
            pin_file=self.root / "seal.pin",
        )  # fmt: skip
        return certify_config(seal=seal, **kw)


def certifier_for_tests(
    store: FleetStore,
    signer: TestSigner,
    *,
    published: list[tuple[str, dict[str, Any]]] | None = None,
    clock: Any = time.time,
    **kw: Any,
) -> Certifier:
    """A Certifier whose copies the tests' signer makes."""
    sink = published if published is not None else []
    return Certifier(
        store,
        config=kw.pop("config", None) or signer.config(),
        publish=lambda topic, message: sink.append((topic, message)),
        make_copy=signer.make_copy,
        clock=clock,
        **kw,
    )


def approve_loop(url: str, key_file: Path, signer_dir: Path, officer: str) -> None:
    """Approve every waiting request, oldest first, until none is left (then exit 0)."""
    store = FleetStore(url, data_key=DataKey.load_or_create(key_file)).create()
    certifier = certifier_for_tests(store, TestSigner.load(signer_dir))
    while True:
        waiting = certifier.queue(AGENCY)
        if not waiting:
            return
        certifier.approve(waiting[0].id, officer, pin=PIN, remote_addr="127.0.0.1")
        print("approved", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["approve-loop"])
    parser.add_argument("url")
    parser.add_argument("key_file", type=Path)
    parser.add_argument("signer_dir", type=Path)
    parser.add_argument("officer")
    a = parser.parse_args()
    approve_loop(a.url, a.key_file, a.signer_dir, a.officer)
    sys.exit(0)
