"""`kiosk-fleet demo certify`: the whole certification loop on one PC (issue 16).

Everything runs on the loopback, in a temp dir removed at the end (only the copies stay, in the
output folder):

1. a throwaway fleet CA (provisioning.ca) issues the broker's, central's and the simulated
   kiosk's certificates; a real `mosquitto` runs with mutual TLS and the shipped ACL
   (config/mosquitto/kiosk-fleet.acl) on a free 127.0.0.1 port;
2. SoftHSM2 tokens for the officer and the agency seal, with keys made inside them and
   certificates from a root marked DEVELOPMENT (fleet.certify.devpki): kiosks verify such copies
   as "not valid (development)", never as "Bản sao hợp lệ";
3. the real console (SQLite) with its Certifier, an officer account and a [certify] section;
4. a simulated kiosk (a plain MQTT client with a kiosk certificate) sends one cert-request
   record per original, as the kiosk's outbox does: record/1, the cert-request/1 package signed
   with its device key (protocol.certify.sign_package). The package is built here from the image
   files (JPEG at quality 85, dpi, size, SHA-256): fleet/ never imports the kiosk's code, so
   OCR, the page checks and the document type detection are NOT run (the package says so with
   empty text and no checks);
5. a scripted officer approves each waiting request through Certifier.approve with the
   officer token's PIN (no browser, no login: the desk's web app is not part of the demo);
6. the kiosk writes each approved copy to <out>/<code>.pdf when its cert-result arrives, after
   checking its SHA-256.

Bounded by an overall timeout; the broker, the console, the threads and the temp dir are
stopped and removed on every exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import getpass
import hashlib
import io
import json
import logging
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zoneinfo
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.errors import BadInput, KioskError

logger = logging.getLogger(__name__)

KIOSK_ID = "DEMO-KIOSK-01"
AGENCY_ID = "DEMO-TAYHO"
AGENCY_NAME = "UBND phường Tây Hồ"  # as fleet.certify.devpki's certificates name it
PLACE = "Hà Nội"
OFFICER = "nguyen.van.an"
OFFICER_NAME = "Nguyễn Văn An"
OFFICER_TITLE = "Phó Chủ tịch UBND phường Tây Hồ"
VERIFY_BASE = "https://xacthuc.example.invalid"
CENTRAL_CN = "fleet-central"  # the ACL's user for central
PREFIX = "kiosk/v1"  # the topic tree the shipped ACL assumes
TIMEOUT_S = 120.0
JPEG_QUALITY = 85  # as the kiosk encodes its pages (edge/certify/requests.py)
MAX_PAGES = 20  # protocol/schemas/cert-request.json
MAX_PACKAGE_BYTES = 16 << 20  # the kiosk's own limit for one package
A4_WIDTH_IN = 210 / 25.4
INSTALL_HINT = "sudo apt install mosquitto softhsm2"
MOSQUITTO_PATHS = ("/usr/sbin/mosquitto",)  # Debian's, not on a user's PATH
REPO = Path(__file__).resolve().parents[2]
ACL_FILE = REPO / "config" / "mosquitto" / "kiosk-fleet.acl"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class DemoFailed(KioskError):
    """The demo could not finish (a missing tool, the broker, a timeout): exit code 1."""

    code = "demo_failed"


@dataclass(frozen=True)
class Page:
    jpeg: bytes
    dpi: int
    width: int
    height: int


@dataclass(frozen=True)
class DemoCopy:
    code: str
    number: int
    book: str
    pdf: Path
    size: int  # bytes

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "book": self.book, "pdf": str(self.pdf)}


# --- the originals -----------------------------------------------------------------------------


def parse_originals(values: Sequence[str]) -> list[list[Path]]:
    """--original values: each one original, its pages comma-separated."""
    originals = []
    for value in values:
        paths = [Path(p.strip()) for p in value.split(",") if p.strip()]
        if not paths:
            raise BadInput(f"--original {value!r} names no image file")
        if len(paths) > MAX_PAGES:
            raise BadInput(f"an original has at most {MAX_PAGES} pages, not {len(paths)}")
        originals.append(paths)
    if not originals:
        raise BadInput("give at least one --original")
    return originals


def load_page(path: Path) -> Page:
    """An image file as the kiosk would send the page: JPEG (quality 85) at full resolution, with
    its dpi (the file's own, else as if the page were A4 wide)."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise BadInput(f"no image file {path}")
    try:
        with Image.open(path) as img:
            img.load()
            dpi_info = img.info.get("dpi")
            rgb = img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise BadInput(f"{path} is not an image this demo can read: {err}") from None
    width, height = rgb.size
    dpi = 0.0
    if isinstance(dpi_info, tuple) and dpi_info and dpi_info[0]:
        dpi = float(dpi_info[0])
    if not 50 <= dpi <= 1200:
        dpi = width / A4_WIDTH_IN
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=JPEG_QUALITY)
    return Page(out.getvalue(), round(min(max(dpi, 50), 1200)), width, height)


# --- the kiosk's package and record ------------------------------------------------------------


def check_char(text: str) -> str:
    """ISO 7064 MOD 37,36 check character over the code's letters and digits ('-' left out): the
    kiosk's copy codes' rule (edge/copies/code.py; fleet does not import the kiosk's code)."""
    m = p = 36
    for ch in text.upper():
        if ch == "-":
            continue
        s = (p + _ALPHABET.index(ch)) % m or m
        p = (s * 2) % (m + 1)
    return _ALPHABET[(m + 1 - p) % m]


def request_code(kiosk_id: str, day: dt.date, seq: int) -> str:
    body = f"{kiosk_id}-{day:%y%m%d}-{seq:06d}"
    return f"{body}-{check_char(body)}"


def build_package(
    pages: Sequence[Page],
    *,
    code: str,
    number: int,
    of: int,
    created_at: dt.datetime,
    due_at: dt.datetime,
    fee_vnd: int,
) -> dict[str, Any]:
    """The unsigned cert-request/1 package of one original, as the kiosk builds it, less what only
    the kiosk computes: no OCR text, fields, document type or page checks (not run here)."""
    return {
        "schema": "cert-request/1",
        "request_id": f"cert-{code}",
        "code": code,
        "kiosk_id": KIOSK_ID,
        "created_at": created_at.isoformat(),
        "due_at": due_at.isoformat(),
        "original": number,
        "originals": of,
        "doc_type": "unknown",
        "pages": [
            {
                "n": n,
                "jpeg_base64": base64.b64encode(p.jpeg).decode("ascii"),
                "dpi": p.dpi,
                "width": p.width,
                "height": p.height,
                "sha256": hashlib.sha256(p.jpeg).hexdigest(),
            }
            for n, p in enumerate(pages, 1)
        ],
        "ocr_text": "",
        "fields": {},
        # An invented requester: the demo has no citizen (the register's column shows this).
        "citizen": {"id_number": "000000000000", "name": "Công dân thử nghiệm (demo)"},
        "delivery": {"channel": "kiosk"},
        "fee": {
            "pages": len(pages),
            "fee_vnd": fee_vnd,
            "payable_vnd": fee_vnd,
            "exempt": False,
            "paid": True,
            "reference": "DEMO",
        },
        "checks": [],
        "capture": {
            "camera": {"source": "image files (kiosk-fleet demo certify)"},
            "software": "kiosk-fleet demo (no OCR, no page checks)",
        },
    }


def record(package: dict[str, Any], seq: int, now: dt.datetime) -> dict[str, Any]:
    """The outbox's record/1 around a signed package (message id cert-<code>)."""
    return {
        "schema": "record/1",
        "kiosk_id": KIOSK_ID,
        "kind": "cert-request",
        "time": package["created_at"],
        "data": package,
        "id": package["request_id"],
        "seq": seq,
        "queued_at": now.isoformat(),
    }


# --- the parts ---------------------------------------------------------------------------------


def check_tools() -> tuple[str, str]:
    """mosquitto and the SoftHSM2 library, or DemoFailed naming the packages to install."""
    from fleet.certify.devpki import MODULE

    mosquitto = shutil.which("mosquitto") or next(
        (p for p in MOSQUITTO_PATHS if Path(p).exists()), None
    )
    missing = []
    if mosquitto is None:
        missing.append("mosquitto")
    if not Path(MODULE).exists() or shutil.which("softhsm2-util") is None:
        missing.append(f"SoftHSM2 ({MODULE}, softhsm2-util)")
    if missing:
        raise DemoFailed(f"{' and '.join(missing)} not found; install them: {INSTALL_HINT}")
    if not ACL_FILE.is_file():
        raise DemoFailed(f"the shipped ACL {ACL_FILE} is missing: run the demo from a checkout")
    assert mosquitto is not None
    return mosquitto, MODULE


@dataclass(frozen=True)
class Identity:
    cert: Path
    key: Path


def _key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_identity(folder: Path, name: str, cert_pem: str, key_pem: bytes) -> Identity:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    cert.write_text(cert_pem, encoding="ascii")
    key.write_bytes(key_pem)
    key.chmod(0o600)
    return Identity(cert, key)


def make_fleet_pki(folder: Path) -> tuple[Path, Identity, Identity, Identity]:
    """A throwaway fleet CA (provisioning.ca) and the broker's, central's and the kiosk's
    certificates: (ca.crt, broker, central, kiosk)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from provisioning.ca import CertificateAuthority

    ca = CertificateAuthority(folder / "ca")
    ca.init("kiosk-fleet demo CA (DEVELOPMENT, throwaway)", days=2)
    broker_pem, broker_key = ca.issue_server("localhost", sans=["localhost", "127.0.0.1"], days=1)
    broker = _write_identity(folder, "broker", broker_pem, broker_key.encode())
    # The kiosk: its own key and a CSR, signed as `kiosk-ca sign` does.
    kiosk_key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, KIOSK_ID)]))
        .sign(kiosk_key, hashes.SHA256())
    )
    kiosk_pem = ca.sign_csr(csr.public_bytes(serialization.Encoding.PEM), days=1, kiosk_id=KIOSK_ID)
    kiosk = _write_identity(folder, "kiosk", kiosk_pem, _key_pem(kiosk_key))
    # Central's client certificate: `kiosk-ca sign` takes kiosk ids only, and "fleet-central" is
    # not one, so it is issued with the CA's own issuing step (the same extensions: clientAuth).
    central_key = ec.generate_private_key(ec.SECP256R1())
    central_pem = ca._issue(CENTRAL_CN, central_key.public_key(), days=1, server_names=None)
    central = _write_identity(folder, "central", central_pem, _key_pem(central_key))
    return ca.cert_path, broker, central, kiosk


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the broker gets SIGTERM if the demo dies without cleaning up (kill -9)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class DemoBroker:
    """A mosquitto process: mutual TLS on a free loopback port, the shipped ACL, no persistence."""

    def __init__(self, binary: str, folder: Path, ca_file: Path, server: Identity) -> None:
        self.binary = binary
        self.folder = folder
        self.ca_file = ca_file
        self.server = server
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "mosquitto.log"

    def _config(self) -> Path:
        conf = self.folder / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    "# kiosk-fleet demo certify: the mTLS listener of config/mosquitto/mosquitto.conf",
                    "per_listener_settings false",
                    f"user {getpass.getuser()}",
                    "persistence false",
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "allow_anonymous false",
                    f"acl_file {ACL_FILE}",
                    f"listener {self.port} 127.0.0.1",
                    f"cafile {self.ca_file}",
                    f"certfile {self.server.cert}",
                    f"keyfile {self.server.key}",
                    "require_certificate true",
                    "use_identity_as_username true",
                    "use_username_as_clientid true",
                    "tls_version tlsv1.2",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        return conf

    def start(self, timeout: float = 5.0) -> None:
        last = ""
        for _attempt in range(3):  # the free port may be taken between the probe and the bind
            self.port = _free_port()
            conf = self._config()
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [self.binary, "-c", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches the demo, which stops it in order
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    return
                except OSError:
                    time.sleep(0.02)
            last = self.log_path.read_text(errors="replace")[-2000:]
            self.stop()
        raise DemoFailed(f"mosquitto did not start:\n{last}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class SimKiosk:
    """The simulated kiosk: an MQTT client with the kiosk's certificate that publishes records
    on <prefix>/<kiosk>/records/cert-request and hears central on <prefix>/<kiosk>/cert."""

    def __init__(self, port: int, ca_file: Path, me: Identity) -> None:
        from protocol.mqtt import new_client, tls_context

        self.answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self.acked: set[str] = set()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.port = port
        self.client = new_client(KIOSK_ID, tls=tls_context(ca_file, me.cert, me.key))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = self._on_message

    def start(self, timeout: float) -> None:
        self.client.connect_async("localhost", self.port, keepalive=30)
        self.client.loop_start()
        if not (self._connected.wait(timeout) and self._subscribed.wait(timeout)):
            raise DemoFailed("the simulated kiosk could not connect to the broker")

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(f"{PREFIX}/{KIOSK_ID}/cert", 1), (f"{PREFIX}/{KIOSK_ID}/ack", 1)])
            self._connected.set()

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        if message.topic.endswith("/ack"):
            self.acked.update(str(i) for i in body.get("ids") or [])
        elif isinstance(body, dict):
            self.answers.put(body)

    def send(self, rec: dict[str, Any], timeout: float) -> None:
        info = self.client.publish(
            f"{PREFIX}/{KIOSK_ID}/records/cert-request",
            json.dumps(rec, ensure_ascii=False, separators=(",", ":")),
            qos=1,
        )
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise DemoFailed("the broker did not take a certification request in time")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


class ScriptedOfficer(threading.Thread):
    """Approves each waiting request of the agency, oldest first, with the token's PIN."""

    def __init__(self, certifier: Any, codes: set[str], pin: str) -> None:
        super().__init__(name="demo-officer", daemon=True)
        self.certifier = certifier
        self.codes = set(codes)
        self.pin = pin
        self.stop_event = threading.Event()
        self.error: Exception | None = None
        self.approved: list[str] = []

    def run(self) -> None:
        try:
            while self.codes - set(self.approved) and not self.stop_event.is_set():
                waiting = [i for i in self.certifier.queue(AGENCY_ID) if i.id in self.codes]
                if not waiting:
                    self.stop_event.wait(0.1)
                    continue
                item = waiting[0]
                started = time.monotonic()
                entry = self.certifier.approve(
                    item.id, OFFICER, pin=self.pin, remote_addr="127.0.0.1"
                )
                self.approved.append(item.id)
                logger.info(
                    "officer approved %s: number %s, book %s (%.2f s to sign)",
                    item.id,
                    entry.number,
                    entry.book,
                    time.monotonic() - started,
                )
        except Exception as err:  # handed to the main thread
            self.error = err


# --- the loop ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _softhsm_env() -> Iterator[None]:
    """devpki points SOFTHSM2_CONF at the temp tokens; put it back afterwards."""
    before = os.environ.get("SOFTHSM2_CONF")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = before


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the demo as Ctrl-C does (the cleanup runs), in the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(
    originals: Sequence[Sequence[Path]],
    out: Path,
    *,
    timeout_s: float = TIMEOUT_S,
    on_copy: Callable[[DemoCopy], None] | None = None,
) -> list[DemoCopy]:
    """The whole loop; the copies, in the order they came back. BadInput for a bad original
    (before anything starts), DemoFailed for a missing tool, a failure or the timeout."""
    pages = [[load_page(p) for p in original] for original in originals]
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is a file, not a folder")
    binary, _module = check_tools()
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    with (
        _terminate_as_interrupt(),
        _softhsm_env(),
        tempfile.TemporaryDirectory(prefix="kiosk-demo-certify-") as tmp,
    ):
        return _run(Path(tmp), pages, out, deadline, timeout_s, binary, on_copy)


def _remaining(deadline: float, timeout_s: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DemoFailed(f"timed out after {timeout_s:.0f} s {what}")
    return left


def _run(
    tmp: Path,
    originals: list[list[Page]],
    out: Path,
    deadline: float,
    timeout_s: float,
    binary: str,
    on_copy: Callable[[DemoCopy], None] | None,
) -> list[DemoCopy]:
    from fleet.certify.accounts import create_officer
    from fleet.certify.config import CertifyConfig, SealKey
    from fleet.certify.devpki import PIN, make_pki
    from fleet.config import (
        FleetConfig,
        MqttSection,
        ProvisioningSection,
        StoreSection,
        WebSection,
    )
    from fleet.console import build_console
    from protocol import certify as contract
    from protocol.schemas import validator

    started = time.monotonic()
    ca_file, broker_id, central_id, kiosk_id = make_fleet_pki(tmp / "pki")
    broker = DemoBroker(binary, tmp, ca_file, broker_id)
    console: Any = None
    kiosk: SimKiosk | None = None
    officer: ScriptedOfficer | None = None
    try:
        broker.start()
        logger.info("mosquitto (mTLS, shipped ACL) on 127.0.0.1:%s", broker.port)
        pki = make_pki(tmp / "hsm", development=True)  # sets SOFTHSM2_CONF for this process
        (tmp / "seal.pin").write_text(pki.pin, encoding="utf-8")
        (out / "development-root.pem").write_bytes(pki.root_pem.read_bytes())
        certify = CertifyConfig(
            agency_id=AGENCY_ID,
            agency_name=AGENCY_NAME,
            place=PLACE,
            verify_base=VERIFY_BASE,
            seal=SealKey(
                module=pki.module,
                token_label=pki.agency_token,
                key_label=pki.key_label,
                pin_file=tmp / "seal.pin",
            ),
            fleet_ca_file=ca_file,
        )
        config = FleetConfig(
            store=StoreSection(url=f"sqlite:///{tmp / 'fleet.db'}", data_key_file=tmp / "data.key"),
            mqtt=MqttSection(
                host="localhost",
                port=broker.port,
                ca_file=ca_file,
                cert_file=central_id.cert,
                key_file=central_id.key,
            ),
            web=WebSection(secret_key_file=tmp / "secret.key", cookie_secure=False),
            provisioning=ProvisioningSection(secrets_key_file=tmp / "claims.key"),
            certify=certify,
        )
        console = build_console(config)
        console.prepare()
        create_officer(
            console.store,
            OFFICER,
            full_name=OFFICER_NAME,
            title=OFFICER_TITLE,
            agency=AGENCY_ID,
            role="officer",
            password=secrets.token_urlsafe(18),  # nobody logs in: the officer is scripted
            token_label=pki.officer_token,
            key_label=pki.key_label,
        )
        console.start()
        if not console.ingest.wait_connected(_remaining(deadline, timeout_s, "starting")):
            raise DemoFailed("the console could not connect to the broker")
        logger.info("console (SQLite) and its Certifier started")

        kiosk = SimKiosk(broker.port, ca_file, kiosk_id)
        kiosk.start(min(10.0, _remaining(deadline, timeout_s, "connecting the kiosk")))
        codes = _send_requests(kiosk, kiosk_id, originals, certify, validator("cert-request"))
        sent_at = time.monotonic()

        officer = ScriptedOfficer(console.certifier, set(codes), PIN)
        officer.start()
        copies = _collect(kiosk, officer, codes, out, deadline, timeout_s, on_copy, contract)
        logger.info(
            "%d certified copies back %.1f s after the last request was sent (%.1f s in all); "
            "central acknowledged %d of the kiosk's records",
            len(copies),
            time.monotonic() - sent_at,
            time.monotonic() - started,
            len(kiosk.acked & {f"cert-{c}" for c in codes}),
        )
        return copies
    finally:
        if officer is not None:
            officer.stop_event.set()
            officer.join(30)
        if kiosk is not None:
            kiosk.close()
        if console is not None:
            console.stop()
        broker.stop()


def _send_requests(
    kiosk: SimKiosk,
    me: Identity,
    originals: list[list[Page]],
    certify: Any,
    schema: Any,
) -> list[str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from protocol import certify as contract

    key = serialization.load_pem_private_key(me.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert_pem = me.cert.read_text(encoding="ascii")
    zone = zoneinfo.ZoneInfo(certify.timezone)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    local = now.astimezone(zone)
    due = contract.deadline(local, holidays=certify.holidays, closes=certify.office_closes)
    codes = []
    for n, pages in enumerate(originals, 1):
        code = request_code(KIOSK_ID, local.date(), n)
        package = build_package(
            pages,
            code=code,
            number=n,
            of=len(originals),
            created_at=now,
            due_at=due,
            fee_vnd=certify.fee(len(pages)),
        )
        signed = contract.sign_package(package, key, cert_pem)
        problem = next(iter(schema.iter_errors(signed)), None)
        if problem is not None:
            raise DemoFailed(f"the demo's package is not a cert-request/1: {problem.message[:200]}")
        rec = record(signed, n, dt.datetime.now(dt.UTC))
        size = len(json.dumps(rec, ensure_ascii=False).encode())
        if size > MAX_PACKAGE_BYTES:
            raise BadInput(
                f"original {n} makes a package of {size} bytes, more than the kiosk's "
                f"{MAX_PACKAGE_BYTES}: use smaller images"
            )
        kiosk.send(rec, 10.0)
        codes.append(code)
        logger.info(
            "kiosk sent %s: original %d of %d, %d page(s)", code, n, len(originals), len(pages)
        )
    return codes


def _collect(
    kiosk: SimKiosk,
    officer: ScriptedOfficer,
    codes: list[str],
    out: Path,
    deadline: float,
    timeout_s: float,
    on_copy: Callable[[DemoCopy], None] | None,
    contract: Any,
) -> list[DemoCopy]:
    """The kiosk's side: each answer on its cert topic; an approved copy written once its
    SHA-256 matches."""
    copies: dict[str, DemoCopy] = {}
    while len(copies) < len(codes):
        if officer.error is not None:
            raise DemoFailed(f"the scripted officer failed: {officer.error}") from officer.error
        left = _remaining(deadline, timeout_s, f"waiting for the copies ({len(copies)} back)")
        try:
            answer = kiosk.answers.get(timeout=min(left, 0.2))
        except queue.Empty:
            continue
        code = str(answer.get("request_id"))
        status = answer.get("status")
        if code not in codes or code in copies:
            continue
        if status == "queued":
            logger.info(
                "kiosk: %s queued, position %s, expected wait %.0f min (office hours count)",
                code,
                answer.get("position"),
                float(answer.get("expected_wait_s") or 0) / 60,
            )
            continue
        if status != "approved":
            raise DemoFailed(f"{code} was not approved: {status} {answer.get('reason_code', '')}")
        pdf = base64.b64decode(answer["pdf"])
        if hashlib.sha256(pdf).hexdigest() != answer.get("sha256"):
            raise DemoFailed(f"the copy of {code} does not match its SHA-256")
        path = (out / f"{code}.pdf").resolve()
        tmp = path.with_suffix(".pdf.part")
        tmp.write_bytes(pdf)
        tmp.replace(path)
        copy = DemoCopy(
            code=code,
            number=int(answer["number"]),
            book=str(answer["book"]),
            pdf=path,
            size=len(pdf),
        )
        copies[code] = copy
        if on_copy is not None:
            on_copy(copy)
    return sorted(copies.values(), key=lambda c: c.number)


# --- the command -------------------------------------------------------------------------------


def main(originals: Sequence[str], out: Path, *, as_json: bool, timeout_s: float) -> int:
    """`kiosk-fleet demo certify`: stdout has a line per copy, or the JSON; logs go to stderr."""
    parsed = parse_originals(originals)
    if not 1 <= timeout_s <= 3600:
        raise BadInput("--timeout must be between 1 and 3600 seconds")

    def line(copy: DemoCopy) -> None:
        if not as_json:
            print(f"Số chứng thực / number {copy.number}, quyển số / book {copy.book}: {copy.pdf}")
            sys.stdout.flush()

    copies = run_demo(parsed, out, timeout_s=timeout_s, on_copy=line)
    if as_json:
        print(json.dumps({"copies": [c.as_dict() for c in copies]}, ensure_ascii=False))
    print(
        "Ký bằng khóa phát triển (DEVELOPMENT): ki-ốt xác minh các bản sao này là KHÔNG hợp lệ. "
        "/ Signed with DEVELOPMENT keys: kiosks verify these copies as not valid (development). "
        "OCR and the page checks were not run.",
        file=sys.stderr,
    )
    return 0
