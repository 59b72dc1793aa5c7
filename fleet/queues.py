"""Queue figures for kiosks' ticket waits, per site and area: computed from the tickets the
kiosks report and the numbers the counters call, or typed as an override; published retained
to every kiosk of the site as queue-stats/1 (docs/fleet.md, "Records of citizen services";
docs/fleet-console.md, "Queue figures")."""

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
    from fleet.store import FleetStore

logger = logging.getLogger(__name__)
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
AREA = re.compile(r"^[A-Z]$")


def today() -> str:
    return dt.datetime.now(ZONE).date().isoformat()


def _override(row: dict[str, Any]) -> dict[str, Any]:
    figures: dict[str, Any] = {"serving": row["serving"]}
    if row["avg_service_s"] is not None:
        figures["avg_service_s"] = row["avg_service_s"]
    if row["counters_open"] is not None:
        figures["counters_open"] = row["counters_open"]
    if row["priority_serving"] is not None:
        figures["priority_serving"] = row["priority_serving"]
    return figures


def documents(
    store: FleetStore, site: str, kiosk_ids: list[str], day: str
) -> dict[str, dict[str, Any]]:
    """queue-stats/1 for each kiosk of a site: today's figures only (yesterday's would mislead).

    Per area, the newer of two sources: the tickets the kiosks reported and the counters called
    with "call next" (each kiosk gets the numbers called in its own numbering; the time between
    calls as `avg_service_s`, which already counts every counter open), or an override typed on
    the page, which holds until the next call.
    """
    overrides = {r["area"]: r for r in store.queue_stats(site=site) if r["day"] == day}
    figures = {f["area"]: f for f in store.ticket_figures(day, site=site)}
    serving = store.serving_by_kiosk(day, site)
    out: dict[str, dict[str, Any]] = {}
    for kiosk_id in kiosk_ids:
        areas: dict[str, Any] = {}
        for area in sorted(set(overrides) | set(figures)):
            override, fig = overrides.get(area), figures.get(area)
            last_call = fig["last_call"] if fig else None
            if override is not None and (last_call is None or override["updated_at"] >= last_call):
                areas[area] = _override(override)
            elif fig is not None and last_call is not None:
                called = serving.get(kiosk_id, {}).get(area, {})
                computed: dict[str, Any] = {
                    "serving": called.get("serving", 0),
                    # Central counts the priority series apart: always say where it is.
                    "priority_serving": called.get("priority_serving", 0),
                }
                if fig["call_interval_s"] is not None:
                    computed["avg_service_s"] = fig["call_interval_s"]
                areas[area] = computed
        out[kiosk_id] = {"schema": "queue-stats/1", "day": day, "time": iso_time(), "areas": areas}
    return out


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


def call_next(console: Console, site: str, area: str, *, by: str) -> tuple[str | None, int]:
    """A counter calls the next ticket of a site's area (priority series first): mark it,
    publish the site's figures. Returns (the number called or None, kiosks reached)."""
    area = area.strip().upper()
    if not AREA.match(area):
        raise BadInput("khu vực là một chữ cái A–Z / the area is one letter A-Z")
    called = console.store.call_next(today(), site, area, by=by, now=time.time())
    if called is None:
        return None, 0
    series = "UT" if called["series"] == "UT" else ""
    number = f"{area}-{series}{called['seq']:03d}"
    logger.info(
        "ticket called", extra={"site": site, "ticket": number, "kiosk": called["kiosk_id"]}
    )
    return number, publish_site(console, site)


def publish_site(console: Console, site: str) -> int:
    prefix = console.config.mqtt.topic_prefix
    kiosk_ids = [k["kiosk_id"] for k in console.store.kiosks(site=site)]
    bodies = documents(console.store, site, kiosk_ids, today())
    infos = [
        console.ingest.publish(f"{prefix}/{kiosk_id}/res/queue-stats", body, retain=True)
        for kiosk_id, body in bodies.items()
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
