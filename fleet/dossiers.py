"""Dossier status for kiosks: the dossier table, its sample rows, and the MQTT responder."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fleet.store import FleetStore
from protocol.errors import BadInput
from protocol.files import secret_key
from protocol.post import s10_check_digit, s10_valid

logger = logging.getLogger(__name__)
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")

# docs/fleet.md, "Dossier status": the statuses a dossier-status-response/1 may carry.
STATUSES = {
    "received": "Đã tiếp nhận",
    "in_process": "Đang giải quyết",
    "additional_required": "Cần bổ sung hồ sơ",
    "ready": "Có kết quả, chờ nhận",
    "returned": "Đã trả kết quả",
    "rejected": "Từ chối giải quyết",
    "withdrawn": "Đã rút hồ sơ",
}
NEEDS_REASON = ("rejected", "additional_required")

# The receipt code of the national / provincial dossier systems (docs/fleet.md, "Dossier codes
# the kiosk accepts"): agency identifier, yyMMdd, a 4-6 digit sequence.
DOSSIER_CODE = re.compile(r"^[0-9A-Z]{1,6}(\.[0-9A-Z]{1,6}){0,5}-[0-9]{6}-[0-9]{4,6}$")


def _t(day: str, hm: str = "08:00") -> str:
    return dt.datetime.fromisoformat(f"{day}T{hm}:00").replace(tzinfo=ZONE).isoformat()


def sample_dossiers() -> dict[str, dict[str, Any]]:
    """Demo rows: no personal data, only the procedure and its steps."""
    return {
        "000.00.17.H26-261120-0001": {
            "procedure": "Đăng ký khai sinh",
            "agency": "UBND phường Tây Hồ",
            "status": "ready",
            "received_at": _t("2026-11-20", "08:40"),
            "due_at": _t("2026-11-21", "17:00"),
            "completed_at": _t("2026-11-21", "10:15"),
            "pickup": "Bộ phận Một cửa, UBND phường Tây Hồ, quầy số 2",
            "timeline": [
                {
                    "at": _t("2026-11-20", "08:40"),
                    "status": "received",
                    "note": "Tiếp nhận tại kiosk",
                },
                {
                    "at": _t("2026-11-20", "14:00"),
                    "status": "in_process",
                    "note": "Công chức tư pháp - hộ tịch",
                },
                {
                    "at": _t("2026-11-21", "10:15"),
                    "status": "ready",
                    "note": "Đã ký giấy khai sinh",
                },
            ],
        },
        "000.00.17.H26-261118-0042": {
            "procedure": "Chứng thực bản sao từ bản chính",
            "agency": "UBND phường Tây Hồ",
            "status": "in_process",
            "received_at": _t("2026-11-18", "09:05"),
            "due_at": _t("2026-11-19", "17:00"),
            "timeline": [
                {"at": _t("2026-11-18", "09:05"), "status": "received"},
                {"at": _t("2026-11-18", "10:30"), "status": "in_process"},
            ],
        },
        "H26.22-261115-0015": {
            "procedure": "Cấp giấy xác nhận tình trạng hôn nhân",
            "agency": "UBND phường Quảng An",
            "status": "additional_required",
            "received_at": _t("2026-11-15", "15:20"),
            "due_at": _t("2026-11-20", "17:00"),
            "reason": "Bổ sung bản sao giấy tờ chứng minh nơi cư trú.",
            "timeline": [
                {"at": _t("2026-11-15", "15:20"), "status": "received"},
                {
                    "at": _t("2026-11-17", "09:00"),
                    "status": "additional_required",
                    "note": "Thiếu giấy tờ chứng minh nơi cư trú",
                },
            ],
        },
        "H26.22-261110-0003": {
            "procedure": "Đăng ký kết hôn",
            "agency": "UBND phường Quảng An",
            "status": "rejected",
            "received_at": _t("2026-11-10", "10:00"),
            "due_at": _t("2026-11-13", "17:00"),
            "completed_at": _t("2026-11-12", "16:00"),
            "reason": "Hồ sơ chưa đủ điều kiện đăng ký kết hôn theo Điều 8 Luật Hôn nhân và gia đình.",
            "timeline": [
                {"at": _t("2026-11-10", "10:00"), "status": "received"},
                {"at": _t("2026-11-12", "16:00"), "status": "rejected"},
            ],
        },
        "000.00.17.H26-261122-0107": {
            "procedure": "Đăng ký thường trú",
            "agency": "Công an phường Tây Hồ",
            "status": "received",
            "received_at": _t("2026-11-22", "08:10"),
            "due_at": _t("2026-11-28", "17:00"),
            "timeline": [{"at": _t("2026-11-22", "08:10"), "status": "received"}],
        },
        "000.00.17.H26-261101-0009": {
            "procedure": "Cấp bản sao trích lục hộ tịch",
            "agency": "UBND phường Tây Hồ",
            "status": "returned",
            "received_at": _t("2026-11-01", "13:30"),
            "due_at": _t("2026-11-02", "17:00"),
            "completed_at": _t("2026-11-03", "15:00"),
            "timeline": [
                {"at": _t("2026-11-01", "13:30"), "status": "received"},
                {"at": _t("2026-11-03", "09:00"), "status": "ready", "note": "Trễ 1 ngày"},
                {"at": _t("2026-11-03", "15:00"), "status": "returned", "note": "Gửi qua bưu điện"},
            ],
        },
    }


def validate_dossier(code: str, data: Any) -> dict[str, Any]:
    """A dossier row as an operator or an import gives it: the answer's `dossier` member
    without on_time (computed when asked). No personal data belongs here."""
    if not DOSSIER_CODE.match(code):
        raise BadInput(f"dossier code {code!r} does not look like one (e.g. H26.22-241123-0015)")
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        raise BadInput(f"status must be one of {', '.join(STATUSES)}")
    if data["status"] in NEEDS_REASON and not data.get("reason"):
        raise BadInput(f"a dossier {data['status']} needs a reason")
    if not isinstance(data.get("received_at"), str):
        raise BadInput("received_at (ISO 8601 with an offset) is required")
    allowed = {
        "procedure",
        "agency",
        "status",
        "received_at",
        "due_at",
        "completed_at",
        "reason",
        "pickup",
        "timeline",
    }  # owner_tag (set_owner) and shipment (send_shipment) are central's own, not input
    extra = set(data) - allowed
    if extra:
        raise BadInput(f"unknown fields: {', '.join(sorted(extra))}")
    return data


KEPT_ON_PUT = ("owner_tag", "shipment")


def put_keeping_own(store: FleetStore, code: str, data: dict[str, Any]) -> None:
    """Replace a dossier's row from the dossier system, keeping central's own members (the
    owner tag, the shipment) that an import does not carry."""
    row = store.dossier(code)
    kept = {k: row["data"][k] for k in KEPT_ON_PUT if row and k in row["data"]}
    store.put_dossier(code, {**data, **kept})


def seed_samples(store: FleetStore, *, force: bool = False) -> int:
    """Insert the sample dossiers if the table is empty (or always with force)."""
    if store.dossiers() and not force:
        return 0
    samples = sample_dossiers()
    for code, data in samples.items():
        store.put_dossier(code, validate_dossier(code, data))
    return len(samples)


def on_time(data: dict[str, Any], now: float) -> bool | None:
    """true: finished by due_at, or running and due_at not passed; false: late; null: no due
    date (docs/fleet.md, 'The answer's fields')."""
    due = data.get("due_at")
    if not isinstance(due, str):
        return None
    due_ts = dt.datetime.fromisoformat(due).timestamp()
    done = data.get("completed_at")
    if isinstance(done, str):
        return dt.datetime.fromisoformat(done).timestamp() <= due_ts
    return now <= due_ts


# --- the dossier's owner, kept as a keyed hash (docs/fleet.md, "Whose dossier it is") ---------

OWNER_PROOF_SALT = "kiosk-edge/dossier-owner/1|"


def owner_proof(code: str, id_number: str) -> str:
    """What a kiosk sends for the card it read: scrypt(ID number, salt = the dossier code).

    The same function as edge.services.dossier.owner_proof (the protocol fixes it); slow and
    salted per dossier, so a proof seen on the wire is costly to reverse and worth nothing
    for another dossier."""
    return hashlib.scrypt(
        id_number.encode(),
        salt=(OWNER_PROOF_SALT + code).encode(),
        n=2**14,
        r=8,
        p=1,
        dklen=32,
    ).hex()


def owner_key(path: Path) -> bytes:
    """Central's own secret for the owner tags (made on first use, never leaves central)."""
    return secret_key(path)


def owner_tag(key: bytes, proof: str) -> str:
    """What central stores: HMAC-SHA256(central's key, the proof). Without the key a stolen
    table does not even allow guessing numbers offline."""
    return hmac.new(key, bytes.fromhex(proof), hashlib.sha256).hexdigest()


def set_owner(store: FleetStore, key: bytes, code: str, id_number: str) -> None:
    """Record whose dossier it is (from the dossier system's import): only the tag is kept."""
    if not re.fullmatch(r"[0-9]{12}", id_number):
        raise BadInput("an ID number has 12 digits")
    row = store.dossier(code)
    if row is None:
        raise BadInput(f"no dossier {code!r}")
    data = {**row["data"], "owner_tag": owner_tag(key, owner_proof(code, id_number))}
    store.put_dossier(code, data)


def owner_answer(data: dict[str, Any], key: bytes | None, proof: str | None) -> str | None:
    """The answer's `owner`: "match", "mismatch", "unknown" (no owner recorded), or None when
    the kiosk did not ask."""
    if proof is None:
        return None
    tag = data.get("owner_tag")
    if key is None or not isinstance(tag, str):
        return "unknown"
    return "match" if hmac.compare_digest(owner_tag(key, proof), tag) else "mismatch"


def dossier_answer(
    store: FleetStore,
    code: str,
    *,
    now: float | None = None,
    owner_proof: str | None = None,
    key: bytes | None = None,
) -> dict[str, Any]:
    """The `result` (and `dossier`, and `owner` when a proof was sent) members of a
    dossier-status-response/1 for one code."""
    now = time.time() if now is None else now
    if not DOSSIER_CODE.match(code):
        return {"result": "not_found", "message": "not a dossier code"}
    row = store.dossier(code)
    if row is None:
        return {"result": "not_found"}
    data = row["data"]
    dossier: dict[str, Any] = {
        "status": data["status"],
        "received_at": data["received_at"],
        "due_at": data.get("due_at"),
        "completed_at": data.get("completed_at"),
        "on_time": on_time(data, now),
        "reason": data.get("reason"),
        "pickup": data.get("pickup"),
        "timeline": [
            {k: v for k, v in step.items() if k in ("at", "status", "note")}
            for step in data.get("timeline", [])
        ][-50:],
    }
    for name in ("procedure", "agency"):
        if isinstance(data.get(name), str):
            dossier[name] = data[name]
    if isinstance(data.get("shipment"), dict):
        dossier["shipment"] = data["shipment"]
    answer: dict[str, Any] = {"result": "found", "dossier": dossier}
    owner = owner_answer(data, key, owner_proof)
    if owner is not None:
        answer["owner"] = owner
    return answer


# --- results by post: the Vietnam Post shipment (docs/fleet.md, "Post shipments") -------------


def shipment_message(
    request_id: str, reference: str, status: str, *, at: float | None = None
) -> dict[str, Any]:
    """A post-shipment/1 for the kiosk that took post request `request_id`."""
    when = dt.datetime.fromtimestamp(time.time() if at is None else at, dt.UTC)
    return {
        "schema": "post-shipment/1",
        "request_id": request_id,
        "carrier": "vnpost",
        "reference": reference,
        "status": status,
        "at": when.isoformat(),
    }


def send_shipment(
    console: Any,
    kiosk_id: str,
    request_id: str,
    reference: str,
    status: str = "accepted",
    *,
    dossier_code: str | None = None,
    at: float | None = None,
) -> dict[str, Any]:
    """Tell the kiosk (res/post-shipment, QoS 1) and, for a dossier, keep it on the dossier so
    its status answer shows it. Raises BadInput for a message that breaks the contract."""
    from protocol.schemas import validator

    check_reference(reference)
    message = shipment_message(request_id, reference, status, at=at)
    errors = list(validator("post-shipment").iter_errors(message))
    if errors:
        raise BadInput(f"post shipment: {errors[0].message[:200]}")
    if dossier_code is not None:
        row = console.store.dossier(dossier_code)
        if row is None:
            raise BadInput(f"no dossier {dossier_code!r}")
        shipment = {"carrier": "vnpost", "reference": reference, "status": status}
        console.store.put_dossier(dossier_code, {**row["data"], "shipment": shipment})
    prefix = console.config.mqtt.topic_prefix
    console.ingest.publish(f"{prefix}/{kiosk_id}/res/post-shipment", message, qos=1)
    logger.info("post shipment sent", extra={"kiosk": kiosk_id, "status": status})
    return message


SHIPMENT_STATES = ("accepted", "in_transit", "delivered", "returned")
SHIPMENT_RESEND_S = 7 * 86400  # a line recorded and not sent within this is no longer sent


def check_reference(reference: str) -> None:
    """BadInput, saying what is wrong, unless `reference` is a UPU S10 identifier with its
    check digit right (docs/fleet.md, "Post shipments")."""
    if s10_valid(reference):
        return
    if re.fullmatch(r"[A-Z]{2}[0-9]{9}[A-Z]{2}", reference):
        raise BadInput(
            f"mã bưu gửi {reference} sai chữ số kiểm tra (chữ số thứ 11 phải là "
            f"{s10_check_digit(reference[2:10])}): hãy đọc lại mã trên bưu gửi / "
            "wrong check digit: read the reference again"
        )
    raise BadInput(
        f"mã bưu gửi {reference[:20]!r} không đúng dạng S10: 2 chữ cái, 9 chữ số, 2 chữ cái, "
        "ví dụ EE473124829VN / not an S10 reference (2 letters, 9 digits, 2 letters)"
    )


def ship(
    store: FleetStore,
    request_code: str,
    reference: str,
    status: str = "accepted",
    *,
    by: str,
    by_name: str = "",
    now: float | None = None,
) -> dict[str, Any]:
    """Record that Vietnam Post took (or moved) the result of post request `request_code` (its
    id, or the 8 characters on the citizen's confirmation): an audit line with who did it,
    which the running console's ShipmentSender publishes to the kiosk that took the request.
    Checks the reference's S10 check digit and that central received the request. Returns the
    line's detail with the request id."""
    reference = reference.strip().upper()
    if status not in SHIPMENT_STATES:
        raise BadInput(f"status must be one of {', '.join(SHIPMENT_STATES)}")
    check_reference(reference)
    row = store.post_request(request_code)
    if row is None:
        raise BadInput(
            f"không có yêu cầu gửi bưu điện nào mang mã {request_code.strip()[:40]!r} / "
            "no post request with that id (the 32-character id, or the 8 on the confirmation)"
        )
    subject = row["data"].get("subject") or {}
    detail = {
        "kiosk": row["kiosk_id"],
        "reference": reference,
        "status": status,
        "dossier": subject.get("code") if subject.get("type") == "dossier" else None,
        "by_name": by_name,
    }
    request_id = row["data"]["request_id"]
    store.audit(
        by,
        "post_shipment",
        at=time.time() if now is None else now,
        request_id=request_id,
        detail=detail,
    )
    logger.info(
        "post shipment recorded", extra={"operator": by, "kiosk": detail["kiosk"], "status": status}
    )
    return {"request_id": request_id, **detail}


def pending_shipments(store: FleetStore, *, now: float | None = None) -> list[dict[str, Any]]:
    """The recorded shipments not yet sent, oldest first."""
    now = time.time() if now is None else now
    log = store.shipment_log(since=now - SHIPMENT_RESEND_S, limit=5000)
    sent = {line["detail"].get("row") for line in log if line["action"] == "post_shipment_sent"}
    return [line for line in reversed(log) if line["action"] == "post_shipment"
            and line["row"] not in sent]  # fmt: skip


class ShipmentSender:
    """The console's part: publishes each recorded shipment (web form or CLI, the same store)
    once connected, and notes it sent. Kicked by the web form; looks every `interval_s`."""

    def __init__(self, interval_s: float = 2.0) -> None:
        self.interval_s = interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    role = "shipments"  # one publisher of the pending shipments (fleet/leader.py)

    def attach(self, console: Any) -> None:
        self.console = console
        console.shipments = self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fleet-shipments", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def kick(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.send_pending()
            except Exception:
                logger.exception("post shipments not sent")

    def send_pending(self) -> int:
        """Publish what is pending while the broker is there; the number sent."""
        store = self.console.store
        n = 0
        for line in pending_shipments(store):
            if not self.console.ingest.connected:
                break
            d = line["detail"]
            dossier = d.get("dossier")
            if dossier and store.dossier(dossier) is None:
                dossier = None  # a dossier central does not hold: the kiosk is still told
            outcome: dict[str, Any] = {"row": line["row"]}
            try:
                send_shipment(
                    self.console,
                    d["kiosk"],
                    line["request_id"],
                    d["reference"],
                    d["status"],
                    dossier_code=dossier,
                    at=line["at"],
                )
                n += 1
            except BadInput as err:  # recorded by an older version: never sendable
                outcome["error"] = str(err)[:200]
            store.audit("central", "post_shipment_sent", at=time.time(),
                        request_id=line["request_id"], detail=outcome)  # fmt: skip
        return n
