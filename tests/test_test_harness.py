"""The test harness itself: markers come from what a test uses, and screenshots reach
docs/screens/ only when asked (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import DOCS_SCREENS, REPO, UPDATE_SCREENS_ENV


def pytest_run(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> str:
    clean = {k: v for k, v in os.environ.items() if k != UPDATE_SCREENS_ENV}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


PROBE = """
def pytest_collection_finish(session):
    for item in session.items:
        print("MARKS", item.nodeid, ",".join(sorted({m.name for m in item.iter_markers()})))
"""


def markers(tmp_path: Path, *files: str) -> dict[str, set[str]]:
    """Each collected test's markers, as the run sees them (one collection, in a subprocess)."""
    (tmp_path / "marker_probe.py").write_text(PROBE)
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    out = pytest_run("--co", "-q", "-p", "marker_probe", *files, env={"PYTHONPATH": path})
    found = [line.split(" ") for line in out.splitlines() if line.startswith("MARKS ")]
    return {nodeid: set(filter(None, names.split(","))) for _, nodeid, names in found}


def test_markers_come_from_the_fixtures_and_helpers_a_test_uses(tmp_path: Path) -> None:
    marks = markers(
        tmp_path,
        "tests/test_web_ui_idle.py",  # the browser fixture; a kiosk daemon started in the body
        "tests/test_fleet_console_browser.py",  # Playwright started in the body; broker fixture
        "tests/test_daemon.py",  # the daemon fixture, or the daemon started in the body
        "tests/test_config.py",  # none of them
    )
    run = {"browser", "broker", "daemon"}
    idle = "tests/test_web_ui_idle.py::test_idle_warning_counts_down_then_wipes_everything"
    assert marks[idle] & run == {"browser", "daemon"}
    console = "tests/test_fleet_console_browser.py::test_login_dashboard_kiosk_page_and_a_command_in_chromium"
    assert marks[console] & run == {"browser", "broker"}
    assert "daemon" in marks["tests/test_daemon.py::test_simulated_kiosk_end_to_end"]
    assert "daemon" in marks["tests/test_daemon.py::test_sd_notify_ready_watchdog_and_stopping"]
    config = [nodeid for nodeid in marks if nodeid.startswith("tests/test_config.py")]
    assert config and not any(marks[nodeid] & run for nodeid in config)


def test_screenshots_go_to_docs_screens_only_when_asked(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_where(screens):\n    print('SCREENS=' + str(screens))\n")

    def where(*args: str, env: dict[str, str] | None = None) -> Path:
        out = pytest_run("-q", "-s", "-p", "tests.conftest", *args, str(probe), env=env)
        (line,) = [x for x in out.splitlines() if "SCREENS=" in x]
        return Path(line.split("SCREENS=", 1)[1])

    default = where()
    assert default.is_dir() and REPO not in default.parents
    assert where("--update-screens") == DOCS_SCREENS
    assert where(env={UPDATE_SCREENS_ENV: "1"}) == DOCS_SCREENS
