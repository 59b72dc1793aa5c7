"""The machine part of telemetry, read from /proc and /sys (no subprocess, no extra library)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PROC = Path("/proc")
THERMAL = Path("/sys/class/thermal")
# Raspberry Pi firmware's under-voltage / throttling bits (vcgencmd get_throttled, as a file).
PI_THROTTLED = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
# Zones that measure the SoC rather than a battery or a Wi-Fi chip, by kernel driver name.
_CPU_ZONES = ("cpu", "soc", "x86_pkg_temp", "k10temp", "coretemp", "acpitz")


def disk_free_mb(path: Path) -> int:
    """Free megabytes (for the daemon's user) on the filesystem holding path."""
    return shutil.disk_usage(path).free // 2**20


def system_metrics(
    *, disk_path: Path = Path("/"), proc: Path = PROC, thermal: Path = THERMAL
) -> dict[str, Any]:
    """Uptime, CPU load and temperature, memory and disk; a part that cannot be read is None."""
    return {
        "uptime_s": _uptime(proc),
        "load": _load(proc),
        "cpu_count": os.cpu_count(),
        "cpu_temp_c": cpu_temperature(thermal),
        "memory": _memory(proc),
        "disk": _disk(disk_path),
        "throttled": _throttled(),
    }


def cpu_temperature(thermal: Path = THERMAL) -> float | None:
    """Hottest CPU-like thermal zone in °C, or None on a machine without one."""
    best: float | None = None
    try:
        zones = sorted(thermal.glob("thermal_zone*"))
    except OSError:
        return None
    for zone in zones:
        try:
            kind = (zone / "type").read_text().strip().lower()
            millidegrees = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        if not any(name in kind for name in _CPU_ZONES):
            continue
        celsius = round(millidegrees / 1000, 1)
        best = celsius if best is None else max(best, celsius)
    return best


def _uptime(proc: Path) -> float | None:
    try:
        return round(float((proc / "uptime").read_text().split()[0]), 1)
    except (OSError, ValueError, IndexError):
        return None


def _load(proc: Path) -> list[float] | None:
    try:
        return [float(x) for x in (proc / "loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def _memory(proc: Path) -> dict[str, Any] | None:
    try:
        lines = (proc / "meminfo").read_text().splitlines()
        info = {
            k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in lines if ":" in line)
        }
        total, available = info["MemTotal"], info["MemAvailable"]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    return {
        "total_mb": total // 1024,
        "available_mb": available // 1024,
        "used_pct": round(100 * (total - available) / total, 1) if total else None,
    }


def _disk(path: Path) -> dict[str, Any] | None:
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return {
        "path": str(path),
        "total_mb": usage.total // 2**20,
        "free_mb": usage.free // 2**20,
        "used_pct": round(100 * usage.used / usage.total, 1) if usage.total else None,
    }


def _throttled() -> str | None:
    """'0x0' on a healthy Pi; any other bit means under-voltage or heat throttling happened."""
    try:
        return hex(int(PI_THROTTLED.read_text().strip(), 16))
    except (OSError, ValueError):
        return None
