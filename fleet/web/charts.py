"""Inline SVG line charts for the kiosk page (no script, no CDN)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def line_chart(
    points: Sequence[tuple[float, float | None]],
    *,
    start: float,
    end: float,
    title: str,
    unit: str,
    limit: float | None = None,
    y_min: float | None = 0.0,
    y_max: float | None = None,
    width: int = 640,
    height: int = 160,
) -> str:
    """An SVG chart of (time, value) over [start, end]; gaps where value is None."""
    left, right, top, bottom = 44, 8, 22, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, v in points if v is not None]
    lo = y_min if y_min is not None else (min(values) if values else 0.0)
    hi = max([*values, limit or lo, y_max or lo, lo + 1.0])
    if y_max is not None:
        hi = max(hi, y_max)
    span_t = max(end - start, 1.0)

    def x(t: float) -> float:
        return left + plot_w * (t - start) / span_t

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="14" class="chart-title">{escape(title)} ({escape(unit)})</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="chart-frame"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        tick = lo + (hi - lo) * frac
        parts.append(
            f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" text-anchor="end" class="chart-axis">'
            f"{tick:.0f}</text>"
        )
    for hours in range(0, 25, 6):
        t = start + span_t * hours / 24
        label = dt.datetime.fromtimestamp(t, ZONE).strftime("%H:%M")
        anchor = {0: "start", 24: "end"}.get(hours, "middle")
        parts.append(
            f'<text x="{x(t):.1f}" y="{height - 6}" text-anchor="{anchor}" class="chart-axis">'
            f"{label}</text>"
        )
    if limit is not None and lo <= limit <= hi:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(limit):.1f}" y2="{y(limit):.1f}" '
            'class="chart-limit"/>'
        )
    segment: list[str] = []
    segments: list[list[str]] = []
    for t, v in points:
        if v is None or t < start:
            if segment:
                segments.append(segment)
                segment = []
            continue
        segment.append(f"{x(t):.1f},{y(v):.1f}")
    if segment:
        segments.append(segment)
    for seg in segments:
        if len(seg) == 1:
            cx, cy = seg[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" class="chart-line"/>')
        else:
            parts.append(f'<polyline points="{" ".join(seg)}" class="chart-line"/>')
    if not values:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" '
            'class="chart-axis">Chưa có dữ liệu / no data yet</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
