"""The composition root: picks real or simulated adapters from config; ordered start and stop."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge import __version__
from edge import config as cfg
from edge.adapters import build_camera, build_printer
from edge.camera import CameraFeed
from edge.controls import Controls, SimulatedPins
from edge.events import Event, EventBus
from edge.fleet import FleetClient, queue_event
from edge.fleet.handlers import fleet_commands
from edge.printing import PrintOutcome, PrintQueue, print_test_page
from edge.selftest import (
    Check,
    check_camera,
    check_controls,
    check_key,
    check_printer,
    check_runtime_files,
    check_storage,
)
from edge.services.bundle import Services, build_services
from edge.services.catalog import CatalogService
from edge.services.dossier import DossierService
from edge.services.post import PostService
from edge.services.tickets import TicketService
from edge.status import kiosk_status, kiosk_telemetry
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from edge.systemd import Watchdog, notify, watchdog_interval

logger = logging.getLogger(__name__)

# Events that central must hear about; they go through the outbox like records.
FLEET_EVENTS = {
    "camera.lost": "error",
    "camera.recovered": "info",
    "printer.offline": "error",
    "printer.online": "info",
    "printer.paper_near_end": "warning",
    "printer.paper_out": "error",
    "printer.cover_open": "warning",
    "printer.job_failed": "warning",
    "tamper.opened": "critical",
    "tamper.closed": "info",
    "button.long_press": "warning",
    "identity.face_failures": "warning",
    "help.requested": "info",  # a citizen pressed "Gọi nhân viên" on the screen (web UI)
    "identity.staff_verified": "info",  # staff confirmed an identity with their PIN (web UI)
}
PRINTER_POLL_S = 15.0
PRINT_PURGE_S = 60.0


class App:
    """Owns every part. start() in a readable order; stop() in reverse, always."""

    def __init__(self, config: cfg.Config, *, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path  # None: built-in simulation config (nothing to rewrite)
        self.bus = EventBus()
        self.stop_event = threading.Event()
        self.started_at = time.time()
        self.ready = False
        self.key: DataKey | None = None
        self.store: Store | None = None
        self.outbox: Outbox | None = None
        self.controls: Controls | None = None
        self.sim_pins: SimulatedPins | None = None
        self.camera: CameraFeed | None = None
        self.printer: PrintQueue | None = None
        self.copies: Any = None  # edge.copies.issue.CopyService: e-copies for the web UI
        self.web: Any = None
        self.fleet: FleetClient | None = None
        # Citizen services (docs/services.md), built in start_services().
        self.services: Services | None = None
        self.tickets: TicketService | None = None
        self.dossiers: DossierService | None = None
        self.catalog: CatalogService | None = None
        self.post: PostService | None = None
        self.locked = False  # out of service: set by the lock command, kept across restarts
        self.exit_code = 0
        self._watchdog: Watchdog | None = None
        self._printer_watch: threading.Thread | None = None
        self._counts: dict[str, int] = {}
        self._counts_day: dt.date | None = None
        self._door_reported = "closed"

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        c = self.config
        logger.info(
            "starting kiosk-edge",
            extra={"version": __version__, "kiosk": c.kiosk.id, "config": c.digest()},
        )
        c.storage.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key = DataKey.load_or_create(c.storage.data_key_path)
        self.store = Store(c.storage.db_path)
        self.store.open()
        self.outbox = Outbox(self.store, self.key)
        self.bus.subscribe("", self._on_event)
        self.bus.start()
        self.start_controls()
        self.start_camera()
        self.start_printer()
        self.start_copies()
        self.start_services()
        self.locked = self.store.get_kv("locked") == "1"
        self.start_web()
        self.start_fleet()
        self.ready = True
        self.controls.set_led("on")
        notify(f"READY=1\nSTATUS=serving on {c.web.host}:{self.web.port}")
        interval = watchdog_interval()
        if interval:
            self._watchdog = Watchdog(self.healthy, interval)
            self._watchdog.start()
        logger.info("kiosk ready", extra={"url": f"http://{c.web.host}:{self.web.port}/"})

    def start_controls(self) -> None:
        self.controls = Controls(
            buttons=self.config.buttons,
            tamper=self.config.tamper,
            led=self.config.led,
            bus=self.bus,
        )
        self.controls.start()
        if self.config.buttons.type == "simulated" or self.config.tamper.type == "simulated":
            self.sim_pins = SimulatedPins(self.controls)
        if self.config.tamper.type == "simulated":
            self.sim_pins.set_door("closed")  # a simulated kiosk starts with its door shut
        elif self.controls.door() == "open":
            self.bus.post(
                Event("tamper.opened", "tamper", {"severity": "critical", "at_start": True})
            )

    def start_camera(self) -> None:
        camera_cfg = self.config.camera
        self.camera = CameraFeed(build_camera(camera_cfg), bus=self.bus, fps=camera_cfg.fps)
        self.camera.start()

    def start_printer(self) -> None:
        transport = build_printer(self.config)
        self.printer = PrintQueue.from_config(
            transport, self.config, store=self.store, key=self.key, bus=self.bus
        )
        self._printer_watch = threading.Thread(
            target=self._watch_printer, name="printer-watch", daemon=True
        )
        self._printer_watch.start()
        self.printer.purge()  # slips past their window while the kiosk was off
        threading.Thread(target=self._purge_print_jobs, name="print-purge", daemon=True).start()

    def _purge_print_jobs(self) -> None:
        """Erase slips' bytes once past their window (minutes for personal data), checked every
        PRINT_PURGE_S."""
        while not self.stop_event.wait(PRINT_PURGE_S):
            try:
                self.printer.purge()
            except Exception:
                logger.exception("erasing old print jobs failed")

    def start_copies(self) -> None:
        """E-copies (issue 5). Without a signing identity the kiosk still serves other flows."""
        from edge.copies.issue import CopyService
        from edge.copies.sign import SigningUnavailable

        self.copies = CopyService(
            self.config,
            store=self.store,
            key=self.key,
            outbox=self.outbox,
            printer=self.printer,
            on_issued=self._copy_issued,
        )
        try:
            self.copies.open()
        except SigningUnavailable as err:
            logger.error("e-copies unavailable: %s", err)
        threading.Thread(target=self._purge_copies, name="copies-purge", daemon=True).start()

    def _copy_issued(self, issued: Any) -> None:
        """Counted in telemetry ("copy.issued" today); its record goes to central now."""
        self.bus.post(Event("copy.issued", "copies", {"code": issued.code, "pages": issued.pages}))
        if self.fleet is not None:
            self.fleet.kick()

    def _purge_copies(self) -> None:
        """Copies central acknowledged longer than the retention window ago go: at start, then
        every copies.purge_interval_s (an hour)."""
        while not self.stop_event.is_set():
            try:
                self.copies.purge()
            except Exception:
                logger.exception("purging issued copies failed")
            self.stop_event.wait(self.config.copies.purge_interval_s)

    def _records_acked(self, ids: list[str]) -> None:
        """Central's record-ack/1 (fleet thread): its copies start their retention window."""
        if self.copies is not None:
            self.copies.acknowledge(ids)

    def _revocation_list(self, document: dict[str, Any]) -> None:
        """Central's retained copy-revocations/1 (fleet thread): merged into the revocation file."""
        if self.copies is None:
            logger.warning("revocation list not installed: e-copies are not running")
            return
        self.copies.install_revocation_list(document)

    def start_services(self) -> None:
        """Tickets, dossier status, catalog, post; records left unqueued by a crash go now."""
        s = build_services(
            self.config,
            store=self.store,
            key=self.key,
            outbox=self.outbox,
            printer=self.printer,
            on_queued=lambda: self.fleet and self.fleet.kick(),
            report=self._report_service_problem,
        )
        self.services = s
        self.tickets, self.dossiers, self.catalog, self.post = (
            s.tickets,
            s.dossiers,
            s.catalog,
            s.post,
        )
        s.catalog.load()
        s.tickets.requeue_unreported()
        s.post.requeue_unreported()
        s.dossiers.purge_cache()

    def _report_service_problem(self, kind: str, detail: dict[str, Any]) -> None:
        """A service's trouble that central's operators must see (e.g. no dossier answers)."""
        if self.fleet is not None:
            self.fleet.report_event(kind, "warning", detail)
        elif self.outbox is not None:
            queue_event(self.outbox, self.config.kiosk.id, kind, "warning", detail)

    def start_web(self) -> None:
        from edge.localapi import write_token
        from web_ui import create_app
        from web_ui.server import WebServer

        app = create_app(services=self)
        from web_ui import services_api  # the citizen services' read-only JSON (docs/services.md)

        app.register_blueprint(services_api.bp)
        # For the kiosk CLI's calls that change something (edge/localapi.py).
        write_token(self.config.storage.state_dir, app.config["KIOSK_TOKEN"])
        self.web = WebServer(
            app,
            host=self.config.web.host,
            port=self.config.web.port,
            threads=self.config.web.threads,
        )
        self.web.start()

    def start_fleet(self) -> None:
        if self.config.mqtt.type != "broker":
            logger.info("fleet reporting off: records wait in the outbox")
            return
        self.fleet = FleetClient.from_config(
            self.config,
            store=self.store,
            outbox=self.outbox,
            bus=self.bus,
            telemetry_provider=self.telemetry,
            status_provider=lambda: {
                "locked": self.locked,
                "ready": self.ready,
                **({"site": self.config.kiosk.site} if self.config.kiosk.site else {}),
            },
            capabilities=["camera", "printer", "buttons", "identity", "tickets", "dossier-status"]
            + (["ecopy"] if self.copies and self.copies.unavailable is None else []),
            commands=fleet_commands(self),
            on_record_ack=self._records_acked,
            on_revocations=self._revocation_list,
        )
        if self.services is not None:
            self.services.dossiers.attach(self.fleet)
            self.fleet.listen("res/queue-stats", self.services.tickets.on_queue_stats)
        self.fleet.start()
        self._warn_certificate_expiry()

    def _warn_certificate_expiry(self) -> None:
        """Fewer than 30 days left on the client certificate: the operator hears it (issue 9)."""
        from edge.fleet.certificates import certificate_info

        info = certificate_info(self.config.mqtt.cert_file) if self.config.mqtt.cert_file else None
        if info and info.get("warning") and self.fleet is not None:
            logger.warning("client certificate expires soon", extra={"days": info["days_left"]})
            detail = {k: info[k] for k in ("serial", "not_after", "days_left")}
            self.fleet.report_event("certificate.expiring", "warning", detail)

    def stop(self) -> None:
        """Reverse order; each step guarded so one stuck part cannot keep the rest running."""
        logger.info("stopping kiosk-edge")
        notify("STOPPING=1")
        self.ready = False
        self.stop_event.set()
        steps = [
            ("fleet", lambda: self.fleet and self.fleet.stop()),
            ("watchdog", lambda: self._watchdog and self._watchdog.stop()),
            ("web", lambda: self.web and self.web.stop()),
            ("printer", lambda: self._printer_watch and self._printer_watch.join(2)),
            ("camera", lambda: self.camera and self.camera.stop()),
            ("led", lambda: self.controls and self.controls.set_led("off")),
            ("controls", lambda: self.controls and self.controls.stop()),
            ("events", lambda: self.bus.stop()),
            ("store", lambda: self.store and self.store.close()),
        ]
        for name, step in steps:
            try:
                step()
            except Exception:
                logger.exception("stopping %s failed", name)
        logger.info("stopped")

    def run(self) -> None:
        """Start, serve until stop_event is set (signal handler), then stop."""
        try:
            self.start()
            self.stop_event.wait()
        finally:
            self.stop()

    # --- behaviour ------------------------------------------------------------------

    def counts_today(self) -> dict[str, int]:
        """Event counts since midnight, kiosk time (telemetry's "counts today")."""
        today = dt.datetime.now(ZoneInfo(self.config.kiosk.timezone)).date()
        if today != self._counts_day:
            self._counts_day, self._counts = today, {}
        return dict(self._counts)

    def _on_event(self, event: Event) -> None:
        self.counts_today()  # rolls the counters over at midnight
        self._counts[event.kind] = self._counts.get(event.kind, 0) + 1
        if event.kind.startswith("button."):
            logger.info(
                "button %s: %s",
                event.source,
                event.kind.split(".", 1)[1],
                extra={"button": event.source, "event": event.kind},
            )
        if event.kind.startswith("tamper."):
            # Only changes matter: a kiosk that starts with its door shut has nothing to report.
            door = event.kind.split(".", 1)[1]
            if door == self._door_reported:
                return
            self._door_reported = door
        severity = FLEET_EVENTS.get(event.kind)
        if severity is not None and self.outbox is not None:
            detail = {k: v for k, v in event.detail.items() if not k.startswith("_")}
            detail.pop("severity", None)
            queue_event(self.outbox, self.config.kiosk.id, event.kind, severity, detail)
            if self.fleet is not None:
                self.fleet.kick()
        if event.kind.startswith(("camera.", "printer.", "tamper.")) and self.controls:
            self.controls.set_led(self._led_pattern())

    def _led_pattern(self) -> str:
        if self.controls.door() == "open":
            return "fast"
        if not self.healthy(strict=True):
            return "slow"
        return "on"

    def _watch_printer(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.printer.status()  # posts events on changes (paper low, offline ...)
            except Exception:
                logger.exception("printer status poll failed")
            self.stop_event.wait(PRINTER_POLL_S)

    def healthy(self, *, strict: bool = False) -> bool:
        """Alive enough for the watchdog; strict also wants camera and printer working."""
        alive = self.ready and self.web is not None and self.web.alive()
        if not strict:
            return alive
        printer_ok = self.printer is not None and self.printer.status().can_print
        return alive and self.camera.state().ok and printer_ok

    def print_test_page(self) -> PrintOutcome:
        return print_test_page(self.printer, self.config)

    def selftest(self, *, print_test: bool = False) -> list[Check]:
        return [
            check_camera(self.camera),
            check_printer(self.printer, self.config, print_test=print_test),
            *check_controls(self.controls),
            check_storage(self.store, self.config),
            check_key(self.config.storage.data_key_path),
            *check_runtime_files(self.config.models.dir),
        ]

    def status(self) -> dict[str, Any]:
        """What the UI, technicians and telemetry see (edge/status.py). No personal data."""
        return kiosk_status(self)

    def telemetry(self) -> dict[str, Any]:
        """The daemon's part of each telemetry message (the fleet client adds system figures)."""
        return kiosk_telemetry(self)

    def set_locked(self, locked: bool) -> None:
        self.store.set_kv("locked", "1" if locked else "0")
        self.locked = locked
        logger.warning("kiosk %s", "locked (out of service)" if locked else "unlocked")
        if self.fleet is not None:
            self.fleet.publish_state()

    def request_restart(self, delay_s: float = 1.0) -> None:
        """Stop cleanly with a non-zero code so systemd (Restart=on-failure) starts us again."""
        self.exit_code = EXIT_RESTART
        timer = threading.Timer(delay_s, self.stop_event.set)
        timer.daemon = True
        timer.start()


EXIT_RESTART = 75  # EX_TEMPFAIL: "try again", restarted by systemd
