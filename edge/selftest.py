"""Hardware and storage self-test: one row per part, shared by `kiosk selftest` and the daemon."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from edge.camera import CameraFeed
from edge.config import Config
from edge.controls import Controls
from edge.errors import HardwareUnavailable
from edge.ports.camera import Camera
from edge.printing import PrintQueue, print_test_page
from edge.store import Store
from edge.store.crypto import key_file_problem

Verdict = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Check:
    part: str
    verdict: Verdict
    detail: str
    essential: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _guard(part: str, essential: bool, fn: Callable[[], Check]) -> Check:
    """A check that crashes is a failed check, not a crashed self-test."""
    try:
        return fn()
    except Exception as err:
        return Check(part, "fail", f"{type(err).__name__}: {err}", essential)


def check_camera(source: CameraFeed | Camera, timeout: float = 3.0) -> Check:
    def run() -> Check:
        if isinstance(source, CameraFeed):
            frame = source.wait_frame(timeout)
            if frame is None:
                state = source.state()
                return Check("camera", "fail", f"no frame in {timeout:.0f} s: {state.detail}")
            where = source.camera.describe()
        else:
            try:
                source.open()
                frame = source.read()
            except HardwareUnavailable as err:
                return Check("camera", "fail", str(err))
            finally:
                source.close()
            where = source.describe()
        h, w = frame.shape[:2]
        return Check("camera", "ok", f"{w}x{h} frame from {where}")

    return _guard("camera", True, run)


def check_printer(queue: PrintQueue, config: Config, *, print_test: bool) -> Check:
    def run() -> Check:
        status = queue.status()
        where = queue.transport.describe()
        if not status.online:
            return Check("printer", "fail", f"{where}: offline ({status.detail})")
        if status.paper == "out" or status.cover_open:
            what = "out of paper" if status.paper == "out" else "cover open"
            return Check("printer", "fail", f"{where}: {what}")
        if print_test:
            outcome = print_test_page(queue, config)
            if not outcome.printed:
                return Check("printer", "fail", f"{where}: test page failed: {outcome.error}")
            detail = f"{where}: test page printed (job {outcome.job_id})"
        else:
            detail = f"{where}: online"
        if status.paper == "near-end":
            return Check("printer", "warn", f"{detail}; paper near end")
        return Check("printer", "ok", f"{detail}; paper {status.paper}")

    return _guard("printer", True, run)


def check_controls(controls: Controls) -> list[Check]:
    status = controls.status()
    rows = []
    buttons = status["buttons"]
    if not buttons["ok"]:
        rows.append(Check("buttons", "fail", buttons["error"]))
    else:
        stuck = [name for name, down in buttons["pressed"].items() if down]
        pins = ", ".join(f"{n}={p}" for n, p in buttons["pins"].items())
        if stuck:
            rows.append(Check("buttons", "warn", f"held down now (stuck?): {', '.join(stuck)}"))
        else:
            rows.append(Check("buttons", "ok", f"{len(buttons['pressed'])} readable, BCM {pins}"))
    tamper = status["tamper"]
    if tamper["type"] == "none":
        rows.append(Check("tamper", "warn", "no tamper switch configured", essential=False))
    elif not tamper["ok"]:
        rows.append(Check("tamper", "fail", tamper["error"], essential=False))
    else:
        verdict: Verdict = "ok" if tamper["door"] == "closed" else "warn"
        rows.append(Check("tamper", verdict, f"door {tamper['door']}", essential=False))
    led = status["led"]
    if led["type"] == "none":
        rows.append(Check("led", "warn", "no status LED configured", essential=False))
    elif not led["ok"]:
        rows.append(Check("led", "fail", led["error"], essential=False))
    else:
        rows.append(Check("led", "ok", f"pattern {led['pattern']}", essential=False))
    return rows


def check_storage(store: Store, config: Config) -> Check:
    def run() -> Check:
        state_dir = config.storage.state_dir
        probe = state_dir / ".selftest-probe"
        probe.write_bytes(b"ok")
        probe.unlink()
        integrity = store.integrity()
        if integrity != "ok":
            return Check("storage", "fail", f"database integrity: {integrity}")
        free_mb = shutil.disk_usage(state_dir).free // 2**20
        detail = f"{state_dir} writable, database ok (schema {store.schema_version()}), {free_mb} MB free"
        if free_mb < config.storage.min_free_mb:
            return Check("storage", "warn", f"{detail}: below {config.storage.min_free_mb} MB")
        return Check("storage", "ok", detail)

    return _guard("storage", True, run)


def check_key(path: Path) -> Check:
    problem = key_file_problem(path)
    if problem:
        return Check("data-key", "fail", problem)
    return Check("data-key", "ok", f"{path} mode 0600, owned by the daemon's user")


def check_models(models_dir: Path) -> Check:
    def run() -> Check:
        manifest_path = models_dir / "manifest.json"
        if not manifest_path.is_file():
            return Check("models", "fail", f"no manifest at {manifest_path}")
        manifest = json.loads(manifest_path.read_text())
        entries = manifest.get("models", [])
        missing, mismatched = [], []
        for entry in entries:
            path = models_dir / entry["file"]
            if not path.is_file():
                missing.append(entry["name"])
            elif hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
                mismatched.append(entry["name"])
        if missing or mismatched:
            problems = [f"missing: {', '.join(missing)}"] if missing else []
            problems += [f"sha256 mismatch: {', '.join(mismatched)}"] if mismatched else []
            return Check("models", "fail", "; ".join(problems))
        if not entries:
            return Check("models", "ok", "manifest lists no models yet", essential=False)
        return Check("models", "ok", f"{len(entries)} models present, sha256 verified")

    return _guard("models", True, run)


def exit_code(checks: list[Check]) -> int:
    """0 all essential parts fine; 3 an essential hardware part failed; 1 anything else failed."""
    failed = [c for c in checks if c.verdict == "fail" and c.essential]
    if not failed:
        return 0
    hardware = {"camera", "printer", "buttons"}
    if any(c.part in hardware for c in failed):
        return 3
    return 1


def render_table(checks: list[Check]) -> str:
    marks = {"ok": "OK  ", "warn": "WARN", "fail": "FAIL"}
    width = max(len(c.part) for c in checks)
    lines = [f"{'part'.ljust(width)}  result  detail"]
    for c in checks:
        flag = "" if c.essential else " (non-essential)"
        lines.append(f"{c.part.ljust(width)}  {marks[c.verdict]}    {c.detail}{flag}")
    return "\n".join(lines)
