"""`kiosk factory-reset`: keys shredded, state removed, the config back to a blank kiosk."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from edge import config as cfg
from provisioning.provision.files import Paths, edit_config

logger = logging.getLogger(__name__)


def shred(path: Path) -> None:
    """Overwrite a file with random bytes, sync, then unlink. On flash (SD card, eMMC) wear
    levelling may keep old blocks: the data key is what makes the database unreadable."""
    try:
        size = path.stat().st_size
        with path.open("r+b") as f:
            f.write(os.urandom(max(size, 1)))
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        pass
    path.unlink(missing_ok=True)


def factory_reset(config: cfg.Config, config_path: Path) -> dict[str, Any]:
    """Keys shredded, the state directory (database, outbox, print jobs, provisioning state)
    removed, the config back to an unprovisioned kiosk with fleet reporting off. The update
    signing keys are root's (setup-pi.sh) and stay: they are not the kiosk's identity."""
    paths = Paths.of(config, config_path)
    removed: list[str] = []
    secrets = [paths.key_file, paths.pending_key, config.storage.data_key_path]
    secrets += [paths.key_file.with_name(paths.key_file.name + ".bak")]
    for secret in secrets:
        if secret.exists():
            shred(secret)
            removed.append(str(secret))
    if paths.state_dir.exists():
        for item in sorted(paths.state_dir.rglob("*"), reverse=True):
            if item.is_file() and not item.is_symlink():
                shred(item)
        shutil.rmtree(paths.state_dir, ignore_errors=True)
        removed.append(str(paths.state_dir))
    for public in (paths.cert_file, paths.cert_file.with_name(paths.cert_file.name + ".bak")):
        if public.exists():
            public.unlink()
            removed.append(str(public))
    for directory in (paths.trust_dir,):
        if directory.exists():
            shutil.rmtree(directory)
            removed.append(str(directory))
    edit_config(
        config_path,
        {
            "kiosk.id": "UNPROVISIONED",
            "kiosk.site": "",
            "kiosk.location": "",
            "mqtt.type": "off",
        },
    )
    logger.warning("factory reset done", extra={"removed": len(removed)})
    return {"reset": True, "removed": removed}
