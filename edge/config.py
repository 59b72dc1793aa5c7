"""One typed configuration tree, loaded from TOML with KIOSK_* environment overrides."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from protocol.config import load_tree

DEFAULT_PATH = Path("/etc/kiosk-edge/config.toml")
ENV_PREFIX = "KIOSK_"
PACKAGE_DIR = Path(__file__).resolve().parent
SIMULATION_CONFIG = PACKAGE_DIR / "config" / "simulate.toml"
SAMPLE_SCENES = PACKAGE_DIR / "sim" / "scenes"

BcmPin = Annotated[int, Field(ge=2, le=27, description="BCM GPIO number (2-27)")]


class Section(BaseModel):
    """Base of every block: unknown keys are refused, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KioskSection(Section):
    id: str = Field(
        pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$",
        description="Fleet-unique kiosk id, upper case letters, digits and '-', e.g. HN-TAYHO-01.",
    )
    site: str = Field("", description="Site name shown to technicians and operators.")
    location: str = Field("", description="Where in the site the kiosk stands.")
    timezone: str = Field("Asia/Ho_Chi_Minh", description="IANA zone for times shown and printed.")


class StorageSection(Section):
    state_dir: Path = Field(
        Path("/var/lib/kiosk-edge"),
        description="Database, key file, print jobs and simulated printer output live here.",
    )
    min_free_mb: int = Field(
        200, ge=0, description="Below this much free disk, telemetry is dropped first."
    )

    @property
    def db_path(self) -> Path:
        return self.state_dir / "kiosk.db"

    @property
    def data_key_path(self) -> Path:
        return self.state_dir / "keys" / "data.key"


class WebSection(Section):
    host: str = Field(
        "127.0.0.1",
        description="Loopback IP address the web UI listens on (127.0.0.1 or ::1; no names).",
    )
    port: int = Field(8080, ge=1, le=65535)
    threads: int = Field(4, ge=1, le=32, description="waitress worker threads.")

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        # An IP literal, never a name: "localhost" is looked up through /etc/hosts and NSS at
        # bind time and may resolve to an address on the network.
        try:
            address = ipaddress.ip_address(value)
        except ValueError as err:
            raise ValueError(
                f"{value!r} is not an IP address: give a loopback IP address, 127.0.0.1 or ::1 "
                "(a host name is not resolved here and could resolve to a non-loopback address)"
            ) from err
        if not address.is_loopback:
            raise ValueError("the web UI listens on loopback only (127.0.0.1 or ::1)")
        return value


# --- camera ---------------------------------------------------------------------------


class FilesCamera(Section):
    type: Literal["files"]
    path: Path | None = Field(
        None,
        description="Image file or folder of images played in name order; default: bundled scenes.",
    )
    fps: float = Field(5.0, gt=0, le=60)
    loop: bool = True


class OpenCVCamera(Section):
    type: Literal["opencv"]
    device: int | str = Field(
        0, description="VideoCapture index (/dev/videoN) or a video file path."
    )
    width: int = Field(1920, ge=160, le=7680)
    height: int = Field(1080, ge=120, le=4320)
    fps: float = Field(10.0, gt=0, le=60)


class Picamera2Camera(Section):
    type: Literal["picamera2"]
    width: int = Field(2304, ge=160, le=4608)
    height: int = Field(1296, ge=120, le=2592)
    fps: float = Field(10.0, gt=0, le=60)


CameraSection = Annotated[FilesCamera | OpenCVCamera | Picamera2Camera, Field(discriminator="type")]


# --- GPIO parts -----------------------------------------------------------------------


class ButtonPins(Section):
    back: BcmPin = 5
    next: BcmPin = 6
    ok: BcmPin = 13
    cancel: BcmPin = 19
    help: BcmPin = 26


class ButtonsSection(Section):
    type: Literal["gpio", "simulated"] = "gpio"
    pins: ButtonPins = ButtonPins()
    bounce_ms: int = Field(30, ge=0, le=500, description="Contact debounce time.")
    long_press_s: float = Field(
        5.0, gt=0, le=30, description="Holding Cancel this long calls staff."
    )


class TamperSection(Section):
    type: Literal["gpio", "simulated", "none"] = "gpio"
    pin: BcmPin = 16
    bounce_ms: int = Field(100, ge=0, le=2000)


class LedSection(Section):
    type: Literal["gpio", "simulated", "none"] = "gpio"
    pin: BcmPin = 12


# --- printer --------------------------------------------------------------------------


class PrinterBase(Section):
    paper_width_mm: Literal[58, 80] = 80
    profile: str = Field("TM-T88V", description="python-escpos capability profile name.")
    keep_personal_min: float = Field(
        10.0,
        ge=0,
        le=1440,
        description="A printed slip with personal data (post confirmation, copy receipt) can be "
        "reprinted this long; then its bytes are erased and only its title and status stay.",
    )
    keep_unprinted_h: float = Field(
        24.0,
        gt=0,
        le=168,
        description="Longest any slip keeps its bytes: one that did not print waits this long "
        "for the printer; tickets, checklists and test pages are kept this long too.",
    )


class UsbPrinter(PrinterBase):
    type: Literal["usb"]
    vendor_id: int = Field(ge=0, le=0xFFFF, description="USB vendor id, e.g. 0x04b8.")
    product_id: int = Field(ge=0, le=0xFFFF, description="USB product id, e.g. 0x0202.")

    @field_validator("vendor_id", "product_id", mode="before")
    @classmethod
    def _hex(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return int(value, 16)
            except ValueError as err:
                raise ValueError(f"{value!r} is not a hexadecimal USB id") from err
        return value


class SerialPrinter(PrinterBase):
    type: Literal["serial"]
    device: str = "/dev/ttyUSB0"
    baudrate: int = Field(19200, ge=1200, le=921600)


class NetworkPrinter(PrinterBase):
    type: Literal["network"]
    host: str
    port: int = Field(9100, ge=1, le=65535)
    timeout_s: float = Field(5.0, gt=0, le=60)


class FilePrinter(PrinterBase):
    type: Literal["file"]
    path: Path = Field(Path("/dev/usb/lp0"), description="Device node or file the bytes go to.")


class SimulatedPrinter(PrinterBase):
    type: Literal["simulated"]
    output_dir: Path | None = Field(
        None, description="One .bin file of raw ESC/POS per job; default: <state_dir>/printer."
    )


PrinterSection = Annotated[
    UsbPrinter | SerialPrinter | NetworkPrinter | FilePrinter | SimulatedPrinter,
    Field(discriminator="type"),
]


# --- fleet, logging -------------------------------------------------------------------


class MqttSection(Section):
    type: Literal["broker", "off"] = Field(
        "off",
        description="'broker' reports to fleet management; 'off' keeps records in the outbox.",
    )
    host: str = "localhost"
    port: int = Field(8883, ge=1, le=65535)
    tls: bool = True
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = Field(60, ge=5, le=3600)
    topic_prefix: str = "kiosk/v1"
    telemetry_interval_s: int = Field(60, ge=5, le=3600)
    trust_dir: Path | None = Field(
        None, description="Operator command-signing public keys, one <operator>.pem each."
    )
    protocol: Literal["auto", "5", "3.1.1"] = Field(
        "auto", description="MQTT 5, falling back to 3.1.1 when the broker refuses it."
    )
    client_id: str | None = Field(None, description="Default: the kiosk id.")
    session_expiry_s: int = Field(86400, ge=0, description="Broker keeps QoS 1 state this long.")
    reconnect_min_s: float = Field(1.0, gt=0, le=600)
    reconnect_max_s: float = Field(60.0, gt=0, le=3600)
    inflight_window: int = Field(32, ge=1, le=1000)
    clock_skew_s: float = Field(120.0, ge=0, le=3600, description="Tolerated on command times.")
    max_command_ttl_s: float = Field(86400.0, gt=0, description="Longest command validity.")


class ModelsSection(Section):
    dir: Path = Field(
        PACKAGE_DIR.parent / "models",
        description="Folder with manifest.json and the on-device model files it lists.",
    )


class LoggingSection(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class DaemonSection(Section):
    stop_timeout_s: float = Field(4.0, gt=0, le=30, description="Clean stop must finish in this.")
    developer_panel: bool = Field(
        False,
        description="Expose /api/dev/* (press simulated buttons, test print). Simulation only.",
    )


class ServiceArea(Section):
    code: str = Field(pattern=r"^[A-Z]$", description="Ticket letter, e.g. B (tickets B-001 ...).")
    name: str = Field(min_length=1, description="Vietnamese name shown and printed.")
    name_en: str = Field("", description="English name for the second line.")


DEFAULT_AREAS = (
    ServiceArea(code="A", name="Hộ tịch", name_en="Civil status"),
    ServiceArea(code="B", name="Đất đai", name_en="Land"),
    ServiceArea(code="C", name="Chứng thực", name_en="Certification"),
    ServiceArea(code="D", name="Hộ kinh doanh", name_en="Household business"),
    ServiceArea(code="E", name="Lao động - Xã hội", name_en="Labour and social affairs"),
    ServiceArea(code="F", name="Cư trú", name_en="Residence"),
)


PriorityGroup = Literal["elderly", "disabled", "pregnant", "child", "merit"]
PRIORITY_GROUP_CODES: tuple[PriorityGroup, ...] = (
    "elderly",
    "disabled",
    "pregnant",
    "child",
    "merit",
)


class ServicesSection(Section):
    """Citizen services: queue tickets, dossier status, procedure guide, results by post."""

    areas: tuple[ServiceArea, ...] = Field(
        DEFAULT_AREAS, min_length=1, description="Service areas a ticket can be taken for."
    )
    ticket_follow_url: str = Field(
        "",
        description="QR on a ticket: URL with {kiosk_id}, {day}, {number}; empty: a text code.",
    )
    priority_groups: tuple[PriorityGroup, ...] = Field(
        PRIORITY_GROUP_CODES,
        description="Groups offered a priority ticket (B-UT001 ..., served first), in the order "
        "shown; empty: no priority tickets. docs/services.md cites the law behind each.",
    )
    queue_stats_max_age_s: int = Field(
        1800, ge=60, description="Central's queue figures older than this give no wait estimate."
    )
    dossier_timeout_s: float = Field(8.0, gt=0, le=60, description="Wait this long for central.")
    dossier_cache_days: int = Field(
        30, ge=0, le=365, description="Keep answers (sealed) this long for offline use."
    )
    dossier_per_session_per_minute: int = Field(6, ge=1, le=600)
    dossier_per_kiosk_per_minute: int = Field(30, ge=1, le=6000)

    @field_validator("ticket_follow_url")
    @classmethod
    def _follow_template(cls, value: str) -> str:
        if not value:
            return value
        try:
            value.format(kiosk_id="K", day="2026-01-01", number="A-001")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(
                f"only {{kiosk_id}}, {{day}} and {{number}} may be used ({err!r})"
            ) from err
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("areas")
    @classmethod
    def _unique_codes(cls, areas: tuple[ServiceArea, ...]) -> tuple[ServiceArea, ...]:
        codes = [a.code for a in areas]
        if len(set(codes)) != len(codes):
            raise ValueError("service area codes must be unique")
        return areas

    def area(self, code: str) -> ServiceArea | None:
        return next((a for a in self.areas if a.code == code), None)


# --- electronic certified copies (issue 5) -------------------------------------------------


class VietQRSection(Section):
    """Where a payable fee is paid (NAPAS VietQR); no bank account: no payment QR is shown."""

    bank_bin: str | None = Field(
        None, pattern=r"^[0-9]{6}$", description="NAPAS acquirer BIN of the receiving bank."
    )
    account: str | None = Field(
        None, pattern=r"^[0-9A-Za-z]{1,19}$", description="Receiving account (or card) number."
    )
    to_card: bool = Field(False, description="account is a card number (QRIBFTTC).")
    purpose_prefix: str = Field(
        "PHI CHUNG THUC", max_length=20, description="Start of the transfer note (ASCII)."
    )


class CopiesSection(Section):
    signing_key: Path | None = Field(
        None,
        description="Kiosk's ECDSA P-256 signing key (PEM); default <state_dir>/copies/signing/.",
    )
    signing_cert: Path | None = Field(
        None, description="Its certificate, issued by the center's CA (PEM)."
    )
    chain: Path | None = Field(
        None, description="Intermediate CA certificates to embed in signatures (PEM bundle)."
    )
    trust_dir: Path | None = Field(
        None,
        description="Trusted CA certificates (*.pem) and, under kiosks/, other kiosks' signing "
        "certificates (to check their QR codes offline); default <state_dir>/copies/trust.",
    )
    revocation_file: Path | None = Field(
        None,
        description="Revocation list pushed by central; default <state_dir>/copies/revoked.json.",
    )
    development_ca: bool = Field(
        False,
        description="Simulation only: create a development CA and kiosk certificate when none "
        "is configured. Such copies say DEVELOPMENT and are not legally valid.",
    )
    tsa_url: str | None = Field(
        None, description="RFC 3161 timestamp authority: signatures become PAdES B-T."
    )
    sequence_floor: Path | None = Field(
        None,
        description="File holding the highest copy number ever reserved (best on another medium "
        "than the database); default <state_dir>/copies/sequence.floor.",
    )
    retention_days: float = Field(
        7.0,
        ge=0,
        le=365,
        description="Issued copies stay this long after central acknowledged storing them "
        "(record-ack/1).",
    )
    purge_interval_s: float = Field(
        3600.0, ge=0.05, le=86400, description="How often the daemon purges copies past retention."
    )
    fee_channel: Literal["online", "at-kiosk", "at-counter"] = Field(
        "at-kiosk",
        description="The channel whose fee rules apply here (docs/fees.md): 'at-kiosk' unless "
        "the province counts this kiosk's dossiers as online ones.",
    )
    fee_rules: Path | None = Field(
        None,
        description="Fee rules file (TOML, validated at load); default edge/config/fee_rules.toml.",
    )

    @field_validator("fee_rules")
    @classmethod
    def _fee_rules_valid(cls, value: Path | None) -> Path | None:
        if value is not None:
            from edge.errors import ConfigError
            from edge.fee_rules import load_rules

            try:
                load_rules(value)
            except ConfigError as err:
                raise ValueError(str(err)) from err
        return value

    vietqr: VietQRSection = VietQRSection()


class A4PrinterSection(Section):
    type: Literal["none", "cups", "simulated"] = Field(
        "none", description="The A4 printer for certified copies: none, CUPS (`lp`) or simulated."
    )
    queue: str = Field("", description="CUPS: the destination (lp -d); empty: the default one.")
    folder: Path | None = Field(
        None, description="Simulated: PDFs are written here; default <state_dir>/a4printer."
    )


class CardReaderSection(Section):
    """The contactless reader of the card's chip (edge.ports.cardreader; docs/chip.md)."""

    adapter: Literal["none", "pcsc", "sim"] = Field(
        "none",
        description="none: no chip reading; pcsc: a PC/SC reader through pcscd; sim: an "
        "emulated card (development trust list, readings marked development).",
    )
    reader: str = Field(
        "",
        description="PC/SC: part of the reader's name to pick it; empty: the first contactless (PICC) reader, else the first.",
    )
    trust_dir: Path | None = Field(
        None,
        description="Directory of CSCA certificates (PEM or DER) passive authentication trusts; "
        "none: no chip reading is ever valid (sim: the emulator's development CSCA).",
    )
    timeout_s: float = Field(
        10.0, ge=1, le=60, description="How long to wait for a card to be laid on the reader."
    )


HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class CertifySection(Section):
    wait_s: float = Field(
        180.0,
        ge=5,
        le=3600,
        description="How long a citizen waits for the officer before taking a request slip.",
    )
    office_open: str = Field(
        "07:30", pattern=HHMM, description="Officers answer from (local time, HH:MM)."
    )
    office_close: str = Field(
        "17:00", pattern=HHMM, description="Officers answer until (local time, HH:MM)."
    )
    holidays: list[dt.date] = Field(
        default_factory=list,
        description="Days off besides weekends (e.g. 2026-09-02): no officer answers, and the "
        "Art. 7 due time moves to the next working day.",
    )
    print_copy: bool = Field(
        False, description="Print an approved copy on the A4 printer as well as its receipt."
    )
    a4printer: A4PrinterSection = A4PrinterSection()


class UpdateSection(Section):
    """Atomic (A/B) software updates: `kiosk update apply` (provisioning/update.py)."""

    root: Path = Field(
        Path("/opt/kiosk-edge"),
        description="Install root: releases/<name>/ side by side, 'current' symlink to one.",
    )
    keys_dir: Path | None = Field(
        None, description="Public keys (PEM, ECDSA P-256) allowed to sign update bundles."
    )
    incoming_dir: Path | None = Field(
        None,
        description="Bundles queued by the fleet command 'update'; default <state_dir>/updates.",
    )
    health_url: str = Field(
        "http://127.0.0.1:8080/api/status",
        description="Must answer ready (and the bundle's version) after a switch.",
    )
    health_timeout_s: float = Field(
        90.0, gt=0, le=900, description="Roll back unless healthy within this."
    )
    restart_command: list[str] = Field(
        ["systemctl", "restart", "kiosk-edge.service"],
        description="Restarts the daemon on the release 'current' points to.",
    )
    keep_releases: int = Field(
        3, ge=2, le=10, description="Releases kept on disk (current, previous, ...)."
    )


# --- touchscreen UI (issue 8) -------------------------------------------------------------


class UiSection(Section):
    idle_timeout_s: float = Field(
        90.0, ge=3, le=3600, description="No touch or button this long: back to start, data wiped."
    )
    idle_warning_s: float = Field(
        20.0, ge=1, le=600, description="The countdown warning shows this long before the timeout."
    )
    default_language: Literal["vi", "en"] = Field("vi", description="Language of a new session.")
    technician_pin_hash: str = Field(
        "",
        description="werkzeug hash of the technician PIN (`kiosk ui pin-hash`); empty: no access.",
    )
    technician_max_tries: int = Field(5, ge=1, le=20, description="Wrong PINs before the lock.")
    technician_lock_min: float = Field(15.0, gt=0, le=1440, description="Lock after wrong PINs.")
    liveness_time_limit_s: float = Field(
        8.0, ge=3, le=60, description="Time the citizen has for the liveness challenge."
    )


# --- spoken guidance (issue 18) -------------------------------------------------------------


class SpeechSection(Section):
    """Spoken guidance (docs/web-ui.md, "Spoken guidance"). A neural voice (a Piper .onnx voice
    through piper-tts, provisioned later) is future work: no adapter for it exists yet."""

    adapter: Literal["espeak", "wav", "off"] = Field(
        "espeak",
        description="espeak: espeak-ng piped into aplay (ALSA) on the kiosk; wav: espeak-ng into "
        "numbered WAV files (simulation, `--simulate`); off: silent.",
    )
    enabled: bool = Field(
        True, description="Speak the screens; the technician screen can switch it."
    )
    volume: int = Field(70, ge=0, le=100, description="Loudness 0-100 (50: espeak-ng's normal).")
    rate: int = Field(
        150, ge=80, le=300, description="Words per minute (espeak-ng -s; its default is 175)."
    )
    device: str = Field(
        "default", pattern=r"^[A-Za-z0-9_:,=.-]{1,64}$", description="ALSA device for aplay -D."
    )
    folder: Path | None = Field(
        None, description="wav: the WAV files go here; default <state_dir>/speech."
    )


class Config(Section):
    kiosk: KioskSection
    storage: StorageSection = StorageSection()
    web: WebSection = WebSection()
    camera: CameraSection = Field(
        default_factory=lambda: Picamera2Camera(type="picamera2"), description="Document camera."
    )
    buttons: ButtonsSection = ButtonsSection()
    tamper: TamperSection = TamperSection()
    led: LedSection = LedSection()
    printer: PrinterSection = Field(
        default_factory=lambda: UsbPrinter(type="usb", vendor_id=0x04B8, product_id=0x0202)
    )
    mqtt: MqttSection = MqttSection()
    models: ModelsSection = ModelsSection()
    logging: LoggingSection = LoggingSection()
    daemon: DaemonSection = DaemonSection()
    services: ServicesSection = ServicesSection()
    copies: CopiesSection = CopiesSection()
    certify: CertifySection = CertifySection()
    card_reader: CardReaderSection = CardReaderSection()
    update: UpdateSection = UpdateSection()
    ui: UiSection = UiSection()
    speech: SpeechSection = SpeechSection()

    def digest(self) -> str:
        """Short hash of the effective config, reported to the fleet to spot drift."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def simulated(self) -> Config:
        """The same kiosk with every hardware part replaced by its simulated twin."""
        camera = self.camera if isinstance(self.camera, FilesCamera) else FilesCamera(type="files")
        printer = SimulatedPrinter(
            type="simulated", **self.printer.model_dump(include=set(PrinterBase.model_fields))
        )
        return self.model_copy(
            update={
                "camera": camera,
                "printer": printer,
                "buttons": self.buttons.model_copy(update={"type": "simulated"}),
                "tamper": self.tamper.model_copy(update={"type": "simulated"}),
                "led": self.led.model_copy(update={"type": "simulated"}),
                "daemon": self.daemon.model_copy(update={"developer_panel": True}),
                "copies": self.copies.model_copy(update={"development_ca": True}),
                "card_reader": self.card_reader.model_copy(update={"adapter": "sim"}),
                "speech": self.speech.model_copy(update={"adapter": "wav"}),
            }
        )


# --- loading --------------------------------------------------------------------------


def load(path: Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, and validate; ConfigError names each bad key."""
    env = os.environ if env is None else env
    return load_tree(Config, path, env_prefix=ENV_PREFIX, env=env)
