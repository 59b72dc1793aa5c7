"""Queue figures for kiosks' ticket waits: what the counters report, per site and area,
published retained to every kiosk of the site as queue-stats/1 (docs/fleet.md, "Records of
citizen services")."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from protocol.errors import BadInput
from protocol.messages import iso_time

if TYPE_CHECKING:
    from fleet.console import Console

logger = logging.getLogger(__name__)
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
AREA = re.compile(r"^[A-Z]$")


def today() -> str:
    return dt.datetime.now(ZONE).date().isoformat()


def document(rows: list[dict[str, Any]], day: str) -> dict[str, Any]:
    """queue-stats/1 for one site: today's figures only (yesterday's would mislead)."""
    areas: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["day"] != day:
            continue
        figures: dict[str, Any] = {"serving": row["serving"]}
        if row["avg_service_s"] is not None:
            figures["avg_service_s"] = row["avg_service_s"]
        if row["counters_open"] is not None:
            figures["counters_open"] = row["counters_open"]
        if row["priority_serving"] is not None:
            figures["priority_serving"] = row["priority_serving"]
        areas[row["area"]] = figures
    return {"schema": "queue-stats/1", "day": day, "time": iso_time(), "areas": areas}


def report(
    console: Console,
    site: str,
    area: str,
    *,
    serving: int,
    avg_service_s: float | None,
    counters_open: int | None,
    by: str,
    priority_serving: int | None = None,
) -> int:
    """Store one area's figures and publish the site's document to each of its kiosks;
    returns how many kiosks it went to. `priority_serving`: the priority series' (B-UT...)
    last number called; None when the counters count it in `serving`."""
    area = area.strip().upper()
    if not AREA.match(area):
        raise BadInput("khu vực là một chữ cái A–Z / the area is one letter A-Z")
    if (
        serving < 0
        or (avg_service_s is not None and avg_service_s < 0)
        or (counters_open is not None and counters_open < 0)
        or (priority_serving is not None and priority_serving < 0)
    ):
        raise BadInput("số không được âm / figures cannot be negative")
    day = today()
    console.store.put_queue_stats(
        {
            "site": site,
            "area": area,
            "day": day,
            "serving": serving,
            "avg_service_s": avg_service_s,
            "counters_open": counters_open,
            "priority_serving": priority_serving,
            "updated_by": by,
            "updated_at": time.time(),
        }
    )
    return publish_site(console, site)


def publish_site(console: Console, site: str) -> int:
    body = document(console.store.queue_stats(site=site), today())
    prefix = console.config.mqtt.topic_prefix
    kiosk_ids = [k["kiosk_id"] for k in console.store.kiosks(site=site)]
    infos = [
        console.ingest.publish(f"{prefix}/{kiosk_id}/res/queue-stats", body, retain=True)
        for kiosk_id in kiosk_ids
    ]
    # Say only what the broker has taken (it keeps them retained for each kiosk).
    deadline = time.monotonic() + 5.0
    taken = 0
    for info in infos:
        if info is None:
            continue
        try:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        except (RuntimeError, ValueError):  # not connected now: not taken
            continue
        taken += info.is_published()
    logger.info("queue figures published", extra={"site": site, "kiosks": taken})
    return taken
