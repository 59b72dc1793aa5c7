"""Check that the venv imports Raspberry Pi OS's camera and GPIO modules: `python -m provisioning.pi_imports`.

On a Pi the venv is made with --system-site-packages so that apt's python3-picamera2 (and the
libcamera bindings it needs) are importable, while the venv pins its own numpy 2. An apt module
compiled against Bookworm's numpy 1.24 then fails to import ("numpy.dtype size changed"), which
happened with python3-simplejpeg (raspberrypi/picamera2 #1088, #1211). setup-pi.sh runs this
after every install, so a broken camera stack fails the setup instead of a citizen's visit.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

# What the kiosk imports on a Pi, directly or through picamera2: the camera library itself, its
# libcamera bindings, the JPEG encoder and DNG writer it imports at start, PyAV (its encoders),
# and the GPIO backend gpiozero uses on a Pi 5 / Bookworm.
PI_MODULES = ("numpy", "simplejpeg", "libcamera", "pidng", "av", "lgpio", "picamera2")


@dataclass(frozen=True)
class ImportResult:
    module: str
    ok: bool
    origin: str  # "venv", "apt" or "-"
    version: str
    error: str = ""


def check(module: str) -> ImportResult:
    try:
        mod = importlib.import_module(module)
    except Exception as err:  # any failure to import is the finding, whatever its type
        return ImportResult(module, False, "-", "-", f"{type(err).__name__}: {err}")
    return ImportResult(module, True, _origin(mod), str(getattr(mod, "__version__", "?")))


def check_picamera2_class() -> ImportResult:
    """The exact line setup-pi.sh promises works: `from picamera2 import Picamera2`."""
    try:
        from picamera2 import Picamera2  # noqa: F401
    except Exception as err:
        return ImportResult("picamera2.Picamera2", False, "-", "-", f"{type(err).__name__}: {err}")
    return ImportResult("picamera2.Picamera2", True, "apt", "-")


def _origin(mod: object) -> str:
    file = getattr(mod, "__file__", None)
    if not file:
        return "built-in"
    path = Path(file).resolve()
    if Path(sys.prefix).resolve() in path.parents:
        return "venv"
    if "dist-packages" in path.parts:
        return "apt"
    return str(path.parent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provisioning.pi_imports", description=__doc__)
    parser.add_argument(
        "modules",
        nargs="*",
        help=f"modules to import (default: {' '.join(PI_MODULES)} and Picamera2 itself)",
    )
    args = parser.parse_args(argv)
    results = [check(m) for m in args.modules or PI_MODULES]
    if not args.modules:
        results.append(check_picamera2_class())
    width = max(len(r.module) for r in results)
    for r in results:
        status = "ok  " if r.ok else "FAIL"
        detail = f"{r.origin:<6} {r.version}" if r.ok else r.error
        print(f"{status} {r.module:<{width}}  {detail}")
    failed = [r.module for r in results if not r.ok]
    if failed:
        print(
            f"\nThese do not import in {sys.prefix}: {', '.join(failed)}.\n"
            "'numpy.dtype size changed' means an apt module built for Bookworm's numpy 1.24 was\n"
            "loaded under the venv's numpy 2: the venv needs its own build of that module (the\n"
            "pi extra installs simplejpeg's: pip install '.[pi]'). See docs/provisioning.md,\n"
            "'picamera2 and numpy 2'.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
