"""Certification figures (issue 16): the officer's and the agency's signatures on a copy through
PKCS#11 (SoftHSM2 tokens), the officer's request screen, and the whole loop from the citizen's
last page to the printed receipt with a scripted officer."""

from __future__ import annotations

import atexit
import datetime as dt
import importlib
import shutil
import statistics
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

from bench.registry import BenchError, figure


@cache
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="bench-certify-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


@cache
def _pki() -> Any:
    """The development token set (fleet/certify/devpki.py): one per process, as SoftHSM2 reads
    its configuration once; every figure here signs with it."""
    from fleet.certify.devpki import make_pki

    return make_pki(_root() / "tokens", development=True)


@cache
def _signing() -> tuple[Any, Any, Any, list[Any]]:
    """The officer's and the agency's token keys and two A4 pages as JPEG."""
    import cv2

    from fleet.certify.copy import CopyPage, TokenKey
    from fleet.certify.statement import Certification
    from tests.copies_helpers import page_image

    pki = _pki()
    officer = TokenKey(pki.module, pki.officer_token, pki.key_label, pki.pin)
    agency = TokenKey(pki.module, pki.agency_token, pki.key_label, pki.pin)
    pages = []
    for n in (1, 2):
        ok, data = cv2.imencode(".jpg", page_image(n), [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise BenchError("could not encode a bench page")
        pages.append(CopyPage(jpeg=data.tobytes(), dpi=200))
    certification = Certification(
        agency="Ủy ban nhân dân phường Tây Hồ",
        place="phường Tây Hồ, thành phố Hà Nội",
        on=dt.date.today(),
        officer_name="Nguyễn Văn An",
        officer_title="PHÓ CHỦ TỊCH",
        number=1,
        year=dt.date.today().year,
        pages=len(pages),
    )
    return officer, agency, certification, pages


@figure("certify: render + officer and agency PAdES signatures via PKCS#11, 2 pages", unit="ms")
def certify_sign() -> float:
    from fleet.certify.copy import make_copy

    officer, agency, certification, pages = _signing()
    started = time.perf_counter()
    made = make_copy(
        pages,
        code="HN-TAYHO-01-261205-000001-7",
        certification=certification,
        officer=officer,
        agency=agency,
        verify_base="https://xacthuc.example.vn",
    )
    elapsed = (time.perf_counter() - started) * 1000
    if not made.pdf.startswith(b"%PDF"):
        raise BenchError("make_copy gave no PDF")
    return elapsed


# --- the loop and the desk ----------------------------------------------------------------


class _Seal:
    """What tests.test_certify_service.console_config asks of its signer: the certify section,
    the agency seal on the bench's token set."""

    def config(self) -> Any:
        from fleet.certify.config import SealKey
        from tests.certify_helpers import certify_config

        pki = _pki()
        pin_file = _root() / "seal.pin"
        pin_file.write_text(pki.pin, encoding="utf-8")
        seal = SealKey(
            module=pki.module,
            token_label=pki.agency_token,
            key_label=pki.key_label,
            pin_file=pin_file,
        )
        return certify_config(seal=seal)


def _add_officer(store: Any, username: str, **kw: Any) -> None:
    from tests.certify_helpers import add_officer

    pki = _pki()
    add_officer(store, username, token_label=pki.officer_token, key_label=pki.key_label, **kw)


@cache
def _network() -> tuple[Any, Any]:
    """A fleet CA and a real Mosquitto (mTLS, the shipped ACL), kept for the bench's process."""
    import contextlib

    from tests.mqtt_broker import FleetPki, running_broker

    stack = contextlib.ExitStack()
    atexit.register(stack.close)
    pki = FleetPki(_root() / "fleet-pki")
    broker = stack.enter_context(running_broker(_root() / "broker", pki))
    return pki, broker


@cache
def _face_verifier() -> Any:
    from edge.vision.face import FaceVerifier

    return FaceVerifier()


def _officer_script(console: Any, stop: Any, failures: list[str]) -> None:
    """The scripted officer: approves each request as soon as it is queued."""
    from tests.certify_helpers import AGENCY
    from tests.softhsm import PIN

    while not stop.is_set():
        try:
            for item in console.certifier.queue(AGENCY):
                console.certifier.approve(item.id, "bench.officer", pin=PIN, remote_addr="")
        except Exception as err:  # reported as the figure's failure
            failures.append(f"{type(err).__name__}: {err}")
            return
        stop.wait(0.02)


@figure(
    "certify loop: last page to printed receipt, scripted officer, 2-page original",
    unit="ms",
    below=30_000.0,
)
def certify_loop() -> float:
    """From the citizen's last page (the session sends the request) to the receipt's bytes at
    the printer port: the kiosk's signed package through its outbox and a real Mosquitto to a
    fresh console (SQLite), queued, approved by a scripted officer through Certifier.approve
    (both PAdES signatures via PKCS#11 on SoftHSM2), the result back, the receipt printed."""
    import threading

    from fleet.console import build_console

    # Test modules loaded by name: mypy, which checks bench/, does not follow into the suite.
    ecopy_kiosk = importlib.import_module("tests.test_certify_loop").ecopy_kiosk
    console_config = importlib.import_module("tests.test_certify_service").console_config

    pki, broker = _network()
    root = Path(tempfile.mkdtemp(prefix="loop-", dir=_root()))
    try:
        url = f"sqlite:///{root / 'fleet.db'}"
        seal: Any = _Seal()  # stands for the tests' signer: only its config() is used
        console = build_console(console_config(root / "central", broker, pki, url, seal))
        console.start()
        stop = threading.Event()
        failures: list[str] = []
        officer = threading.Thread(target=_officer_script, args=(console, stop, failures))
        try:
            if not console.ingest.wait_connected(10):
                raise BenchError("the console did not connect to the broker")
            _add_officer(console.store, "bench.officer")
            originals = (((2, "birth_certificate"), (3, "birth_certificate")),)
            with ecopy_kiosk(root, broker, pki, _face_verifier(), originals) as kiosk:
                session = kiosk["session"]
                session.issue()  # "fee": asks for the payment
                session.payment.confirm(session.reference)
                session.give_contact("", "kiosk")
                officer.start()
                started = time.perf_counter()
                if session.issue() != "wait":
                    raise BenchError("the session sent no request")
                kiosk["side"].fleet.kick()
                deadline = time.monotonic() + 60
                while not list(kiosk["printed"].glob("*.bin")):
                    if failures:
                        raise BenchError(f"the scripted officer failed: {failures[0]}")
                    if time.monotonic() > deadline:
                        raise BenchError("no receipt printed within 60 s")
                    session.wait_state()  # what the waiting screen's poll does
                    time.sleep(0.01)
                elapsed = (time.perf_counter() - started) * 1000
        finally:
            stop.set()
            if officer.is_alive():
                officer.join(30)
            console.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return elapsed


@cache
def _desk() -> tuple[Any, str, Any]:
    """The desk app on the loopback over a real Certifier (SQLite) holding one 3-page request
    as a kiosk signed it, and an officer's logged-in HTTP session."""
    import contextlib
    import http.cookiejar
    import re
    import urllib.parse
    import urllib.request

    import pyotp
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from fleet.certify.accounts import create_officer
    from fleet.certify.service import Certifier
    from fleet.certify.web import DeskConfig, create_app
    from fleet.store import FleetStore
    from protocol.certify import sign_package
    from protocol.crypto import DataKey
    from tests.certify_helpers import AGENCY, package, page_jpeg
    from tests.mqtt_broker import FleetPki
    from tests.softhsm import PIN
    from web_ui.server import WebServer

    root = _root() / "desk"
    stack = contextlib.ExitStack()
    atexit.register(stack.close)
    store = FleetStore(
        f"sqlite:///{root / 'fleet.db'}", data_key=DataKey.load_or_create(root / "data.key")
    ).create()
    stack.callback(store.close)
    fleet = FleetPki(root / "pki")
    kiosk_id = "HN-BADINH-01"
    certifier = Certifier(
        store,
        config=_Seal().config(),
        publish=lambda topic, message: None,
        issuers=x509.load_pem_x509_certificates(fleet.ca_file.read_bytes()),
    )
    reads: list[str] = []
    read = certifier.request

    def counted(request_id: str) -> Any:
        reads.append(request_id)
        return read(request_id)

    certifier.request = counted  # type: ignore[method-assign]
    me = fleet.client(kiosk_id)
    key = serialization.load_pem_private_key(me.key.read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BenchError("the bench kiosk's key is not EC")
    code = f"{kiosk_id}-261207-000001-7"
    signed = sign_package(package(code, page_jpeg(), pages=3), key, me.cert.read_text())
    record = {"data": signed, "id": f"rec-{code}"}
    if not certifier.receive(kiosk_id, record):
        raise BenchError("the bench request was not queued")
    password = "mật-khẩu-dài-đủ-bench"
    uri = create_officer(
        store,
        "bench.desk",
        full_name="Nguyễn Văn An",
        title="Phó Chủ tịch",
        agency=AGENCY,
        role="officer",
        password=password,
        token_label=_pki().officer_token,
        key_label=_pki().key_label,
    )
    config = DeskConfig(secret_key_file=root / "desk.key", cookie_secure=False)
    app = create_app(certifier, store, config)
    web = WebServer(app, host="127.0.0.1", port=0, threads=4)
    web.start()
    stack.callback(web.stop)
    base = f"http://127.0.0.1:{web.port}"
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with opener.open(f"{base}/login", timeout=5) as page:
        form = page.read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
    if token is None:
        raise BenchError("no CSRF token on the desk's login page")
    fields = {
        "csrf_token": token[1],
        "username": "bench.desk",
        "password": password,
        "code": pyotp.TOTP(pyotp.parse_uri(uri).secret).now(),
        "pin": PIN,
    }
    with opener.open(f"{base}/login", urllib.parse.urlencode(fields).encode(), timeout=5) as done:
        done.read()
        if not done.geturl().endswith("/queue"):
            raise BenchError("the bench officer could not log in to the desk")

    def forget() -> int:
        """Drop the desk's cached view; how many times the store was read so far."""
        views = app.extensions.get("certify_views")
        if views is not None:
            views.drop(code)
        return len(reads)

    return opener, f"{base}/requests/{code}", forget


@figure(
    "certify: officer request screen, 3 pages (GET, logged in, view not cached), median of 10",
    unit="ms",
    below=200.0,
)
def certify_request_screen() -> float:
    """The desk's request page over HTTP on the loopback, logged in: the real Certifier reads
    the stored request (the sealed package with its three page images) and the page is
    rendered. The desk keeps a request's view a minute (the officer's next request is
    prefetched); it is dropped before each GET, so every GET reads the store: the cold case."""
    opener, url, forget = _desk()

    def get() -> None:
        before = forget()
        with opener.open(url, timeout=5) as response:
            body = response.read()
            if response.status != 200 or b'id="pages"' not in body:
                raise BenchError("the request screen did not show the request")
        if forget() != before + 1:
            raise BenchError("the request screen did not read the request from the store")

    return _ms(get, inner=10)


def _ms(call: Any, inner: int) -> float:
    times = []
    for _ in range(inner):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)
