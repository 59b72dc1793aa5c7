"""The console's configuration: one typed tree from TOML (unknown keys refused)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.errors import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSection(Section):
    url: str = Field(
        "sqlite:///fleet.db",
        description="SQLAlchemy URL: sqlite:///path.db, or postgresql+psycopg://user@host/db.",
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


class AlertsSection(Section):
    """Alert rules; a threshold of 0 (or a missing value) switches that rule off."""

    interval_s: float = Field(5.0, gt=0, description="How often the rules are evaluated.")
    offline_after_s: float = Field(300.0, ge=0, description="Offline longer than this alerts.")
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
    login_attempts: int = Field(5, ge=1, description="Wrong passwords before a lockout.")
    lockout_s: float = Field(300.0, ge=0)
    command_ttl_s: int = Field(300, ge=10, le=86400, description="Validity of a sent command.")
    metrics_public: bool = Field(
        True, description="/metrics without login (for a Prometheus scraper on the host)."
    )


class ProvisioningSection(Section):
    ca_cert: Path | None = Field(None, description="Center CA certificate (PEM).")
    ca_key: Path | None = Field(None, description="Center CA private key (PEM, unencrypted).")
    cert_days: int = Field(365, ge=1, le=3650, description="Validity of enrolled certificates.")
    token_ttl_s: float = Field(7 * 86400, gt=0, description="Claim tokens expire after this.")


class DossiersSection(Section):
    seed_samples: bool = Field(True, description="Insert the sample dossiers into an empty table.")


class LoggingSection(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class FleetConfig(Section):
    store: StoreSection = StoreSection()
    mqtt: MqttSection = MqttSection()
    alerts: AlertsSection = AlertsSection()
    web: WebSection = WebSection()
    provisioning: ProvisioningSection = ProvisioningSection()
    dossiers: DossiersSection = DossiersSection()
    logging: LoggingSection = LoggingSection()


def load_config(path: Path | None) -> FleetConfig:
    """The config file (or defaults without one); relative paths stay relative to the cwd."""
    if path is None:
        return FleetConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read {path}: {err}") from err
    try:
        return FleetConfig.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors(include_url=False)
        )
        raise ConfigError(f"{path} is not valid: {problems}") from err
