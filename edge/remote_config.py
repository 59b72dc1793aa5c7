"""set-config from central: validate first, replace the file atomically, keep a backup, restart."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import tomlkit

from edge import config as cfg
from edge.errors import ConfigError
from protocol.files import fsync_dir

logger = logging.getLogger(__name__)

# Identity and trust are the technician's (provisioning), never a remote command's.
FORBIDDEN_PREFIXES = (
    "kiosk.id",
    "mqtt.trust_dir",
    "mqtt.ca_file",
    "mqtt.cert_file",
    "mqtt.key_file",
    "update.",  # the root-run updater's keys, install root and restart command (issue 9)
)


def apply_config_change(app: Any, args: dict[str, Any]) -> dict[str, Any]:
    """args: {"changes": {"dotted.key": value, ...}}. Applied by a clean restart."""
    from edge.fleet.commands import BadArgs

    path: Path | None = app.config_path
    if path is None:
        raise BadArgs("this kiosk runs on its built-in configuration; there is no file to change")
    changes = args.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise BadArgs('args.changes must be an object of {"dotted.key": value}')
    for key in changes:
        if not isinstance(key, str) or not key or key.startswith(FORBIDDEN_PREFIXES):
            raise BadArgs(f"{key!r} cannot be changed remotely")
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
