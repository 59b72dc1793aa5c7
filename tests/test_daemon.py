"""The whole daemon as a process: simulated kiosk, buttons, printing, self-test, signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from edge.store import DataKey, Store
from edge.store.outbox import Outbox
from edge.vision.ocr import find_tessdata
from tests.conftest import Daemon, start_daemon, wait_for, write_sim_config


def kiosk(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=timeout
    )


def test_simulated_kiosk_end_to_end(daemon: Daemon, tmp_path: Path) -> None:
    status, body = daemon.get("/api/status")
    assert status == 200
    assert body["kiosk_id"] == "TEST-01" and body["ready"]
    parts = body["parts"]
    assert all(parts[name]["ok"] for name in ("camera", "printer", "buttons", "tamper", "led"))
    assert parts["camera"]["frames"] > 0

    # A button pressed on gpiozero's mock pin reaches the app: status endpoint and the log.
    assert daemon.post("/api/dev/buttons/ok/press") == (200, {"pressed": "ok", "hold_s": 0.1})
    pressed = wait_for(
        lambda: [
            e
            for e in daemon.get("/api/status")[1]["recent_events"]
            if e["kind"] == "button.pressed"
        ]
    )
    assert pressed[0]["source"] == "ok"
    assert any(line.get("button") == "ok" for line in daemon.log())

    # Bad requests get a clear JSON error, not a crash.
    status, body = daemon.post("/api/dev/buttons/launch/press")
    assert status == 400 and body["error"]["code"] == "bad_input"
    status, body = daemon.post("/api/dev/buttons/ok/press?hold=abc")
    assert status == 400 and "hold" in body["error"]["message"]
    status, body = daemon.get("/api/nothing-here")
    assert status == 404 and body["error"]["code"] == "not_found"

    # A test print lands in the simulated printer's output file.
    status, outcome = daemon.post("/api/printer/test")
    assert status == 200 and outcome["printed"]
    (job,) = (tmp_path / "printer-out").glob("*.bin")
    assert job.name.endswith(f"-{outcome['job_id']}.bin")
    data = job.read_bytes()
    assert data.startswith(b"\x1b@") and b"TEST-01" in data  # QR data carries the kiosk id

    # The home page is Vietnamese.
    import urllib.request

    with urllib.request.urlopen(daemon.base + "/") as response:
        html = response.read().decode()
    assert 'lang="vi"' in html and "Xin chào" in html

    # SIGTERM: a clean stop, well inside 5 s.
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5
    messages = [line["msg"] for line in daemon.log()]
    assert messages[-1] == "stopped"
    with sqlite3.connect(tmp_path / "state" / "kiosk.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_logs_are_json_lines_without_personal_data(daemon: Daemon) -> None:
    daemon.post("/api/printer/test")
    daemon.stop()
    lines = daemon.log_path.read_text().splitlines()
    assert lines and all(json.loads(line)["level"] for line in lines)


def test_tamper_and_camera_loss_are_queued_for_central(daemon: Daemon, tmp_path: Path) -> None:
    daemon.post("/api/dev/door/open")
    scenes = tmp_path / "scenes"
    scenes.rename(tmp_path / "unplugged")
    wait_for(lambda: not daemon.get("/api/status")[1]["parts"]["camera"]["ok"])
    (tmp_path / "unplugged").rename(scenes)
    wait_for(lambda: daemon.get("/api/status")[1]["parts"]["camera"]["ok"], timeout=15)
    body = daemon.get("/api/status")[1]
    assert body["parts"]["led"]["pattern"] == "fast"  # door open
    daemon.stop()
    store = Store(tmp_path / "state" / "kiosk.db")
    store.open()
    try:
        outbox = Outbox(store, DataKey.load_or_create(tmp_path / "state" / "keys" / "data.key"))
        kinds = [m.payload["kind"] for m in outbox.pending()]
    finally:
        store.close()
    assert kinds[-3:] == ["tamper.opened", "camera.lost", "camera.recovered"]


def test_selftest_rows_turn_red_when_parts_are_pulled_and_recover(tmp_path: Path) -> None:
    config = write_sim_config(tmp_path)
    result = kiosk("selftest", "--json", "--config", str(config))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    verdicts = {c["part"]: c["verdict"] for c in report["checks"]}
    assert report["source"] == "local"
    assert set(verdicts) == {
        "camera",
        "buttons",
        "tamper",
        "led",
        "printer",
        "storage",
        "data-key",
        "ocr-vie",
        "ocr-osd",
        "models",
        "fonts",
    }
    assert set(verdicts.values()) == {"ok"}

    # Pull the camera (folder gone) and the printer (its output path becomes a plain file).
    (tmp_path / "scenes").rename(tmp_path / "scenes-away")
    shutil.rmtree(tmp_path / "printer-out")
    (tmp_path / "printer-out").write_text("not a folder")
    result = kiosk("selftest", "--json", "--config", str(config))
    assert result.returncode == 3  # essential hardware missing
    rows = {c["part"]: c for c in json.loads(result.stdout)["checks"]}
    assert rows["camera"]["verdict"] == "fail" and "not there" in rows["camera"]["detail"]
    assert rows["printer"]["verdict"] == "fail" and "offline" in rows["printer"]["detail"]
    assert rows["storage"]["verdict"] == "ok"

    # Put them back: green again.
    (tmp_path / "scenes-away").rename(tmp_path / "scenes")
    (tmp_path / "printer-out").unlink()
    (tmp_path / "printer-out").mkdir()
    result = kiosk("selftest", "--config", str(config))
    assert result.returncode == 0, result.stdout
    assert "FAIL" not in result.stdout


def test_a_missing_ocr_model_is_a_red_row_with_its_fix_and_the_daemon_still_starts(
    tmp_path: Path,
) -> None:
    # Tesseract's folder as on a machine where tesseract-ocr-osd was never installed.
    tessdata = tmp_path / "tessdata"
    tessdata.mkdir()
    (tessdata / "vie.traineddata").symlink_to(find_tessdata("vie", env={}) / "vie.traineddata")
    config = write_sim_config(tmp_path)
    d = start_daemon(config, env={"TESSDATA_PREFIX": str(tessdata)})
    try:
        status, body = d.get("/api/status")
        assert status == 200 and body["ready"]  # degraded, but serving citizens
        status, report = d.get("/api/selftest")
        rows = {c["part"]: c for c in report["checks"]}
        assert rows["ocr-vie"]["verdict"] == "ok"
        assert rows["ocr-osd"]["verdict"] == "fail"
        assert "sudo apt install tesseract-ocr-osd" in rows["ocr-osd"]["detail"]
    finally:
        d.stop()
    env = {**os.environ, "TESSDATA_PREFIX": str(tessdata)}
    local = subprocess.run(
        [sys.executable, "-m", "edge", "selftest", "--local", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert local.returncode == 1, local.stdout  # not a hardware failure: a file to install
    (row,) = [line for line in local.stdout.splitlines() if line.startswith("ocr-osd")]
    assert "FAIL" in row and "sudo apt install tesseract-ocr-osd" in row


def test_selftest_asks_the_running_daemon(daemon: Daemon, tmp_path: Path) -> None:
    result = kiosk("selftest", "--json", "--print", "--config", str(daemon.config))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["source"] == "daemon"
    printer = next(c for c in report["checks"] if c["part"] == "printer")
    assert "test page printed" in printer["detail"]
    assert len(list((tmp_path / "printer-out").glob("*.bin"))) == 1
    # The daemon keeps serving while its printer is pulled, and says so.
    shutil.rmtree(tmp_path / "printer-out")
    status, outcome = daemon.post("/api/printer/test")
    assert status == 503 and not outcome["printed"]
    jobs = kiosk("print", "jobs", "--json", "--status", "failed", "--config", str(daemon.config))
    (failed,) = json.loads(jobs.stdout)["jobs"]
    assert failed["id"] == outcome["job_id"]
    (tmp_path / "printer-out").mkdir()
    again = kiosk("print", "reprint", outcome["job_id"], "--config", str(daemon.config))
    assert again.returncode == 0, again.stderr
    assert len(list((tmp_path / "printer-out").glob("*.bin"))) == 1


def test_sd_notify_ready_watchdog_and_stopping(sim_config: Path, tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(20)
    try:
        d = start_daemon(sim_config, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"})
        try:
            messages = [sock.recv(4096).decode() for _ in range(3)]
            assert messages[0].startswith("READY=1")
            assert messages[1:] == ["WATCHDOG=1", "WATCHDOG=1"]
            assert d.stop() == 0
            rest = []
            sock.settimeout(1)
            try:
                while True:
                    rest.append(sock.recv(4096).decode())
            except TimeoutError:
                pass
            assert "STOPPING=1" in rest
        finally:
            if d.proc.poll() is None:
                d.proc.kill()
    finally:
        sock.close()


def test_kill_9_of_the_daemon_while_writing_leaves_database_intact(tmp_path: Path) -> None:
    config = write_sim_config(tmp_path)
    d = start_daemon(config)
    try:
        for i in range(30):  # door events and print jobs: both write to the database
            d.post(f"/api/dev/door/{'open' if i % 2 == 0 else 'closed'}")
            if i % 5 == 0:
                d.post("/api/printer/test")
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait(5)
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
    store = Store(tmp_path / "state" / "kiosk.db")
    store.open()
    try:
        assert store.integrity() == "ok"
        outbox = Outbox(store, DataKey.load_or_create(tmp_path / "state" / "keys" / "data.key"))
        pending = outbox.pending(limit=1000)
        assert pending, "door events should have been queued"
        seqs = [m.seq for m in pending]
        assert seqs == sorted(seqs)
        assert all(m.payload["kind"].startswith("tamper.") for m in pending)
        jobs = store.query("SELECT status FROM print_jobs")
        assert len(jobs) >= 5 and {r[0] for r in jobs} <= {"pending", "printed"}
    finally:
        store.close()
    # And it starts again on the same state.
    d = start_daemon(config)
    assert d.stop() == 0


def test_port_in_use_is_a_clear_hardware_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_sim_config(tmp_path, port=port)
        result = kiosk("run", "--config", str(config), timeout=30)
    assert result.returncode == 3
    assert "cannot listen on 127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
