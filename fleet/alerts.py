"""Alert rules over the latest state of every kiosk; open alerts kept in the store; a webhook."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from fleet.config import AlertsSection
from fleet.store import FleetStore

logger = logging.getLogger(__name__)

FACE_FAILURES = "identity.face_failures"

# rule -> (severity, what the operator reads: Vietnamese first, English second)
RULES: dict[str, tuple[str, str]] = {
    "offline": ("error", "Mất kết nối {minutes} phút / offline for {minutes} min"),
    "silent": (
        "warning",
        "Không gửi tin {minutes} phút dù đang kết nối / no message for {minutes} min while online",
    ),
    "paper_out": ("error", "Hết giấy in / printer out of paper"),
    "paper_near_end": ("warning", "Sắp hết giấy in / paper near end"),
    "camera_lost": ("error", "Mất camera / camera lost"),
    "tamper": ("critical", "Cửa kiosk đang mở / kiosk door open (tamper)"),
    "cpu_temp": ("warning", "Nhiệt độ CPU {value:.0f} °C / CPU temperature {value:.0f} °C"),
    "disk": ("warning", "Ổ đĩa đầy {value:.0f} % / disk {value:.0f} % full"),
    "outbox_growing": (
        "warning",
        "Hàng đợi gửi tăng liên tục {minutes} phút ({value:.0f}) / outbox growing for "
        "{minutes} min ({value:.0f})",
    ),
    "cert_expiring": (
        "warning",
        "Chứng thư số hết hạn sau {value:.0f} ngày / certificate expires in {value:.0f} days",
    ),
    "face_failures": (
        "warning",
        "Nhiều lần so khớp khuôn mặt thất bại ({value:.0f}) / repeated face-match failures "
        "({value:.0f})",
    ),
}

# Short labels for the dashboard's tags.
LABELS = {
    "offline": "Mất kết nối",
    "silent": "Im lặng",
    "paper_out": "Hết giấy",
    "paper_near_end": "Sắp hết giấy",
    "camera_lost": "Mất camera",
    "tamper": "Mở cửa",
    "cpu_temp": "Nóng CPU",
    "disk": "Đầy đĩa",
    "outbox_growing": "Tồn hàng đợi",
    "cert_expiring": "Chứng thư sắp hết hạn",
    "face_failures": "Lỗi khuôn mặt",
}

Wanted = dict[tuple[str, str], tuple[str, str]]


def _want(wanted: Wanted, kiosk_id: str, rule: str, **values: Any) -> None:
    severity, text = RULES[rule]
    wanted[(kiosk_id, rule)] = (severity, text.format(**values))


class AlertEngine:
    """Evaluates the rules every `interval_s` (and soon after new data); raises and clears."""

    def __init__(
        self,
        store: FleetStore,
        config: AlertsSection,
        *,
        clock: Callable[[], float] = time.time,
        notify: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.webhook = (
            Webhook(config.webhook_url, config.webhook_timeout_s) if (config.webhook_url) else None
        )
        self.notify = notify
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wanted(self, now: float) -> Wanted:
        c = self.config
        wanted: Wanted = {}
        growing_candidates: list[str] = []
        for k in self.store.kiosks():
            kid = k["kiosk_id"]
            if c.offline_after_s and k["state"] == "offline":
                gone = now - k["state_since"]
                if gone >= c.offline_after_s:
                    _want(wanted, kid, "offline", minutes=max(1, round(gone / 60)))
            if c.silent_after_s and k["state"] == "online":
                quiet = now - k["last_seen"]
                if quiet >= c.silent_after_s:
                    _want(wanted, kid, "silent", minutes=max(1, round(quiet / 60)))
            if c.paper and k["paper"] == "out":
                _want(wanted, kid, "paper_out")
            elif c.paper and k["paper"] == "near-end":
                _want(wanted, kid, "paper_near_end")
            if c.camera and k["camera_ok"] is False:
                _want(wanted, kid, "camera_lost")
            if c.tamper and k["door"] == "open":
                _want(wanted, kid, "tamper")
            if c.cpu_temp_c and k["cpu_temp_c"] is not None and k["cpu_temp_c"] > c.cpu_temp_c:
                _want(wanted, kid, "cpu_temp", value=k["cpu_temp_c"])
            if (
                c.disk_used_pct
                and k["disk_used_pct"] is not None
                and k["disk_used_pct"] > c.disk_used_pct
            ):
                _want(wanted, kid, "disk", value=k["disk_used_pct"])
            if c.cert_expiry_days and k["cert_not_after"]:
                days = (k["cert_not_after"] - now) / 86400
                if days < c.cert_expiry_days:
                    _want(wanted, kid, "cert_expiring", value=max(days, 0))
            if c.outbox_growing_s and (k["outbox_depth"] or 0) > 0:
                growing_candidates.append(kid)
        for kid in growing_candidates:
            depth = self._growing_depth(kid, now)
            if depth is not None:
                _want(
                    wanted,
                    kid,
                    "outbox_growing",
                    minutes=round(c.outbox_growing_s / 60),
                    value=depth,
                )
        if c.face_failures:
            since = now - c.face_failures_window_s
            for kid, n in self.store.event_counts(FACE_FAILURES, since).items():
                if n >= c.face_failures:
                    _want(wanted, kid, "face_failures", value=n)
        return wanted

    def _growing_depth(self, kiosk_id: str, now: float) -> int | None:
        """The depth now if it rose, never falling, over the whole window; else None.

        The baseline is the last sample at or before the window's start, so a kiosk needs
        telemetry from before the window (a fresh kiosk never alerts on its first samples).
        """
        window = self.config.outbox_growing_s
        series = self.store.telemetry_series(kiosk_id, since=now - 2 * window)
        before = [s for s in series if s["at"] <= now - window]
        if not before:
            return None
        baseline = before[-1]
        depths = [baseline["outbox_depth"] or 0] + [
            s["outbox_depth"] or 0 for s in series if s["at"] > baseline["at"]
        ]
        if len(depths) < 2 or depths[-1] <= depths[0]:
            return None
        if any(b < a for a, b in itertools.pairwise(depths)):
            return None
        return depths[-1]

    def evaluate(self, now: float | None = None) -> tuple[list[dict], list[dict]]:
        now = self.clock() if now is None else now
        with self._lock:
            raised, cleared = self.store.sync_alerts(self.wanted(now), now=now)
        for row in raised:
            logger.warning("alert raised", extra={"kiosk": row["kiosk_id"], "rule": row["rule"]})
            self._tell("raised", row)
        for row in cleared:
            logger.info("alert cleared", extra={"kiosk": row["kiosk_id"], "rule": row["rule"]})
            self._tell("cleared", row)
        return raised, cleared

    def _tell(self, what: str, row: dict[str, Any]) -> None:
        document = {
            "schema": "fleet-alert/1",
            "event": what,
            "kiosk_id": row["kiosk_id"],
            "rule": row["rule"],
            "severity": row["severity"],
            "message": row["message"],
            "raised_at": row["raised_at"],
            "cleared_at": row.get("cleared_at"),
        }
        if self.webhook is not None:
            self.webhook.send(document)
        if self.notify is not None:
            self.notify(what, document)

    # --- the thread -----------------------------------------------------------------------

    def poke(self, *_: Any) -> None:
        """New data arrived: evaluate soon (used as an ingest batch listener)."""
        self._poke.set()

    def start(self) -> None:
        if self.webhook is not None:
            self.webhook.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fleet-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._poke.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.webhook is not None:
            self.webhook.stop(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.evaluate()
            except Exception:
                logger.exception("alert evaluation failed")
            self._poke.wait(self.config.interval_s)
            if self._poke.is_set() and not self._stop.is_set():
                self._stop.wait(0.2)  # gather a burst of batches into one evaluation
            self._poke.clear()


class Webhook:
    """POSTs alert documents as JSON, in order, from its own thread; a few bounded retries."""

    def __init__(self, url: str, timeout_s: float, *, retries: int = 3) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.sent = 0
        self.failed = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=10000)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fleet-webhook", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def send(self, document: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(document)
        except queue.Full:
            self.failed += 1
            logger.error("webhook queue full, alert notice dropped")

    def _run(self) -> None:
        while True:
            document = self._queue.get()
            if document is None:
                return
            body = json.dumps(document, ensure_ascii=False).encode("utf-8")
            for attempt in range(self.retries):
                try:
                    request = urllib.request.Request(
                        self.url,
                        data=body,
                        headers={"Content-Type": "application/json; charset=utf-8"},
                        method="POST",
                    )
                    with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                        response.read()
                    self.sent += 1
                    break
                except (urllib.error.URLError, OSError) as err:
                    logger.warning(
                        "webhook failed", extra={"attempt": attempt + 1, "error": str(err)}
                    )
                    if attempt + 1 < self.retries and self._stop.wait(min(2**attempt, 10)):
                        break
            else:
                self.failed += 1
