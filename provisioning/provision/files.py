"""Where provisioning puts things, and edits of the config file (comments kept, validated)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit

from edge import config as cfg
from edge.errors import BadInput, ConfigError
from edge.fleet.certificates import PENDING_KEY, _atomic_write
from protocol.files import fsync_dir


@dataclass(frozen=True)
class Paths:
    config: Path
    state_dir: Path
    ca_file: Path
    cert_file: Path
    key_file: Path
    trust_dir: Path

    @property
    def work(self) -> Path:
        return self.state_dir / "provisioning"

    @property
    def pending_key(self) -> Path:
        return self.state_dir / "pki" / PENDING_KEY

    @classmethod
    def of(cls, config: cfg.Config, config_path: Path) -> Paths:
        base = config_path.parent
        m = config.mqtt
        return cls(
            config=config_path,
            state_dir=config.storage.state_dir,
            ca_file=m.ca_file or base / "pki" / "ca.crt",
            cert_file=m.cert_file or base / "pki" / "kiosk.crt",
            key_file=m.key_file or base / "pki" / "kiosk.key",
            trust_dir=m.trust_dir or base / "operators",
        )


# --- config file edits --------------------------------------------------------------------


BLANK_CONFIG = """# kiosk-edge configuration, written by `kiosk provision` (see config/config.example.toml).
[kiosk]
id = "UNPROVISIONED"
"""


def edit_config(path: Path, changes: dict[str, Any]) -> cfg.Config:
    """Set dotted keys (comments kept), validate the whole file, replace it atomically."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, BLANK_CONFIG.encode(), 0o644)
    document = tomlkit.parse(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        node: Any = document
        parts = key.split(".")
        for part in parts[:-1]:
            if part not in node:
                node[part] = tomlkit.table()
            node = node[part]
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = str(value) if isinstance(value, Path) else value
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(tomlkit.dumps(document))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        try:
            config = cfg.load(tmp, env={})
        except ConfigError as err:
            problems = "; ".join(str(p) for p in err.problems) or str(err)
            raise BadInput(f"these answers make an invalid configuration: {problems}") from err
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return config
