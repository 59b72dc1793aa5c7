"""The composition root: picks real or simulated adapters from config; ordered start and stop."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from edge import __version__
from edge import config as cfg
from edge.adapters import build_camera, build_printer, build_speech
from edge.adapters.payment_central import PAYMENT_SUFFIX, CentralPayment
from edge.adapters.printer_sim import SimulatedPrinter
from edge.camera import CameraFeed
from edge.controls import Controls, LedPattern, SimulatedPins
from edge.events import Event, EventBus
from edge.fleet import FleetClient, queue_event
from edge.fleet.handlers import fleet_commands
from edge.payments import Payments
from edge.ports.printer import PrinterTransport
from edge.ports.speech import Speech
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
from edge.services.post import SHIPMENT_SUFFIX, PostService
from edge.services.tickets import TicketService
from edge.speech_settings import apply_saved
from edge.status import kiosk_status, kiosk_telemetry
from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from edge.systemd import Watchdog, notify, watchdog_interval
from protocol.messages import Severity

if TYPE_CHECKING:
    from edge.certify.requests import CertRequests
    from edge.copies.issue import CopyService
    from web_ui.server import WebServer

logger = logging.getLogger(__name__)

# Events that central must hear about; they go through the outbox like records.
FLEET_EVENTS: dict[str, Severity] = {
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
    # Calls for staff (web_ui/helpcalls.py): the screen and a reason code, never personal data.
    "help.requested": "info",  # "Gọi nhân viên", holding Cancel, the identity step, an officer
    "help.answered": "info",  # a member of staff answered it on the technician screen
    "help.cancelled": "info",  # the citizen stopped waiting (Cancel, back to the start)
    "identity.staff_verified": "info",  # staff confirmed an identity with their PIN (web UI)
}
FLEET_CAPABILITIES = ["camera", "printer", "buttons", "identity", "tickets", "dossier-status"]
PRINTER_POLL_S = 15.0
PRINT_PURGE_S = 60.0


@dataclass(frozen=True)
class Parts:
    """Every part of one kiosk, built at once and without I/O by App; App starts and stops them.

    None only where the config or the environment leaves a part out, never "not started yet"."""

    key: DataKey  # its file is read (made on first run) by App.start()
    store: Store
    outbox: Outbox
    controls: Controls
    camera: CameraFeed
    transport: PrinterTransport
    printer: PrintQueue
    printer_watch: threading.Thread
    copies: CopyService
    certify: CertRequests  # certification requests to central's officers (issue 16)
    a4printer: Any  # edge.ports.a4printer.A4Printer; None: [certify.a4printer] type = "none"
    chip_reader: Any  # edge.identity.chip.wiring.ChipReader; None: [card_reader] adapter = "none"
    services: Services
    payments: Payments  # the payment ledger: cash, waivers, fee receipts (docs/payments.md)
    payment: CentralPayment | None  # bank transfers confirmed by central: [mqtt] broker only
    speech: Speech  # spoken guidance; adapter "off" when the kiosk has no loudspeaker
    web: WebServer
    sim_pins: SimulatedPins | None  # simulated buttons or tamper switch only
    fleet: FleetClient | None  # [mqtt] type = "broker" only
    watchdog: Watchdog | None  # systemd's WatchdogSec only


class App:
    """Owns every part. start() in a readable order; stop() in reverse, always."""

    def __init__(self, config: cfg.Config, *, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path  # None: built-in simulation config (nothing to rewrite)
        self.bus = EventBus()
        self.stop_event = threading.Event()
        self.started_at = time.time()
        self.ready = False
        self.locked = False  # out of service: set by the lock command, kept across restarts
        self.exit_code = 0
        self._counts: dict[str, int] = {}
        self._counts_day: dt.date | None = None
        self._door_reported = "closed"
        self._started: set[str] = set()  # parts whose start was attempted: stop() stops those
        self.parts = self._build()

    def _build(self) -> Parts:
        """Picks real or simulated adapters from config and wires them; no I/O."""
        from edge.certify.requests import a4printer_from_config
        from edge.certify.requests import from_config as certify_from_config
        from edge.copies.issue import CopyService
        from edge.identity.chip.wiring import chip_reader_from_config
        from protocol.certify import RESULT_SUFFIX as certify_result_suffix
        from web_ui import create_app, services_api
        from web_ui.server import WebServer

        c = self.config
        key = DataKey(path=c.storage.data_key_path)
        store = Store(c.storage.db_path)
        outbox = Outbox(store, key)
        controls = Controls(buttons=c.buttons, tamper=c.tamper, led=c.led, bus=self.bus)
        simulated = c.buttons.type == "simulated" or c.tamper.type == "simulated"
        camera = CameraFeed(build_camera(c.camera), bus=self.bus, fps=c.camera.fps)
        transport = build_printer(c, plug_in=False)
        printer = PrintQueue.from_config(transport, c, store=store, key=key, bus=self.bus)
        copies = CopyService(
            c, store=store, key=key, outbox=outbox, printer=printer, on_issued=self._copy_issued
        )
        certify = certify_from_config(
            c, store=store, key=key, outbox=outbox, reserve=copies.sequence.reserve,
            on_queued=self._kick_fleet, verify_qr=copies.verify_qr,
        )  # fmt: skip
        services = build_services(
            c,
            store=store,
            key=key,
            outbox=outbox,
            printer=printer,
            on_queued=self._kick_fleet,
            report=self._report_service_problem,
        )
        payments = Payments(
            store, key, outbox, c.kiosk.id, timezone=c.kiosk.timezone, on_queued=self._kick_fleet
        )
        payment = None
        web_app = create_app(services=self)
        # The citizen services' read-only JSON (docs/services.md).
        web_app.register_blueprint(services_api.bp)
        web = WebServer(web_app, host=c.web.host, port=c.web.port, threads=c.web.threads)
        fleet = None
        if c.mqtt.type == "broker":
            fleet = FleetClient.from_config(
                c,
                store=store,
                outbox=outbox,
                bus=self.bus,
                telemetry_provider=self.telemetry,
                status_provider=lambda: {
                    "locked": self.locked,
                    "ready": self.ready,
                    **({"site": c.kiosk.site} if c.kiosk.site else {}),
                },
                capabilities=FLEET_CAPABILITIES,  # + "ecopy" once its signing identity loads
                commands=fleet_commands(self),
                on_record_ack=self._records_acked,
                on_revocations=self._revocation_list,
            )
            services.dossiers.attach(fleet)
            fleet.listen("res/queue-stats", services.tickets.on_queue_stats)
            fleet.listen(SHIPMENT_SUFFIX, services.post.shipments.on_message)
            fleet.listen(certify_result_suffix, certify.on_result)
            v = c.copies.vietqr
            payment = CentralPayment(
                payments,
                qr=copies.payment_qr,
                bank_bin=v.bank_bin,
                account=v.account,
                purpose_prefix=v.purpose_prefix,
            )
            fleet.listen(PAYMENT_SUFFIX, payment.on_message)
        interval = watchdog_interval()
        return Parts(
            key=key,
            store=store,
            outbox=outbox,
            controls=controls,
            camera=camera,
            transport=transport,
            printer=printer,
            printer_watch=threading.Thread(
                target=self._watch_printer, name="printer-watch", daemon=True
            ),
            copies=copies,
            certify=certify,
            a4printer=a4printer_from_config(c),
            chip_reader=chip_reader_from_config(c),
            services=services,
            payments=payments,
            payment=payment,
            speech=build_speech(c),
            web=web,
            sim_pins=SimulatedPins(controls) if simulated else None,
            fleet=fleet,
            watchdog=Watchdog(self.healthy, interval) if interval else None,
        )

    # --- the parts, as the web UI (web_ui/ports.Kiosk), status and commands read them ----

    @property
    def key(self) -> DataKey:
        return self.parts.key

    @property
    def store(self) -> Store:
        return self.parts.store

    @property
    def outbox(self) -> Outbox:
        return self.parts.outbox

    @property
    def controls(self) -> Controls:
        return self.parts.controls

    @property
    def sim_pins(self) -> SimulatedPins | None:
        return self.parts.sim_pins

    @property
    def camera(self) -> CameraFeed:
        return self.parts.camera

    @property
    def printer(self) -> PrintQueue:
        return self.parts.printer

    @property
    def copies(self) -> CopyService:
        """E-copies for the web UI (docs/ecopy.md)."""
        return self.parts.copies

    @property
    def certify(self) -> CertRequests:
        """Certification requests (edge/certify)."""
        return self.parts.certify

    @property
    def a4printer(self) -> Any:
        return self.parts.a4printer

    @property
    def chip_reader(self) -> Any:
        return self.parts.chip_reader

    @property
    def payments(self) -> Payments:
        """The payment ledger (edge/payments.py)."""
        return self.parts.payments

    @property
    def payment(self) -> CentralPayment | None:
        """The Payment port confirmed by central, when the kiosk reports to one."""
        return self.parts.payment

    @property
    def speech(self) -> Speech:
        return self.parts.speech

    @property
    def web(self) -> WebServer:
        return self.parts.web

    @property
    def fleet(self) -> FleetClient | None:
        return self.parts.fleet

    @property
    def services(self) -> Services:
        """Citizen services (docs/services.md)."""
        return self.parts.services

    @property
    def tickets(self) -> TicketService:
        return self.parts.services.tickets

    @property
    def dossiers(self) -> DossierService:
        return self.parts.services.dossiers

    @property
    def catalog(self) -> CatalogService:
        return self.parts.services.catalog

    @property
    def post(self) -> PostService:
        return self.parts.services.post

    # --- lifecycle ------------------------------------------------------------------

    def _starting(self, name: str) -> None:
        """Marks a part before its start, so stop() stops it even if its start fails."""
        self._started.add(name)

    def start(self) -> None:
        c = self.config
        logger.info(
            "starting kiosk-edge",
            extra={"version": __version__, "kiosk": c.kiosk.id, "config": c.digest()},
        )
        c.storage.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key.load()
        self._starting("store")
        self.store.open()
        self.bus.subscribe("", self._on_event)
        self.bus.start()
        self.start_controls()
        self.start_camera()
        self.start_printer()
        self.start_copies()
        self.start_services()
        self.locked = self.store.get_kv("locked") == "1"
        self.start_speech()
        self.start_web()
        self.start_fleet()
        self.ready = True
        self.controls.set_led("on")
        notify(f"READY=1\nSTATUS=serving on {c.web.host}:{self.web.port}")
        if self.parts.watchdog is not None:
            self._starting("watchdog")
            self.parts.watchdog.start()
        logger.info("kiosk ready", extra={"url": f"http://{c.web.host}:{self.web.port}/"})

    def start_controls(self) -> None:
        self._starting("controls")
        self.controls.start()
        if self.config.tamper.type == "simulated" and self.sim_pins is not None:
            self.sim_pins.set_door("closed")  # a simulated kiosk starts with its door shut
        elif self.controls.door() == "open":
            self.bus.post(
                Event("tamper.opened", "tamper", {"severity": "critical", "at_start": True})
            )

    def start_camera(self) -> None:
        self._starting("camera")
        self.camera.start()

    def start_printer(self) -> None:
        if isinstance(self.parts.transport, SimulatedPrinter):
            self.parts.transport.plug_in()  # its output folder, as connecting a printer would
        self._starting("printer")
        self.parts.printer_watch.start()
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
        from edge.copies.sign import SigningUnavailable

        try:
            self.copies.open()
        except SigningUnavailable as err:
            logger.error("e-copies unavailable: %s", err)
        threading.Thread(target=self._purge_copies, name="copies-purge", daemon=True).start()

    def _copy_issued(self, issued: Any) -> None:
        """Counted in telemetry ("copy.issued" today); its record goes to central now."""
        self.bus.post(Event("copy.issued", "copies", {"code": issued.code, "pages": issued.pages}))
        self._kick_fleet()

    def _kick_fleet(self) -> None:
        """Something waits in the outbox: the fleet client (if any) drains it now."""
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
        self.copies.acknowledge(ids)

    def _revocation_list(self, document: dict[str, Any]) -> None:
        """Central's retained copy-revocations/1 (fleet thread): merged into the revocation file."""
        self.copies.install_revocation_list(document)

    def start_services(self) -> None:
        """Tickets, dossier status, catalog, post; records left unqueued by a crash go now."""
        s = self.services
        s.catalog.load()
        s.tickets.requeue_unreported()
        s.post.requeue_unreported()
        s.dossiers.purge_cache()
        if s.ratings is not None:
            s.ratings.purge()

    def _report_service_problem(self, kind: str, detail: dict[str, Any]) -> None:
        """A service's trouble that central's operators must see (e.g. no dossier answers)."""
        if self.fleet is not None:
            self.fleet.report_event(kind, "warning", detail)
        else:
            queue_event(self.outbox, self.config.kiosk.id, kind, "warning", detail)

    def start_speech(self) -> None:
        """The technician's on/off and volume (kept in kv) apply over the config's."""
        apply_saved(self.speech, self.store, self.config.speech)
        self._starting("speech")
        self.speech.start()

    def start_web(self) -> None:
        from edge.localapi import write_token

        # For the kiosk CLI's calls that change something (edge/localapi.py).
        write_token(self.config.storage.state_dir, self.web.app.config["KIOSK_TOKEN"])
        self._starting("web")
        self.web.start()

    def start_fleet(self) -> None:
        fleet = self.fleet
        if fleet is None:
            logger.info("fleet reporting off: records wait in the outbox")
            return
        if self.copies.unavailable is None:
            fleet.connection.capabilities = [*FLEET_CAPABILITIES, "ecopy"]
        self._starting("fleet")
        fleet.start()
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
        """Reverse order; each step guarded so one stuck part cannot keep the rest running.
        Only parts whose start was attempted are stopped (a failed start stops what it began)."""
        logger.info("stopping kiosk-edge")
        notify("STOPPING=1")
        self.ready = False
        self.stop_event.set()
        p = self.parts
        steps: list[tuple[str, str | None, Callable[[], object]]] = [
            ("fleet", "fleet", p.fleet.stop if p.fleet else _nothing),
            ("watchdog", "watchdog", p.watchdog.stop if p.watchdog else _nothing),
            ("web", "web", p.web.stop),
            ("speech", "speech", p.speech.close),
            ("printer", "printer", lambda: p.printer_watch.join(2)),
            ("camera", "camera", p.camera.stop),
            ("led", "controls", lambda: p.controls.set_led("off")),
            ("controls", "controls", p.controls.stop),
            ("events", None, self.bus.stop),
            ("store", "store", p.store.close),
        ]
        for name, part, step in steps:
            if part is not None and part not in self._started:
                continue
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
        if severity is not None:
            detail = {k: v for k, v in event.detail.items() if not k.startswith("_")}
            detail.pop("severity", None)
            queue_event(self.outbox, self.config.kiosk.id, event.kind, severity, detail)
            if self.fleet is not None:
                self.fleet.kick()
        if event.kind.startswith(("camera.", "printer.", "tamper.")):
            self.controls.set_led(self._led_pattern())

    def _led_pattern(self) -> LedPattern:
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
        alive = self.ready and self.web.alive()
        if not strict:
            return alive
        return alive and self.camera.state().ok and self.printer.status().can_print

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
        sample = kiosk_telemetry(self)
        if self.services.ratings is not None:  # counters of the hours over, nothing per visit
            sample["ratings"] = self.services.ratings.telemetry()
        return sample

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


def _nothing() -> None:
    """A stop step for a part the config leaves out."""


EXIT_RESTART = 75  # EX_TEMPFAIL: "try again", restarted by systemd
