"""Hardware and storage self-test: one row per part, shared by `kiosk selftest` and the daemon."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from edge.camera import CameraFeed
from edge.config import Config
from edge.controls import Controls
from edge.errors import HardwareUnavailable
from edge.ports.camera import Camera
from edge.printing import PrintQueue, print_test_page
from edge.receipts import FONT_BOLD, FONT_DIR, FONT_REGULAR
from edge.store import Store
from protocol.crypto import key_file_problem

Verdict = Literal["ok", "warn", "fail"]

FONT_FILES = (FONT_REGULAR.name, FONT_BOLD.name)


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
            return Check(
                "models",
                "fail",
                f"no manifest at {manifest_path}; fix: set models.dir to the release's models/ folder",
            )
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
            problems.append(
                f"fix: restore {models_dir} from the release (the files and their licences ship "
                "in the repository's models/)"
            )
            return Check("models", "fail", "; ".join(problems))
        if not entries:
            return Check("models", "ok", "manifest lists no models yet", essential=False)
        return Check("models", "ok", f"{len(entries)} models present, sha256 verified")

    return _guard("models", True, run)


def check_ocr_models(
    *, env: Mapping[str, str] | None = None, dirs: Iterable[Path] | None = None
) -> list[Check]:
    """Tesseract's models, found where the reader finds them: `vie` reads the documents, `osd`
    turns a page laid down sideways upright (without it a sideways page is certified sideways)."""
    from edge.vision.ocr import OcrUnavailable, find_tessdata, install_command

    rows = []
    for lang, use in (("vie", "reads Vietnamese documents"), ("osd", "turns pages upright")):
        try:
            folder = find_tessdata(lang, env=env, dirs=dirs)
        except OcrUnavailable:
            rows.append(
                Check(
                    f"ocr-{lang}",
                    "fail",
                    f"{lang}.traineddata missing; fix: {install_command(lang)}",
                )
            )
            continue
        size = (folder / f"{lang}.traineddata").stat().st_size
        rows.append(
            Check(f"ocr-{lang}", "ok", f"{folder}/{lang}.traineddata ({size // 1024} KiB), {use}")
        )
    return rows


def check_fonts(font_dir: Path = FONT_DIR) -> Check:
    """The DejaVu fonts the receipts and the copies' PDF are drawn with (Vietnamese glyphs)."""

    def run() -> Check:
        bad = []
        for name in FONT_FILES:
            path = font_dir / name
            # A TrueType file starts with the version 1.0 tag; anything else cannot be drawn with.
            if not path.is_file() or path.read_bytes()[:4] != b"\x00\x01\x00\x00":
                bad.append(name)
        if bad:
            return Check(
                "fonts",
                "fail",
                f"missing or damaged in {font_dir}: {', '.join(bad)}; fix: reinstall kiosk-edge "
                "(the fonts ship inside the package)",
            )
        return Check("fonts", "ok", f"{', '.join(FONT_FILES)} in {font_dir}")

    return _guard("fonts", True, run)


def check_runtime_files(models_dir: Path) -> list[Check]:
    """Every file the kiosk needs at run time beside its code: OCR models, face models, fonts."""
    return [*check_ocr_models(), check_models(models_dir), check_fonts()]


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
