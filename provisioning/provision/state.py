"""The technician's options and the state file that makes `kiosk provision` resumable."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from edge.errors import BadInput, KioskError
from edge.fleet.certificates import _atomic_write
from edge.provisioned import STATE_SCHEMA

PIN_NAMES = ("back", "next", "ok", "cancel", "help", "tamper", "led")
# Options a resumed run takes from the first one when not given again.
REMEMBERED = (
    "enrol",
    "ca_file",
    "operators_dir",
    "broker_host",
    "broker_port",
    "provision_host",
    "serial",
)


@dataclass
class Options:
    """Everything a technician can answer up front (flags or an answers file)."""

    kiosk_id: str | None = None
    site: str | None = None
    location: str | None = None
    paper_width_mm: int | None = None
    pins: dict[str, int] = field(default_factory=dict)
    enrol: str | None = None  # "offline" | "online"
    csr_out: Path | None = None
    cert_in: Path | None = None
    ca_file: Path | None = None
    claim: str | None = None
    provision_host: str | None = None
    provision_port: int = 8884
    serial: str | None = None
    operators_dir: Path | None = None
    broker_host: str | None = None
    broker_port: int | None = None
    enrol_timeout_s: float = 60.0
    press_timeout_s: float = 30.0  # per button / door move in the self-test
    skip_selftest: bool = False
    auto_press: bool = False
    simulate: bool = False
    reprovision: bool = False

    @classmethod
    def from_file(cls, path: Path) -> dict[str, Any]:
        """An answers file (TOML or JSON) as option values; paths relative to the file."""
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else tomlkit.parse(text).unwrap()
        except (OSError, ValueError) as err:
            raise BadInput(f"cannot read the answers file {path}: {err}") from err
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadInput(f"{path}: unknown answers {', '.join(unknown)}")
        for key in ("csr_out", "cert_in", "ca_file", "operators_dir"):
            if isinstance(data.get(key), str):
                value = Path(data[key]).expanduser()
                data[key] = value if value.is_absolute() else (path.parent / value).resolve()
        return data


class ProvisionState:
    """The state file: which steps are done, with what, and the answers given."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}

    def load(self) -> ProvisionState:
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError as err:
                raise KioskError(f"{self.path} is damaged ({err}); use --reprovision") from err
        if self.data.get("schema") != STATE_SCHEMA:
            self.data = {
                "schema": STATE_SCHEMA,
                "run_id": str(uuid.uuid4()),
                "started_at": _now(),
                "steps": {},
                "answers": {},
            }
        return self

    def done(self, step: str) -> bool:
        return bool(self.data["steps"].get(step, {}).get("done_at"))

    def step(self, step: str) -> dict[str, Any]:
        return self.data["steps"].setdefault(step, {})

    def finish(self, step: str, **info: Any) -> None:
        self.data["steps"][step] = {**self.step(step), **info, "done_at": _now()}
        self.save()

    def undo(self, *steps: str) -> None:
        for step in steps:
            self.data["steps"].pop(step, None)
        self.save()

    def save(self) -> None:
        blob = json.dumps(self.data, indent=2, ensure_ascii=False).encode()
        _atomic_write(self.path, blob, 0o600)

    def archive(self) -> None:
        if self.path.exists():
            os.replace(self.path, self.path.with_name("state.previous.json"))
        self.data = {}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
