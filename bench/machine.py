"""What the figures were measured on: CPU, cores, memory, OS, Python, kiosk-edge version."""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from edge import __version__

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Machine:
    cpu: str
    cores: int
    ram_gb: float
    os: str
    python: str
    kiosk_edge: str
    board: str | None  # device-tree model on ARM boards, e.g. "Raspberry Pi 4 Model B Rev 1.5"

    @property
    def is_pi(self) -> bool:
        return bool(self.board and self.board.startswith("Raspberry Pi"))

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"is_pi": self.is_pi}


def describe() -> Machine:
    return Machine(
        cpu=_cpu_model(),
        cores=os.cpu_count() or 0,
        ram_gb=round(_meminfo_kb("MemTotal") / 2**20, 1),
        os=f"{_os_name()} (kernel {platform.release()}, {platform.machine()})",
        python=platform.python_version(),
        kiosk_edge=__version__,
        board=_read(Path("/proc/device-tree/model")),
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip("\0\n ") or None
    except OSError:
        return None


def _cpu_model() -> str:
    fields: dict[str, str] = {}
    for line in (_read(Path("/proc/cpuinfo")) or "").splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    # x86 has "model name"; Raspberry Pi kernels have "Model" (the board) or only "CPU part".
    return (
        fields.get("model name")
        or fields.get("Model")
        or fields.get("Hardware")
        or platform.processor()
        or "unknown"
    )


def _meminfo_kb(key: str) -> int:
    for line in (_read(Path("/proc/meminfo")) or "").splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def _os_name() -> str:
    for line in (_read(Path("/etc/os-release")) or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()
