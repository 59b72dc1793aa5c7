"""Certification requests, kiosk side (issue 16): one per original the citizen brought.

Each original becomes a signed capture package (protocol.certify.sign_package, with this
kiosk's fleet mTLS device key: the kiosk never holds an officer's or the agency's key), queued in
the outbox as a record of kind ``cert-request`` in the same SQLite transaction as this kiosk's own
row of the request. Central's officer answers on ``<prefix>/<kiosk_id>/cert`` (cert-result/1):
``queued`` (place, expected wait), then ``approved`` (the certified copy, stored sealed here),
``refused`` (an Art. 22 reason) or ``see_staff``. Names, ID numbers and page images are never
logged; at rest they are sealed with the data key.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import jsonschema
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge.copies.code import make_code
from edge.errors import KioskError
from edge.fees import Fee
from edge.fleet.inbox import Malformed, parse_cert_result
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from protocol import certify
from protocol.schemas import validator

logger = logging.getLogger(__name__)

RECORD_TOPIC = f"records/{certify.REQUEST_KIND}"
RECORD_SCHEMA = "record/1"
CHANNELS = ("email", "ewallet", "post", "kiosk")
JPEG_QUALITY = 85
ANSWERED = ("approved", "refused", "see_staff")
# The broker's limit is Mosquitto's default (no message_size_limit: 256 MiB, MQTT's maximum);
# the kiosk keeps a package far below it, so a slow uplink still moves one in a few seconds.
MAX_PACKAGE_BYTES = 16 << 20

CheckOriginal = Callable[[Sequence[Any], str], list[dict[str, Any]]]


PICKUP_DIGITS = 6
PICKUP_TRIES = 5  # wrong one-time codes for a request before it is locked
PICKUP_LOCK_S = 15 * 60


class CollectRefused(KioskError):
    """A copy not handed over at the kiosk: `why` is unknown (no such code, or a wrong or used
    one-time code: one answer for both), locked, waiting, refused or see_staff."""

    code = "collect_refused"

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def pickup_code() -> str:
    """A one-time code to collect the certified copies at the kiosk (printed on the slip)."""
    return f"{secrets.randbelow(10**PICKUP_DIGITS):0{PICKUP_DIGITS}d}"


def _pickup_hash(code: str, pickup: str) -> str:
    return hashlib.sha256(f"{code}:{pickup}".encode()).hexdigest()


class RequestRefused(KioskError):
    """The request could not be made (no signing identity, a package too big, bad input)."""

    code = "cert_request_refused"


@dataclass(frozen=True, slots=True)
class Original:
    """One original as captured: its pages (edge.vision ScannedPage: image, dpi, paper, check),
    the text and fields read on it, its document type and each page's OCR confidence."""

    pages: Sequence[Any]
    doc_type: str = "unknown"
    ocr_text: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    confidence: Sequence[int | None] = ()
    doc_label: tuple[str, str] = ("", "")  # the document type as people name it (vi, en)


@dataclass(frozen=True, slots=True)
class RequestState:
    """One request as the waiting screen, the receipt and the slip show it (no personal data)."""

    code: str
    original: int
    pages: int
    created_at: dt.datetime
    due_at: dt.datetime
    payable_vnd: int
    channel: str
    status: str  # sent | queued | approved | refused | see_staff
    position: int | None
    wait_min: float | None
    reason: str | None
    number: str | None
    book: str | None
    qr: str | None
    printed: bool

    @property
    def answered(self) -> bool:
        return self.status in ANSWERED

    @property
    def reason_text(self) -> tuple[str, str] | None:
        """The refusal in plain Vietnamese and English."""
        if self.reason is None:
            return None
        return certify.REFUSAL_REASONS.get(self.reason, certify.REFUSAL_REASONS["other"])


def device_signer(key_file: Path, cert_file: Path) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """The kiosk's fleet mTLS device key and certificate ([mqtt] key_file, cert_file; rotated in
    place by edge.fleet.certificates.install_certificate), read at each use."""
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        cert_pem = cert_file.read_text(encoding="ascii")
    except (OSError, ValueError) as err:
        raise RequestRefused(f"no device identity to sign with: {type(err).__name__}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise RequestRefused("the device key is not an EC key")
    return key, cert_pem


def page_checks(verify_qr: Callable[[str], Any] | None = None) -> CheckOriginal:
    """edge.vision.checks.check_original on one original's pages as scan() flattened them,
    before enhancement (ScannedPage.flat: enhancement hides correction fluid and a screen's
    pattern; docs/page-checks.md), at their dpi; the flags as JSON for the package.
    verify_qr checks a QR printed on the original in a signed format we know (our copies')."""
    from edge.vision.checks import check_original

    def run(pages: Sequence[Any], ocr_text: str) -> list[dict[str, Any]]:
        if not pages:
            return []
        flags = check_original(
            [page.flat for page in pages], ocr_text, verify_qr=verify_qr, dpi=pages[0].dpi
        )
        return [flag.as_dict() for flag in flags]

    return run


def encode_page(page: Any) -> tuple[bytes, int, int]:
    """The page at full resolution as JPEG: the bytes, width and height."""
    image = page.image
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RequestRefused("a page could not be encoded")
    h, w = image.shape[:2]
    return data.tobytes(), int(w), int(h)


def _page_entry(n: int, page: Any, confidence: int | None) -> dict[str, Any]:
    jpeg, w, h = encode_page(page)
    check = getattr(page, "check", None)
    quad = None
    quality: dict[str, Any] = {}
    if check is not None:
        if check.quad is not None:
            quad = [[round(float(x), 1), round(float(y), 1)] for x, y in check.quad]
        quality = check.quality.as_dict() | {"problems": list(check.problems)}
    return {
        "n": n,
        "jpeg_base64": base64.b64encode(jpeg).decode("ascii"),
        "dpi": int(page.dpi),
        "width": w,
        "height": h,
        "sha256": hashlib.sha256(jpeg).hexdigest(),
        "paper": str(getattr(page, "paper", "other")),
        "quad": quad,
        "quality": quality,
        "confidence": confidence,
    }


def _hhmm(text: str) -> dt.time:
    hours, minutes = text.split(":")
    return dt.time(int(hours), int(minutes))


class CertRequests:
    """The kiosk's certification requests: made, sent, answered, printed, collected."""

    def __init__(
        self,
        *,
        store: Store,
        key: DataKey,
        outbox: Outbox,
        kiosk_id: str,
        reserve: Callable[[], int],
        signer: Callable[[], tuple[ec.EllipticCurvePrivateKey, str]],
        timezone: str = "Asia/Ho_Chi_Minh",
        camera: dict[str, Any] | None = None,
        check_original: CheckOriginal | None = None,
        holidays: Collection[dt.date] = (),
        office: tuple[str, str] = ("07:30", "17:00"),
        on_queued: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.key = key
        self.outbox = outbox
        self.kiosk_id = kiosk_id
        self.reserve = reserve
        self.signer = signer
        self.zone = ZoneInfo(timezone)
        self.camera = camera or {}
        self.check_original = check_original
        self.holidays = holidays
        self.office = (_hhmm(office[0]), _hhmm(office[1]))
        self.on_queued = on_queued
        self.clock = clock
        self.listeners: list[Callable[[RequestState], None]] = []
        self._validator = validator(certify.REQUEST_KIND)
        self._tries: dict[str, tuple[int, float]] = {}  # wrong one-time codes per request
        self._lock = threading.Lock()

    # --- making requests --------------------------------------------------------------

    def office_open(self, at: dt.datetime | None = None) -> bool:
        """Officers answer now: a working day, within office hours (local time)."""
        local = (at or dt.datetime.fromtimestamp(self.clock(), dt.UTC)).astimezone(self.zone)
        opens, closes = self.office
        return (
            certify.working_day(local.date(), self.holidays)
            and opens <= local.time().replace(tzinfo=None) < closes
        )

    def build_package(
        self,
        original: Original,
        *,
        code: str,
        number: int,
        of: int,
        citizen: dict[str, Any],
        delivery: dict[str, str],
        fee: Fee,
        paid: bool,
        reference: str,
        created_at: dt.datetime,
    ) -> dict[str, Any]:
        """The unsigned capture package of one original (protocol/schemas/cert-request.json)."""
        confidences = list(original.confidence) + [None] * len(original.pages)
        pages = [
            _page_entry(i, page, confidences[i - 1]) for i, page in enumerate(original.pages, 1)
        ]
        checks: list[dict[str, Any]] = []
        if self.check_original is not None:
            try:
                checks = list(self.check_original(original.pages, original.ocr_text))
            except Exception:  # a check that fails must not stop the request: the officer looks
                logger.exception("original checks failed", extra={"code": code})
                checks = [{"check": "checks", "status": "error"}]
        return {
            "schema": certify.CERT_REQUEST,
            "request_id": f"cert-{code}",
            "code": code,
            "kiosk_id": self.kiosk_id,
            "created_at": created_at.isoformat(),
            "due_at": self.due(created_at).isoformat(),
            "original": number,
            "originals": of,
            "doc_type": original.doc_type,
            "doc_label": {"vi": original.doc_label[0], "en": original.doc_label[1]},
            "pages": pages,
            "ocr_text": original.ocr_text,
            "fields": dict(original.fields),
            "citizen": _citizen(citizen),
            "delivery": delivery,
            "fee": fee.as_dict() | {"paid": paid, "reference": reference},
            "checks": checks,
            "capture": {"camera": self.camera, "software": "kiosk-edge"},
        }

    def due(self, received: dt.datetime) -> dt.datetime:
        """Art. 7: when the certified copy is due, in the kiosk's time zone."""
        _, closes = self.office
        return certify.deadline(
            received.astimezone(self.zone), holidays=self.holidays, closes=closes
        )

    def submit(
        self,
        originals: Sequence[Original],
        citizen: dict[str, Any],
        *,
        fees: Sequence[Fee],
        delivery: dict[str, str],
        paid: bool = False,
        reference: str = "",
        visit: str | None = None,
        pickup: str | None = None,
    ) -> list[str]:
        """One request per original, each signed and queued with its row in one transaction:
        the codes, in the order of the originals. RequestRefused before anything is stored
        when a package cannot be made. pickup: the one-time code to collect the copies at
        this kiosk (only its hash is kept)."""
        if not originals or len(fees) != len(originals):
            raise RequestRefused("one fee per original, at least one original")
        if delivery.get("channel") not in CHANNELS:
            raise RequestRefused(f"unknown delivery channel {delivery.get('channel')!r}")
        key, cert_pem = self.signer()
        visit = visit or secrets.token_hex(8)
        created_at = dt.datetime.fromtimestamp(self.clock(), dt.UTC).replace(microsecond=0)
        detail = {
            "citizen": _citizen(citizen),
            "delivery": delivery,
        }
        codes: list[str] = []
        for n, (original, fee) in enumerate(zip(originals, fees, strict=True), 1):
            with self._lock:
                seq = self.reserve()
            code = make_code(self.kiosk_id, created_at.astimezone(self.zone).date(), seq).text
            package = self.build_package(
                original,
                code=code,
                number=n,
                of=len(originals),
                citizen=citizen,
                delivery=delivery,
                fee=fee,
                paid=paid,
                reference=reference,
                created_at=created_at,
            )
            signed = certify.sign_package(package, key, cert_pem)
            self._check(signed)
            record = {
                "schema": RECORD_SCHEMA,
                "kiosk_id": self.kiosk_id,
                "kind": certify.REQUEST_KIND,
                "time": created_at.isoformat(),
                "data": signed,
            }
            size = len(json.dumps(record, ensure_ascii=False).encode())
            if size > MAX_PACKAGE_BYTES:
                raise RequestRefused(f"package of {size} bytes, more than {MAX_PACKAGE_BYTES}")
            now = self.clock()
            sealed = self.key.encrypt(json.dumps(detail).encode(), aad=code.encode())
            with self.store.transaction() as conn:
                conn.execute(
                    "INSERT INTO cert_requests(code, visit, original, created_at, due_at, pages, "
                    "fee_vnd, payable_vnd, channel, detail, updated_at, pickup_hash) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        code,
                        visit,
                        n,
                        created_at.timestamp(),
                        self.due(created_at).timestamp(),
                        len(original.pages),
                        fee.fee_vnd,
                        fee.payable_vnd,
                        delivery["channel"],
                        sealed,
                        now,
                        _pickup_hash(code, pickup) if pickup else None,
                    ),
                )
                self.outbox.add_in(conn, "record", RECORD_TOPIC, record, message_id=f"cert-{code}")
            codes.append(code)
            logger.info(
                "certification request queued",
                extra={"code": code, "pages": len(original.pages), "bytes": size},
            )
        if self.on_queued is not None:
            self.on_queued()
        return codes

    def _check(self, package: dict[str, Any]) -> None:
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(package))
        if error is not None:
            where = "/".join(map(str, error.absolute_path)) or "(top)"
            raise RequestRefused(f"cert-request: {where}: {error.message[:200]}")

    # --- central's answers ------------------------------------------------------------

    def on_result(self, suffix: str, payload: bytes, properties: Any) -> None:
        """A message on <prefix>/<kiosk_id>/cert (the fleet client's network thread: quick)."""
        try:
            result = parse_cert_result(payload, self.kiosk_id)
        except Malformed as err:
            logger.warning("certification result ignored: %s", err)
            return
        self.apply(result)

    def apply(self, result: dict[str, Any]) -> RequestState | None:
        """Store one checked cert-result/1; None (and a log line) for a request not made here."""
        code = str(result["request_id"])  # the request code the kiosk gave
        status = result["status"]
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT status FROM cert_requests WHERE code = ?", (code,)
            ).fetchone()
            if row is None:
                logger.warning("certification result for an unknown request", extra={"id": code})
                return None
            if row[0] in ANSWERED:  # answered already: a repeat changes nothing
                if status != row[0]:
                    logger.warning(
                        "certification result after the answer",
                        extra={"code": code, "status": status, "was": row[0]},
                    )
                return self.get(code)
            pdf = None
            if status == "approved":
                data = base64.b64decode(result["pdf"])
                if hashlib.sha256(data).hexdigest() != result["sha256"]:
                    logger.warning(
                        "certified copy ignored: its hash does not match", extra={"code": code}
                    )
                    return None
                pdf = self.key.encrypt(data, aad=f"pdf:{code}".encode())
            wait_s = result.get("expected_wait_s")
            wait_min = None if wait_s is None else wait_s / 60
            conn.execute(
                "UPDATE cert_requests SET status = ?, position = ?, wait_min = ?, reason = ?, "
                "number = ?, book = ?, qr = ?, pdf = COALESCE(?, pdf), updated_at = ? "
                "WHERE code = ?",
                (
                    status,
                    result.get("position"),
                    wait_min,
                    result.get("reason_code"),
                    None if result.get("number") is None else str(result["number"]),
                    result.get("book"),
                    result.get("qr"),
                    pdf,
                    self.clock(),
                    code,
                ),
            )
        logger.info("certification result", extra={"code": code, "status": status})
        state = self.get(code)
        for listener in list(self.listeners):
            try:
                listener(state)
            except Exception:
                logger.exception("certification listener failed")
        return state

    # --- collecting at the kiosk ---------------------------------------------------------

    def collect(self, code: str, pickup: str) -> RequestState:
        """The request code and the slip's one-time code: the approved request, its one-time
        code spent (the caller prints the receipt and the copy). CollectRefused otherwise."""
        code = code.strip().upper()
        now = self.clock()
        with self._lock:
            tries, since = self._tries.get(code, (0, now))
            if tries >= PICKUP_TRIES and now - since < PICKUP_LOCK_S:
                raise CollectRefused("locked")
        rows = self.store.query(
            "SELECT status, pickup_hash FROM cert_requests WHERE code = ?", (code,)
        )
        expected = rows[0]["pickup_hash"] if rows else None
        given = _pickup_hash(code, pickup.strip())
        if expected is None or not secrets.compare_digest(expected, given):
            with self._lock:
                tries, since = self._tries.get(code, (0, now))
                self._tries[code] = (tries + 1, since if tries else now)
            logger.warning("collect refused: unknown code or wrong one-time code")
            raise CollectRefused("unknown")
        status = rows[0]["status"]
        if status != "approved":
            raise CollectRefused("waiting" if status in ("sent", "queued") else status)
        with self.store.transaction() as conn:
            spent = conn.execute(
                "UPDATE cert_requests SET pickup_hash = NULL WHERE code = ? AND pickup_hash = ?",
                (code, expected),
            ).rowcount
        if spent != 1:
            raise CollectRefused("unknown")
        with self._lock:
            self._tries.pop(code, None)
        logger.info("certified copy collected at the kiosk", extra={"code": code})
        return self.get(code)

    # --- reading ----------------------------------------------------------------------

    def get(self, code: str) -> RequestState:
        rows = self.store.query(f"SELECT {_COLUMNS} FROM cert_requests WHERE code = ?", (code,))
        if not rows:
            raise KeyError(code)
        return self._state(rows[0])

    def visit(self, visit: str) -> list[RequestState]:
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM cert_requests WHERE visit = ? ORDER BY original", (visit,)
        )
        return [self._state(r) for r in rows]

    def states(self, codes: Sequence[str]) -> list[RequestState]:
        return [self.get(code) for code in codes]

    def pdf(self, code: str) -> bytes | None:
        """The certified copy central sent (approved), unsealed; None before."""
        rows = self.store.query("SELECT pdf FROM cert_requests WHERE code = ?", (code,))
        if not rows or rows[0][0] is None:
            return None
        return self.key.decrypt(rows[0][0], aad=f"pdf:{code}".encode())

    def delivery(self, code: str) -> dict[str, str]:
        rows = self.store.query("SELECT detail FROM cert_requests WHERE code = ?", (code,))
        detail = json.loads(self.key.decrypt(rows[0][0], aad=code.encode()))
        return dict(detail["delivery"])

    def mark_printed(self, code: str) -> bool:
        """True the first time only: a receipt or slip is printed once per request."""
        with self.store.transaction() as conn:
            return (
                conn.execute(
                    "UPDATE cert_requests SET printed = 1 WHERE code = ? AND printed = 0", (code,)
                ).rowcount
                == 1
            )

    def _state(self, r: Any) -> RequestState:
        return RequestState(
            code=r["code"],
            original=r["original"],
            pages=r["pages"],
            created_at=dt.datetime.fromtimestamp(r["created_at"], self.zone),
            due_at=dt.datetime.fromtimestamp(r["due_at"], self.zone),
            payable_vnd=r["payable_vnd"],
            channel=r["channel"],
            status=r["status"],
            position=r["position"],
            wait_min=r["wait_min"],
            reason=r["reason"],
            number=r["number"],
            book=r["book"],
            qr=r["qr"],
            printed=bool(r["printed"]),
        )


_COLUMNS = (
    "code, original, pages, created_at, due_at, payable_vnd, channel, status, position, "
    "wait_min, reason, number, book, qr, printed"
)


def development_signer(folder: Path, kiosk_id: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """Simulation only (no fleet identity): a self-signed device key made once in folder.
    Central refuses its packages, as they are not issued by the fleet CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key_file, cert_file = folder / "device.key", folder / "device.crt"
    if not key_file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, kiosk_id)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = key_file.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        tmp.replace(key_file)
    return device_signer(key_file, cert_file)


def from_config(
    config: Any,
    *,
    store: Store,
    key: DataKey,
    outbox: Outbox,
    reserve: Callable[[], int],
    on_queued: Callable[[], None] | None = None,
    verify_qr: Callable[[str], Any] | None = None,
) -> CertRequests:
    """The daemon's certification requests: signed with [mqtt] key_file/cert_file, or, in
    simulation without them, a development device key under <state_dir>/certify."""
    m = config.mqtt
    if m.key_file and m.cert_file:
        key_file, cert_file = Path(m.key_file), Path(m.cert_file)

        def signer() -> tuple[ec.EllipticCurvePrivateKey, str]:
            return device_signer(key_file, cert_file)
    else:
        folder = Path(config.storage.state_dir) / "certify"
        kiosk_id = config.kiosk.id

        def signer() -> tuple[ec.EllipticCurvePrivateKey, str]:
            return development_signer(folder, kiosk_id)

    c = config.certify
    return CertRequests(
        store=store,
        key=key,
        outbox=outbox,
        kiosk_id=config.kiosk.id,
        reserve=reserve,
        signer=signer,
        timezone=config.kiosk.timezone,
        camera=config.camera.model_dump(mode="json"),
        check_original=page_checks(verify_qr),
        office=(c.office_open, c.office_close),
        holidays=frozenset(c.holidays),
        on_queued=on_queued,
    )


def a4printer_from_config(config: Any) -> Any:
    """The A4 printer port as configured ([certify.a4printer]), or None."""
    a4 = config.certify.a4printer
    if a4.type == "cups":
        from edge.adapters.a4printer_cups import CupsA4Printer

        return CupsA4Printer(a4.queue)
    if a4.type == "simulated":
        from edge.adapters.a4printer_sim import FolderA4Printer

        return FolderA4Printer(a4.folder or Path(config.storage.state_dir) / "a4printer")
    return None


def _citizen(citizen: dict[str, Any]) -> dict[str, Any]:
    """The requester as the package carries them: who, and how the kiosk knew (verified_by)."""
    out = {"id_number": citizen["id_number"], "name": citizen["name"]}
    if citizen.get("verified_by"):
        out["verified_by"] = citizen["verified_by"]
    return out
