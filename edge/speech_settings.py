"""The technician's speech on/off and volume, kept in the kv table over the config's values.

The newest setting wins: a saved setting remembers the config values it was made against, and
once the config says something else (set-config from central, or an edit on the device) the
config's values apply again and the saved setting is dropped."""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

from edge import config as cfg
from edge.ports.speech import Speech
from edge.store import Store

logger = logging.getLogger(__name__)

KV_KEY = "speech.settings"


def _config_values(section: cfg.SpeechSection) -> dict[str, Any]:
    return {"enabled": section.enabled, "volume": section.volume}


def saved(store: Store, section: cfg.SpeechSection) -> dict[str, Any] | None:
    """{"enabled", "volume"} set by a technician and still newer than the config, or None."""
    raw = store.get_kv(KV_KEY)
    if not raw:
        return None
    try:
        value = json.loads(raw)
        setting = {"enabled": bool(value["enabled"]), "volume": int(value["volume"])}
        made_against = value["config"]
    except (ValueError, KeyError, TypeError):
        logger.warning("stored speech setting unreadable: the config's applies")
        return None
    if made_against != _config_values(section):
        return None  # the config changed after the technician's setting: it is newer
    return setting


def apply_saved(speech: Speech, store: Store, section: cfg.SpeechSection) -> None:
    setting = saved(store, section)
    if setting is not None:
        speech.configure(**setting)


def save(
    conn: sqlite3.Connection,
    section: cfg.SpeechSection,
    *,
    enabled: bool,
    volume: int,
) -> None:
    """Inside the caller's transaction, so the audit row commits with the setting."""
    value = {"enabled": enabled, "volume": volume, "config": _config_values(section)}
    conn.execute(
        "INSERT INTO kv(key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (KV_KEY, json.dumps(value)),
    )
