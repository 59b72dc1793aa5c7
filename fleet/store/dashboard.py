"""The dashboard's queries at fleet scale: one page of kiosks filtered, sorted and counted in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from fleet.store.base import StoreBase
from fleet.store.schema import alerts, kiosks

STATES = ("online", "offline", "unknown", "alerting")
PAGE_SIZE = 50
_BIG = 1e18  # "no certificate expiry known": after every real one


def _open_alerts() -> Any:
    return (
        sa.select(alerts.c.kiosk_id, sa.func.count().label("n"))
        .where(alerts.c.cleared_at.is_(None))
        .group_by(alerts.c.kiosk_id)
        .subquery("open_alerts")
    )


def _sort_keys(name: str, alert_count: Any) -> list[tuple[Any, bool]]:
    """(expression, ascending) pairs, as the dashboard sorted its rows in Python before."""
    c = kiosks.c
    keys: dict[str, list[tuple[Any, bool]]] = {
        "kiosk": [],
        "site": [(c.site, True)],
        "state": [(sa.case((c.state == "offline", 0), else_=1), True), (c.state_since, True)],
        "paper": [(sa.case((c.paper == "out", 0), (c.paper == "near-end", 1), else_=2), True)],
        "temp": [(sa.func.coalesce(c.cpu_temp_c, -999.0), False)],
        "disk": [(sa.func.coalesce(c.disk_used_pct, -1.0), False)],
        "outbox": [(sa.func.coalesce(c.outbox_depth, 0), False)],
        "seen": [(c.last_seen, True)],
        "cert": [(sa.func.coalesce(c.cert_not_after, _BIG), True)],
        "version": [(c.version, True)],
        "alerts": [(alert_count, False)],
    }
    # The kiosk id last: a total order, so that page 2 starts where page 1 ended.
    return [*keys.get(name, keys["site"]), (c.kiosk_id, True)]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class DashboardPage:
    rows: list[dict[str, Any]]  # each with "alert_count"
    total: int  # kiosks matching the filters, over every page
    page: int
    pages: int
    per_page: int


class Dashboard(StoreBase):
    def dashboard_page(
        self,
        *,
        site: str | None = None,
        state: str | None = None,
        version: str | None = None,
        search: str | None = None,
        sort: str = "site",
        descending: bool = False,
        page: int = 1,
        per_page: int = PAGE_SIZE,
    ) -> DashboardPage:
        """One page of kiosks. `state` is online, offline, unknown or alerting (an open alert);
        `search` is a prefix of the kiosk id or of the site (case-insensitive)."""
        open_alerts = _open_alerts()
        alert_count = sa.func.coalesce(open_alerts.c.n, 0)
        joined = kiosks.outerjoin(open_alerts, open_alerts.c.kiosk_id == kiosks.c.kiosk_id)
        where: list[Any] = []
        if site:
            where.append(kiosks.c.site == site)
        if state == "alerting":
            where.append(open_alerts.c.n > 0)
        elif state:
            where.append(kiosks.c.state == state)
        if version:
            where.append(kiosks.c.version == version)
        if search and search.strip():
            prefix = _escape_like(search.strip().upper()) + "%"
            where.append(
                sa.or_(
                    sa.func.upper(kiosks.c.kiosk_id).like(prefix, escape="\\"),
                    sa.func.upper(kiosks.c.site).like(prefix, escape="\\"),
                )
            )
        columns = [c for c in kiosks.c if c.name != "telemetry"]
        order = [
            expr.asc() if ascending != descending else expr.desc()
            for expr, ascending in _sort_keys(sort, alert_count)
        ]
        per_page = max(1, min(per_page, 500))
        with self.engine.connect() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(joined).where(*where)
            ).scalar_one()
            pages = max(1, -(-total // per_page))
            page = max(1, min(page, pages))
            query = (
                sa.select(*columns, alert_count.label("alert_count"))
                .select_from(joined)
                .where(*where)
                .order_by(*order)
                .limit(per_page)
                .offset((page - 1) * per_page)
            )
            rows = [dict(r._mapping) for r in conn.execute(query)]
        return DashboardPage(rows=rows, total=total, page=page, pages=pages, per_page=per_page)

    def site_counts(self) -> list[dict[str, Any]]:
        """Per site: kiosks, online, offline, and kiosks with an open alert (one aggregate)."""
        open_alerts = _open_alerts()
        c = kiosks.c

        def count_if(cond: Any) -> Any:
            return sa.func.sum(sa.case((cond, 1), else_=0))

        query = (
            sa.select(
                c.site,
                sa.func.count().label("kiosks"),
                count_if(c.state == "online").label("online"),
                count_if(c.state == "offline").label("offline"),
                count_if(open_alerts.c.n > 0).label("alerting"),
            )
            .select_from(kiosks.outerjoin(open_alerts, open_alerts.c.kiosk_id == c.kiosk_id))
            .group_by(c.site)
            .order_by(c.site)
        )
        with self.engine.connect() as conn:
            return [
                {k: (int(v) if k != "site" else v) for k, v in r._mapping.items()}
                for r in conn.execute(query)
            ]

    def alerting_count(self) -> int:
        """Kiosks with at least one open alert."""
        query = sa.select(sa.func.count(sa.distinct(alerts.c.kiosk_id))).where(
            alerts.c.cleared_at.is_(None)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def versions(self) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(kiosks.c.version).distinct().order_by(kiosks.c.version))
            return [r.version for r in rows if r.version]

    def open_alerts_of(self, kiosk_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The open alerts of these kiosks (one page's), by kiosk."""
        if not kiosk_ids:
            return {}
        query = (
            sa.select(alerts)
            .where(alerts.c.cleared_at.is_(None), alerts.c.kiosk_id.in_(kiosk_ids))
            .order_by(alerts.c.raised_at.desc())
        )
        out: dict[str, list[dict[str, Any]]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(query):
                out.setdefault(r.kiosk_id, []).append(dict(r._mapping))
        return out

    def open_alert_total(self) -> int:
        query = sa.select(sa.func.count()).where(alerts.c.cleared_at.is_(None))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()
