"""The Pi's import check (setup-pi.sh ends with it): it names what fails, and why, and exits 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run(*modules: str, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "provisioning.pi_imports", *modules],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_modules_that_import_pass_and_say_where_they_came_from() -> None:
    result = run("numpy", "cv2")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[1]: line.split() for line in result.stdout.splitlines()}
    assert rows["numpy"][0] == "ok" and rows["numpy"][2] == "venv"
    assert rows["numpy"][3].startswith("2.")
    assert rows["cv2"][0] == "ok"


def test_an_apt_module_built_for_another_numpy_fails_the_check_loudly(tmp_path: Path) -> None:
    # What apt's simplejpeg does under the venv's numpy 2 (raspberrypi/picamera2 #1211).
    fake = tmp_path / "simplejpeg"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise ValueError('numpy.dtype size changed, may indicate binary incompatibility. "
        "Expected 96 from C header, got 88 from PyObject')\n"
    )
    result = run("numpy", "simplejpeg", "no_such_module_here", path=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok   numpy")
    assert lines[1].startswith("FAIL simplejpeg") and "numpy.dtype size changed" in lines[1]
    assert lines[2].startswith("FAIL no_such_module_here") and "ModuleNotFoundError" in lines[2]
    assert "simplejpeg, no_such_module_here" in result.stderr
    assert "docs/provisioning.md" in result.stderr


def test_without_arguments_it_checks_the_camera_stack() -> None:
    # This machine is not a Pi: picamera2 is absent, so the default check must fail, by name.
    result = run()
    assert result.returncode == 1
    for module in ("simplejpeg", "libcamera", "pidng", "av", "lgpio", "picamera2"):
        assert f" {module} " in result.stdout
    assert "picamera2.Picamera2" in result.stdout
