"""The console's configuration: one typed tree from TOML with FLEET_* environment overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fleet.certify.config import CertifyConfig
from protocol.config import load_tree

ENV_PREFIX = "FLEET_"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSection(Section):
    url: str = Field(
        "sqlite:///fleet.db",
        description="SQLAlchemy URL: sqlite:///path.db, or postgresql+psycopg://user@host/db.",
    )
    data_key_file: Path = Field(
        Path("fleet-data.key"),
        description="AES-GCM key sealing records' data (personal data) at rest; made on first use.",
    )
    telemetry_keep_s: float = Field(
        2 * 86400, gt=0, description="Telemetry history kept per kiosk (charts show 24 h)."
    )
    events_keep_s: float = Field(30 * 86400, gt=0, description="Events kept this long.")


class MqttSection(Section):
    host: str = "localhost"
    port: int = Field(8883, ge=1, le=65535)
    tls: bool = True
    ca_file: Path | None = Field(None, description="Fleet CA that signed the broker.")
    cert_file: Path | None = Field(None, description="Central's certificate (CN fleet-central).")
    key_file: Path | None = None
    client_id: str = Field("fleet-central", description="The broker replaces it with the CN.")
    topic_prefix: str = "kiosk/v1"
    central_topic: str = Field("fleet/v1", description="Central's own tree (status, lists).")
    session_expiry_s: int = Field(
        7 * 86400, ge=0, description="The broker queues QoS 1 messages for central this long."
    )
    keepalive_s: int = Field(30, ge=5, le=3600)
    batch_max: int = Field(500, ge=1, le=10000, description="Messages stored per transaction.")
    shared_group: str = Field(
        "",
        pattern=r"^[A-Za-z0-9_-]{0,64}$",
        description="Several console workers (docs/fleet-console.md, 'Several workers'): each "
        "consumes the kiosks' topics through $share/<group>/..., with its own certificate and "
        "client id; empty (the default) is one console reading everything.",
    )


class AlertsSection(Section):
    """Alert rules; a threshold of 0 (or a missing value) switches that rule off."""

    interval_s: float = Field(5.0, gt=0, description="How often the rules are evaluated.")
    offline_after_s: float = Field(300.0, ge=0, description="Offline longer than this alerts.")
    silent_after_s: float = Field(
        600.0, ge=0, description="Online but no message for this long (a hung daemon) alerts."
    )
    paper: bool = Field(True, description="Paper out (error) and near end (warning).")
    camera: bool = Field(True, description="Camera lost.")
    tamper: bool = Field(True, description="Door opened.")
    cpu_temp_c: float = Field(80.0, ge=0, description="CPU temperature above this alerts.")
    disk_used_pct: float = Field(90.0, ge=0, le=100, description="Disk use above this alerts.")
    outbox_growing_s: float = Field(
        900.0, ge=0, description="Outbox depth rising for this long (no fall) alerts."
    )
    cert_expiry_days: float = Field(30.0, ge=0, description="Certificate expiring within this.")
    face_failures: int = Field(
        3, ge=0, description="identity.face_failures events within face_failures_window_s."
    )
    face_failures_window_s: float = Field(3600.0, gt=0)
    webhook_url: str | None = Field(
        None, description="POSTed a JSON document when an alert is raised or cleared."
    )
    webhook_timeout_s: float = Field(5.0, gt=0, le=60)


class WebSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535)
    secret_key_file: Path = Field(
        Path("fleet-secret.key"), description="Session signing key; made on first start."
    )
    session_minutes: int = Field(480, ge=5, le=7 * 24 * 60)
    cookie_secure: bool = Field(
        True,
        description="Session cookie sent over HTTPS only (the TLS proxy in front); false only "
        "for a plain-HTTP run on the loopback (development, tests).",
    )
    proxy_hops: int = Field(
        0,
        ge=0,
        le=5,
        description="Reverse proxies in front whose X-Forwarded-For/-Proto are trusted (1 "
        "behind the TLS proxy); 0 takes the TCP peer as the client address.",
    )
    login_attempts: int = Field(
        5, ge=1, description="Wrong passwords for one operator from one address per lockout_s."
    )
    address_attempts: int = Field(
        20, ge=1, description="Wrong passwords from one address, any operators, per lockout_s."
    )
    lockout_s: float = Field(
        300.0, ge=0, description="The window of both limits; kept in the store (restarts)."
    )
    command_ttl_s: int = Field(300, ge=10, le=86400, description="Validity of a sent command.")
    metrics_public: bool = Field(
        False, description="/metrics without login or token (it names every kiosk and site)."
    )
    metrics_token_file: Path | None = Field(
        None,
        description="A file holding the bearer token a Prometheus scraper sends to /metrics "
        "(authorization: credentials_file); without one, /metrics needs a logged-in operator.",
    )


class ProvisioningSection(Section):
    """Online enrolment (docs/provisioning.md) and central's half of certificate rotation."""

    ca_dir: Path | None = Field(
        None,
        description="The center CA directory kept by `kiosk-ca` (ca.key, ca.crt, issued.json).",
    )
    cert_days: int = Field(365, ge=1, le=825, description="Validity of the kiosks' certificates.")
    token_ttl_s: float = Field(7 * 86400, gt=0, description="A claim works this long.")
    secrets_key_file: Path = Field(
        Path("fleet-claims.key"),
        description="AES-GCM key sealing the claims' secrets in the database; made on first use.",
    )
    cert_file: Path | None = Field(
        None, description="The service's MQTT certificate, CN fleet-provisioning (the ACL's user)."
    )
    key_file: Path | None = None
    password_file: Path | None = Field(
        None, description="Mosquitto's password_file of the enrolment listener (claim accounts)."
    )
    reload_command: list[str] = Field(
        default_factory=lambda: ["systemctl", "reload", "mosquitto"],
        description="Makes the broker re-read the password file (SIGHUP).",
    )
    broker_host: str | None = Field(
        None, description="Told to enrolled kiosks (default: [mqtt] host)."
    )
    broker_port: int | None = Field(None, ge=1, le=65535, description="Default: [mqtt] port.")
    broker_protocol: Literal["auto", "5", "3.1.1"] = "auto"

    @property
    def service_enabled(self) -> bool:
        return bool(self.ca_dir and self.cert_file and self.key_file)


class DossiersSection(Section):
    seed_samples: bool = Field(True, description="Insert the sample dossiers into an empty table.")


class PaymentsSection(Section):
    """The bank's payment notifications (docs/payments.md): payOS's webhook on the console's
    web server, outside the operators' login."""

    checksum_key_file: Path | None = Field(
        None,
        description="A file holding the payOS channel's checksum key (HMAC-SHA256 of the "
        "notifications); without one the webhook answers 503 and nothing is confirmed.",
    )
    webhook_path: str = Field(
        "/bank/payos", pattern=r"^/[A-Za-z0-9/_.-]{1,100}$", description="The webhook's path."
    )
    max_body_bytes: int = Field(
        16384, ge=1024, le=1048576, description="A larger notification is refused (413)."
    )


class ElectionSection(Section):
    """Singletons elected among console workers on one PostgreSQL (docs/fleet-console.md,
    "Elected singletons"); on SQLite the one process runs them all."""

    worker: str = Field(
        "", description="This worker's name in /healthz and pg_stat_activity (default host-pid)."
    )
    heartbeat_s: float = Field(2.0, gt=0, le=60, description="How often a worker checks its lease.")
    lease_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="The server ends a silent leader session after this; a new leader waits "
        "this long before it starts the work (at least twice heartbeat_s).",
    )
    retry_s: float = Field(3.0, gt=0, le=300, description="How often a follower tries a lock.")

    @model_validator(mode="after")
    def _lease_covers_heartbeats(self) -> ElectionSection:
        if self.lease_s < 2 * self.heartbeat_s:
            raise ValueError("lease_s must be at least twice heartbeat_s")
        return self


class LoggingSection(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class FleetConfig(Section):
    store: StoreSection = StoreSection()
    mqtt: MqttSection = MqttSection()
    alerts: AlertsSection = AlertsSection()
    web: WebSection = WebSection()
    provisioning: ProvisioningSection = ProvisioningSection()
    dossiers: DossiersSection = DossiersSection()
    certify: CertifyConfig = CertifyConfig()
    payments: PaymentsSection = PaymentsSection()
    election: ElectionSection = ElectionSection()
    logging: LoggingSection = LoggingSection()


def load_config(path: Path | None, *, env: Mapping[str, str] | None = None) -> FleetConfig:
    """The config file (or defaults without one) with FLEET_<BLOCK>__<KEY> environment
    overrides; relative paths in the file, the store's SQLite file too, are relative to it."""
    env = os.environ if env is None else env
    config = load_tree(
        FleetConfig,
        path,
        env_prefix=ENV_PREFIX,
        env=env,
        message="{source} is not valid: {problems}",
    )
    if path is None or "url" not in config.store.model_fields_set:
        return config
    store = config.store.model_copy(update={"url": _sqlite_url(config.store.url, path.parent)})
    return config.model_copy(update={"store": store})


def _sqlite_url(url: str, base: Path) -> str:
    """sqlite:///fleet.db names a file relative to `base`; absolute, :memory: and file: stay."""
    prefix, _, rest = url.partition(":///")
    if not prefix.startswith("sqlite") or not rest or rest.startswith((":memory:", "file:")):
        return url
    name, sep, query = rest.partition("?")
    if Path(name).is_absolute():
        return url
    return f"{prefix}:///{(base / Path(name).expanduser()).resolve()}{sep}{query}"
