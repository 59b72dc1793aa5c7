"""set-config from central: validate first, replace the file atomically, keep a backup, restart.

Only the keys in ALLOWED may be changed remotely (docs/fleet.md, "Remote configuration"):
what an operator tunes day to day. Everything else (identity, trust, where the kiosk connects,
storage paths, hardware, technician access, payment account, how long personal data is kept,
developer switches, the updater)
is the technician's, on the device; a command naming such a key is refused whole, with the
reason, and nothing is changed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import types
import typing
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import BaseModel

from edge import config as cfg
from edge.errors import ConfigError
from protocol.files import fsync_dir

logger = logging.getLogger(__name__)

# key -> why an operator may change it remotely (the docs table repeats these, with an example).
ALLOWED: dict[str, str] = {
    "kiosk.site": "a text shown and printed",
    "kiosk.location": "a text shown to technicians and operators",
    "printer.paper_width_mm": "receipt layout, 58 or 80 (mm)",
    "mqtt.telemetry_interval_s": "how often telemetry is sent, 5-3600 s; not where",
    "logging.level": "verbosity; logs carry no personal data at any level",
    "services.areas": "the service areas tickets are taken for (letter and names)",
    "services.ticket_follow_url": "the http(s) link in a ticket's QR code",
    "services.priority_groups": "which self-declared groups get a priority ticket (site rule)",
    "services.queue_stats_max_age_s": "age past which central's queue figures are not shown",
    "services.dossier_timeout_s": "how long to wait for central's dossier answer",
    "services.dossier_per_session_per_minute": "rate limit of dossier questions",
    "services.dossier_per_kiosk_per_minute": "rate limit of dossier questions",
    "copies.fee_channel": "which channel's fee rules apply here: online, at-kiosk or at-counter",
    "copies.vietqr.purpose_prefix": "the start of the transfer note, a text",
    "ui.idle_timeout_s": "screen timeout; a session's data is wiped at the timeout",
    "ui.idle_warning_s": "how long the countdown shows before the timeout",
    "ui.default_language": "language of a new session, vi or en",
    "certify.wait_s": "how long a citizen waits for the officer before the request slip",
    "certify.office_open": "when the centre's officers start answering (HH:MM)",
    "certify.office_close": "when the centre's officers stop answering (HH:MM)",
    "certify.holidays": "the centre's days off besides weekends (ISO dates)",
    "card_reader.timeout_s": "how long the chip reader waits for a card to be laid on it",
    "speech.enabled": "spoken guidance on or off",
    "speech.volume": "loudness of the spoken guidance, 0-100",
    "speech.rate": "speed of the spoken guidance, 80-300 words per minute",
}

_ON_DEVICE = "a technician sets it on the device"
TRUST = f"it is a trust setting (TLS, certificates, keys, command checks); {_ON_DEVICE}"
IDENTITY = "it is the kiosk's identity, fixed at provisioning"
TIMEZONE = f"it dates copy codes and everything printed; {_ON_DEVICE}"
ENDPOINT = f"it decides where and how the kiosk connects (where records go); {_ON_DEVICE}"
STORAGE = f"it is a storage path (database, copy numbers, keys, models); {_ON_DEVICE}"
DEVELOPER = "it is a developer or simulation switch, never on in service"
UPDATE = "it steers the root-run updater, set by provisioning and its systemd unit"
ACCESS = f"it guards technician access to the kiosk; {_ON_DEVICE}"
IDENTITY_CHECK = f"it is part of checking the citizen's identity; {_ON_DEVICE}"
PAYMENT = f"it decides where citizens' fees are paid; {_ON_DEVICE}"
HARDWARE = f"it describes the device's hardware and where print jobs go; {_ON_DEVICE}"
SPEAKER = f"it decides what speaks and on which audio device; {_ON_DEVICE}"
LOCAL = f"it is a local setting of the device; {_ON_DEVICE}"
RETENTION = f"it decides how long personal data stays on the kiosk; {_ON_DEVICE}"
LOG_FORMAT = f"collect-logs and the journal read the JSON lines; {_ON_DEVICE}"
NOT_ALLOWED = "it is not on the remote-config allow-list (docs/fleet.md)"
UNKNOWN = "there is no such configuration key"
BLOCK = "it is a whole block: name each key (a block could carry keys that must stay fixed)"
VALUE = "give it a value (not null, not a block)"

# The first rule that matches a refused key gives its reason; a rule ending in "." or "_" is
# a prefix ("update." is every key of the update block).
_REFUSALS: tuple[tuple[str, str], ...] = (
    ("kiosk.id", IDENTITY),
    ("kiosk.timezone", TIMEZONE),
    ("mqtt.tls", TRUST),
    ("mqtt.ca_file", TRUST),
    ("mqtt.cert_file", TRUST),
    ("mqtt.key_file", TRUST),
    ("mqtt.trust_dir", TRUST),
    ("mqtt.clock_skew_s", TRUST),
    ("mqtt.max_command_ttl_s", TRUST),
    ("mqtt.", ENDPOINT),
    ("copies.signing_key", TRUST),
    ("copies.signing_cert", TRUST),
    ("copies.chain", TRUST),
    ("copies.trust_dir", TRUST),
    ("copies.revocation_file", TRUST),
    ("copies.tsa_url", TRUST),
    ("copies.development_ca", DEVELOPER),
    ("copies.sequence_floor", STORAGE),
    ("copies.retention_days", RETENTION),
    ("copies.purge_interval_s", RETENTION),
    ("services.dossier_cache_days", RETENTION),
    ("printer.keep_", RETENTION),
    ("copies.fee_rules", "fee rules are a file checked on the device (docs/fees.md)"),
    ("copies.vietqr.", PAYMENT),
    ("storage.state_dir", STORAGE),
    ("models.dir", STORAGE),
    ("daemon.developer_panel", DEVELOPER),
    ("update.", UPDATE),
    ("logging.format", LOG_FORMAT),
    ("ui.technician_", ACCESS),
    ("ui.liveness_", IDENTITY_CHECK),
    ("certify.print_copy", HARDWARE),
    ("certify.a4printer.", HARDWARE),
    ("card_reader.trust_dir", TRUST),
    ("card_reader.", HARDWARE),
    ("camera.", HARDWARE),
    ("buttons.", HARDWARE),
    ("tamper.", HARDWARE),
    ("led.", HARDWARE),
    ("speech.folder", STORAGE),
    ("speech.", SPEAKER),
    ("printer.", HARDWARE),
    ("web.", LOCAL),
    ("daemon.", LOCAL),
    ("storage.", LOCAL),
)


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    """The config blocks a field holds (several for a tagged union such as printer)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
        return [m for arg in typing.get_args(annotation) for m in _model_types(arg)]
    return []


def config_keys(
    model: type[BaseModel] = cfg.Config, prefix: str = ""
) -> tuple[frozenset[str], frozenset[str]]:
    """Every dotted key of the config tree, and every block (table) in it."""
    leaves: set[str] = set()
    blocks: set[str] = set()
    for name, field in model.model_fields.items():
        key = prefix + name
        children = _model_types(field.annotation)
        if not children:
            leaves.add(key)
            continue
        blocks.add(key)
        for child in children:
            child_leaves, child_blocks = config_keys(child, key + ".")
            leaves |= child_leaves
            blocks |= child_blocks
    return frozenset(leaves), frozenset(blocks)


_LEAVES, _BLOCKS = config_keys()


def refusal(key: Any, value: Any) -> str | None:
    """Why this change may not be made remotely, or None if it may."""
    if not isinstance(key, str) or key not in _LEAVES:
        return BLOCK if key in _BLOCKS else UNKNOWN
    if key not in ALLOWED:
        for rule, reason in _REFUSALS:
            if key == rule or (rule.endswith((".", "_")) and key.startswith(rule)):
                return reason
        return NOT_ALLOWED
    if value is None or isinstance(value, dict):
        return VALUE
    return None


def apply_config_change(app: Any, args: dict[str, Any]) -> dict[str, Any]:
    """args: {"changes": {"dotted.key": value, ...}}. Applied by a clean restart."""
    from edge.fleet.commands import BadArgs

    path: Path | None = app.config_path
    if path is None:
        raise BadArgs("this kiosk runs on its built-in configuration; there is no file to change")
    changes = args.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise BadArgs('args.changes must be an object of {"dotted.key": value}')
    refused = [(key, why) for key, value in changes.items() if (why := refusal(key, value))]
    if refused:
        # The first key with its reason in full, then the others' names: a result message is
        # cut at 200 characters, so what matters most comes first.
        key, why = refused[0]
        message = f"nothing changed: {_shown(key)} cannot be changed remotely: {why}"
        if len(refused) > 1:
            message += "; also refused: " + ", ".join(_shown(k) for k, _ in refused[1:])
        raise BadArgs(message)
    document = tomlkit.parse(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        _set(document, key.split("."), value)
    new_text = tomlkit.dumps(document)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new_text)
            f.flush()
            os.fsync(f.fileno())
        try:
            new = cfg.load(tmp)  # the whole file, exactly as the next start will read it
        except ConfigError as err:
            problems = "; ".join(str(p) for p in err.problems) or str(err)
            raise BadArgs(f"refused, nothing changed: {problems}") from err
        shutil.copy2(path, path.with_name(path.name + ".bak"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    logger.warning(
        "configuration changed remotely; restarting", extra={"keys": ",".join(sorted(changes))}
    )
    app.request_restart()
    return {"applied": sorted(changes), "digest": new.digest(), "restarting": True}


def _shown(key: Any) -> str:
    """A refused key as the message names it: a config key as is, anything else quoted, short."""
    text = key if isinstance(key, str) and key in _LEAVES | _BLOCKS else repr(key)
    return text if len(text) <= 60 else text[:59] + "…"


def _set(document: Any, parts: list[str], value: Any) -> None:
    node = document
    for part in parts[:-1]:
        if part not in node:
            node[part] = tomlkit.table()
        node = node[part]
        if not isinstance(node, dict):
            from edge.fleet.commands import BadArgs

            raise BadArgs(f"{'.'.join(parts)}: {part} is a value, not a block")
    node[parts[-1]] = value
