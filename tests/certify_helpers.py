"""The certifier's tests' parts: requests, officers, and THE TESTS' OWN make_copy (a real PDF,
really signed with pyHanko's SimpleSigner and keys made here) until fleet/certify/copy.py
(PKCS#11 on SoftHSM2) lands. Also `python -m tests.certify_helpers approve-loop ...`, the
process the kill -9 test kills."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from fleet.certify.config import CertifyConfig
from fleet.certify.service import Certifier
from fleet.store import FleetStore
from fleet.store.schema import officers
from protocol.crypto import DataKey

AGENCY = "HN-BADINH"


@dataclass(frozen=True)
class TestCopyPage:
    """The tests' stand-in for fleet.certify.copy.CopyPage (same fields)."""

    __test__ = False

    jpeg: bytes
    dpi: float


@dataclass(frozen=True)
class TestMadeCopy:
    __test__ = False

    pdf: bytes
    qr: str
    thumbnail: bytes
    sha256: str


def certify_config(**kw: Any) -> CertifyConfig:
    base: dict[str, Any] = dict(
        agency_id=AGENCY,
        agency_name="UBND phường Ba Đình",
        place="Hà Nội",
        verify_base="https://chungthuc.example.vn/v/",
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
        token_label="officer-token",
        key_label="officer-key",
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
    return {
        "schema": "cert-request/1",
        "code": code,
        "doc_type": "birth_certificate",
        "pages": [{"jpeg": base64.b64encode(jpeg).decode(), "dpi": 150.0}] * pages,
        "fields": {"full_name": name},
        "ocr_text": "GIẤY KHAI SINH",
        "citizen_name": name,
        "flags": [],
        "capture": {"camera": "sim"},
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


# --- the tests' signer: a real PDF, really signed (PAdES via pyHanko), keys made here -------


class TestSigner:
    """A self-made root and two leaf certificates (officer, agency seal), written as PEM."""

    __test__ = False  # a helper, not a test

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_cert = _cert("Test official-use root", self.ca_key, self.ca_key, ca=True)
        self.files: dict[str, tuple[Path, Path]] = {}
        for who in ("officer", "agency"):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            cert = _cert(f"Test {who}", key, self.ca_key, issuer=self.ca_cert)
            kf, cf = root / f"{who}.key", root / f"{who}.crt"
            kf.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            cf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            self.files[who] = (kf, cf)
        (root / "ca.crt").write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))

    @classmethod
    def load(cls, root: Path) -> TestSigner:
        self = cls.__new__(cls)
        self.root = root
        self.files = {w: (root / f"{w}.key", root / f"{w}.crt") for w in ("officer", "agency")}
        return self

    def make_copy(
        self,
        pages: list[Any],
        *,
        code: str,
        certification: dict[str, Any],
        officer: Any,
        agency: Any,
        verify_base: str,
        tsa_url: str | None = None,
        doc_type: str = "",
    ) -> TestMadeCopy:
        """Pages drawn, the number and book written, then signed twice (officer, agency)."""
        from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
        from pyhanko.sign import signers
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.utils import ImageReader
        from reportlab.pdfgen.canvas import Canvas

        buf = io.BytesIO()
        c = Canvas(buf, pagesize=A4)
        for page in pages:
            c.drawImage(ImageReader(io.BytesIO(page.jpeg)), 40, 140, 515, 680)
            c.drawString(40, 100, f"So chung thuc {certification['number']}")
            c.drawString(40, 85, f"Quyen so {certification['book']}")
            c.drawString(40, 70, f"Ma {code} {verify_base}{code}")
            c.showPage()
        c.save()
        pdf = buf.getvalue()
        for who, field in (("officer", "CanBo"), ("agency", "CoQuan")):
            kf, cf = self.files[who]
            signer = signers.SimpleSigner.load(str(kf), str(cf))
            assert signer is not None
            out = signers.sign_pdf(
                IncrementalPdfFileWriter(io.BytesIO(pdf)),
                signers.PdfSignatureMetadata(field_name=field),
                signer=signer,
            )
            pdf = out.getvalue()
        return TestMadeCopy(
            pdf=pdf,
            qr=f"{verify_base}{code}",
            thumbnail=pages[0].jpeg[:64],
            sha256=hashlib.sha256(pdf).hexdigest(),
        )


def _cert(cn: str, key: Any, signer: Any, *, ca: bool = False, issuer: Any = None) -> Any:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
    return builder.sign(signer, hashes.SHA256())


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
        config=kw.pop("config", None) or certify_config(),
        publish=lambda topic, message: sink.append((topic, message)),
        make_copy=signer.make_copy,
        clock=clock,
        certification=lambda **facts: facts,
        token=lambda **values: values,
        copy_page=TestCopyPage,
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
        certifier.approve(waiting[0].id, officer, pin="1234", remote_addr="127.0.0.1")
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
