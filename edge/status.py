"""What the kiosk reports about itself: the status the UI and technicians see, and telemetry."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509

from edge import __version__
from edge import config as cfg
from edge.camera import CameraFeed
from edge.controls import Controls
from edge.events import EventBus
from edge.fleet.client import FleetClient
from edge.ports.speech import Speech
from edge.printing import PrintQueue
from edge.selftest import Check, check_models
from edge.services.catalog import CatalogService
from edge.services.tickets import TicketService
from edge.store.outbox import Outbox

logger = logging.getLogger(__name__)


class StatusSource(Protocol):
    """The parts of the running daemon (edge.app.App) a status is made of."""

    config: cfg.Config
    ready: bool
    locked: bool
    started_at: float
    bus: EventBus

    @property
    def fleet(self) -> FleetClient | None: ...
    @property
    def camera(self) -> CameraFeed | None: ...
    @property
    def printer(self) -> PrintQueue | None: ...
    @property
    def controls(self) -> Controls | None: ...
    @property
    def outbox(self) -> Outbox | None: ...
    @property
    def copies(self) -> Any: ...  # edge.copies.issue.CopyService
    @property
    def catalog(self) -> CatalogService | None: ...
    @property
    def tickets(self) -> TicketService | None: ...
    @property
    def speech(self) -> Speech | None: ...

    def counts_today(self) -> dict[str, int]: ...

    def status(self) -> dict[str, Any]: ...


def kiosk_status(app: StatusSource) -> dict[str, Any]:
    """What the UI, technicians and telemetry see. No personal data in here."""
    if app.camera is None or app.printer is None or app.controls is None or app.outbox is None:
        raise RuntimeError("no status before the daemon has started its parts")
    camera = app.camera.state()
    printer = app.printer.status()
    disk = shutil.disk_usage(app.config.storage.state_dir)
    return {
        "kiosk_id": app.config.kiosk.id,
        "site": app.config.kiosk.site,
        "version": __version__,
        "config_digest": app.config.digest(),
        "ready": app.ready,
        "locked": app.locked,
        "uptime_s": round(time.time() - app.started_at, 1),
        "fleet": app.fleet.status() if app.fleet else {"enabled": False},
        "parts": {
            "camera": {
                "ok": camera.ok,
                "state": camera.state,
                "detail": camera.detail,
                "frames": camera.frames,
                "type": app.config.camera.type,
            },
            "printer": {
                "type": app.config.printer.type,
                **printer.as_dict(),
                "ok": printer.can_print,
            },
            **app.controls.status(),
            "storage": {
                "ok": True,
                "free_mb": disk.free // 2**20,
                "outbox": app.outbox.depth(),
                "print_jobs_failed": len(app.printer.jobs(status="failed")),
            },
            **({"speech": app.speech.status().as_dict()} if app.speech else {}),
        },
        "copies": app.copies.status() if app.copies else {"available": False},
        "counts": app.counts_today(),
        "recent_events": [e.as_dict() for e in app.bus.recent()[-20:]],
    }


def kiosk_telemetry(app: StatusSource) -> dict[str, Any]:
    """The daemon's part of each telemetry message (the fleet client adds system figures)."""
    status = app.status()
    parts = status["parts"]
    return {
        "uptime_s": status["uptime_s"],
        "locked": app.locked,
        "printer": {k: parts["printer"][k] for k in ("online", "paper", "cover_open")},
        "camera": {k: parts["camera"][k] for k in ("ok", "state", "frames")},
        "door": parts["tamper"]["door"],
        "models": _models_summary(check_models(app.config.models.dir)),
        "counts": {**app.counts_today(), **_service_counts(app)},
        "versions": {
            "software": __version__,
            "config": app.config.digest(),
            **({"catalog": app.catalog.version} if app.catalog else {}),
        },
        **({"site": app.config.kiosk.site} if app.config.kiosk.site else {}),
        **certificate_summary(app.config.mqtt.cert_file),
    }


def certificate_summary(cert_file: Path | None) -> dict[str, Any]:
    """The fleet client certificate's expiry, for central's "expiring soon" alert."""
    if not cert_file:
        return {}
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    except (OSError, ValueError) as err:
        logger.warning("client certificate unreadable for telemetry: %s", err)
        return {}
    return {
        "certificate": {
            "not_after": cert.not_valid_after_utc.isoformat(),
            "serial": format(cert.serial_number, "x"),
        }
    }


def _service_counts(app: StatusSource) -> dict[str, int]:
    return {"tickets": app.tickets.count_today()} if app.tickets else {}


def _models_summary(check: Check) -> dict[str, str]:
    return {"verdict": check.verdict, "detail": check.detail}
