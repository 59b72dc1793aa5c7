"""Dossier status for kiosks: the dossier table, its sample rows, and the MQTT responder."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from typing import Any
from zoneinfo import ZoneInfo

from edge.errors import BadInput
from edge.fleet.messages import iso_time
from fleet.store import FleetStore

logger = logging.getLogger(__name__)
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")

STATUSES = {
    "received": "Đã tiếp nhận",
    "processing": "Đang giải quyết",
    "supplement_required": "Cần bổ sung hồ sơ",
    "completed": "Đã có kết quả",
    "returned": "Đã trả kết quả",
    "rejected": "Từ chối giải quyết",
    "withdrawn": "Đã rút hồ sơ",
}

# A dossier code as the public-service systems print it: agency code, yymmdd, a number,
# e.g. 000.00.17.H26-241123-0001 (national portal) or H26.22-241123-0015 (provincial).
DOSSIER_CODE = re.compile(r"^[0-9A-Z][0-9A-Z.]{1,31}-[0-9]{6}-[0-9]{4,6}$")


def _t(day: str, hm: str = "08:00") -> str:
    return dt.datetime.fromisoformat(f"{day}T{hm}:00").replace(tzinfo=ZONE).isoformat()


def sample_dossiers() -> dict[str, dict[str, Any]]:
    """Demo rows: no personal data, only the procedure and the steps."""
    return {
        "000.00.17.H26-261120-0001": {
            "procedure": "Đăng ký khai sinh",
            "agency": "UBND phường Tây Hồ",
            "status": "completed",
            "received_at": _t("2026-11-20", "08:40"),
            "due_at": _t("2026-11-21", "17:00"),
            "completed_at": _t("2026-11-21", "10:15"),
            "timeline": [
                {
                    "at": _t("2026-11-20", "08:40"),
                    "status": "received",
                    "note": "Tiếp nhận tại kiosk",
                },
                {
                    "at": _t("2026-11-20", "14:00"),
                    "status": "processing",
                    "note": "Chuyển cán bộ hộ tịch",
                },
                {
                    "at": _t("2026-11-21", "10:15"),
                    "status": "completed",
                    "note": "Đã ký giấy khai sinh",
                },
            ],
        },
        "000.00.17.H26-261118-0042": {
            "procedure": "Chứng thực bản sao từ bản chính",
            "agency": "UBND phường Tây Hồ",
            "status": "processing",
            "received_at": _t("2026-11-18", "09:05"),
            "due_at": _t("2026-11-19", "17:00"),
            "timeline": [
                {"at": _t("2026-11-18", "09:05"), "status": "received", "note": ""},
                {"at": _t("2026-11-18", "10:30"), "status": "processing", "note": ""},
            ],
        },
        "H26.22-261115-0015": {
            "procedure": "Cấp giấy xác nhận tình trạng hôn nhân",
            "agency": "UBND phường Quảng An",
            "status": "supplement_required",
            "received_at": _t("2026-11-15", "15:20"),
            "due_at": _t("2026-11-20", "17:00"),
            "supplement": "Bổ sung bản sao giấy tờ chứng minh nơi cư trú",
            "timeline": [
                {"at": _t("2026-11-15", "15:20"), "status": "received", "note": ""},
                {
                    "at": _t("2026-11-17", "09:00"),
                    "status": "supplement_required",
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
            "rejection_reason": "Hồ sơ không đủ điều kiện theo Điều 8 Luật Hôn nhân và gia đình",
            "timeline": [
                {"at": _t("2026-11-10", "10:00"), "status": "received", "note": ""},
                {
                    "at": _t("2026-11-12", "16:00"),
                    "status": "rejected",
                    "note": "Không đủ điều kiện",
                },
            ],
        },
        "000.00.17.H26-261122-0107": {
            "procedure": "Đăng ký thường trú",
            "agency": "Công an phường Tây Hồ",
            "status": "received",
            "received_at": _t("2026-11-22", "08:10"),
            "due_at": _t("2026-11-28", "17:00"),
            "timeline": [{"at": _t("2026-11-22", "08:10"), "status": "received", "note": ""}],
        },
        "000.00.17.H26-261101-0009": {
            "procedure": "Cấp bản sao trích lục hộ tịch",
            "agency": "UBND phường Tây Hồ",
            "status": "returned",
            "received_at": _t("2026-11-01", "13:30"),
            "due_at": _t("2026-11-02", "17:00"),
            "completed_at": _t("2026-11-03", "09:00"),
            "timeline": [
                {"at": _t("2026-11-01", "13:30"), "status": "received", "note": ""},
                {"at": _t("2026-11-03", "09:00"), "status": "completed", "note": "Trễ 1 ngày"},
                {"at": _t("2026-11-03", "15:00"), "status": "returned", "note": "Gửi qua bưu điện"},
            ],
        },
    }


def validate_dossier(code: str, data: Any) -> dict[str, Any]:
    if not DOSSIER_CODE.match(code):
        raise BadInput(f"dossier code {code!r} does not look like one (e.g. H26.22-241123-0015)")
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        raise BadInput(f"status must be one of {', '.join(STATUSES)}")
    return data


def seed_samples(store: FleetStore, *, force: bool = False) -> int:
    """Insert the sample dossiers if the table is empty (or always with force)."""
    if store.dossiers() and not force:
        return 0
    samples = sample_dossiers()
    for code, data in samples.items():
        store.put_dossier(code, validate_dossier(code, data))
    return len(samples)


def on_time(data: dict[str, Any], now: float) -> bool | None:
    """True/False when a due date is known: finished (or still open) by the due date."""
    due = data.get("due_at")
    if not isinstance(due, str):
        return None
    due_ts = dt.datetime.fromisoformat(due).timestamp()
    done = data.get("completed_at")
    if isinstance(done, str):
        return dt.datetime.fromisoformat(done).timestamp() <= due_ts
    if data.get("status") in ("rejected", "withdrawn"):
        return None
    return now <= due_ts


def status_answer(store: FleetStore, code: str, *, now: float | None = None) -> dict[str, Any]:
    """The answer body for one code: found with its status, or not found."""
    now = time.time() if now is None else now
    normal = code.strip().upper()
    if not DOSSIER_CODE.match(normal):
        return {"found": False, "reason": "invalid_code"}
    row = store.dossier(normal)
    if row is None:
        return {"found": False, "reason": "not_found"}
    data = dict(row["data"])
    return {
        "found": True,
        "code": normal,
        "status": data["status"],
        "status_text": STATUSES[data["status"]],
        "procedure": data.get("procedure", ""),
        "agency": data.get("agency", ""),
        "received_at": data.get("received_at"),
        "due_at": data.get("due_at"),
        "completed_at": data.get("completed_at"),
        "on_time": on_time(data, now),
        "rejection_reason": data.get("rejection_reason"),
        "supplement": data.get("supplement"),
        "timeline": data.get("timeline", []),
        "updated_at": iso_time(row["updated_at"]),
    }
