"""Jinja filters of the console's pages: times in the fleet's zone, ages, JSON."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _when(ts: float | None) -> str:
    if not ts:
        return "—"
    return dt.datetime.fromtimestamp(ts, ZONE).strftime("%d/%m %H:%M:%S")


def _ago(ts: float | None) -> str:
    if not ts:
        return "—"
    s = max(0, int(time.time() - ts))
    if s < 60:
        return f"{s} giây"
    if s < 3600:
        return f"{s // 60} phút"
    if s < 86400:
        return f"{s // 3600} giờ {s % 3600 // 60} phút"
    return f"{s // 86400} ngày"


def _days_left(ts: float | None) -> str:
    if not ts:
        return "—"
    return f"{(ts - time.time()) / 86400:.0f} ngày"


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True)


def _vnd(amount: int | None) -> str:
    """12000 -> "12.000 đ" (Vietnamese thousands separator)."""
    if amount is None:
        return "—"
    return f"{int(amount):,} đ".replace(",", ".")


FILTERS = {
    "when": _when,
    "ago": _ago,
    "pretty": _pretty,
    "days_left": _days_left,
    "vnd": _vnd,
}
