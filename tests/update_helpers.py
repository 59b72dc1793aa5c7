"""Update test parts: release trees whose tiny daemon answers a health check (or does not),
and a restart command that (re)starts whatever release `current` points to, as systemd would.

    python -m tests.update_helpers restart ROOT PORT    # the restart command of the tests
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SERVER = '''"""A release's daemon stand-in: /api/health answers like kiosk-edge's."""
import json, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSION = json.loads((HERE / ".release.json").read_text())["version"]
MODE = (HERE / "mode").read_text().strip()
if MODE == "crash":
    sys.exit(1)
if MODE == "slow":
    time.sleep(30)

class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        ready = MODE == "ok"
        body = json.dumps({"ready": ready, "kiosk_id": "TEST-01", "version": VERSION}).encode()
        self.send_response(200 if ready else 503)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
'''


def make_release(root: Path, *, mode: str = "ok", filler_bytes: int = 0) -> Path:
    """A release tree: server.py, its mode ("ok", "unhealthy", "crash", "slow"), some files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "server.py").write_text(SERVER)
    (root / "mode").write_text(mode)
    (root / "lib").mkdir(exist_ok=True)
    (root / "lib" / "module.py").write_text("VALUE = 1\n")
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True, exist_ok=True)
    if not (venv_bin / "python").is_symlink():
        (venv_bin / "python").symlink_to("/usr/bin/python3")  # as `python3 -m venv` makes it
    if filler_bytes:
        (root / "lib" / "filler.bin").write_bytes(os.urandom(filler_bytes))
    return root


def stop_server(root: Path) -> None:
    pidfile = root / "server.pid"
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            break
        if state == "Z":  # dead, waiting for init to reap it
            break
        time.sleep(0.01)
    pidfile.unlink(missing_ok=True)


def stop_strays(root: Path) -> None:
    """Kill every process still running a release under root. A SIGKILLed apply can leave a
    server behind whose pid never reached server.pid (its restart helper raced recovery's):
    found as an orphan server.py after a run of .ci/run."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.startswith(str(root).encode() + b"/") for arg in argv):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(proc.name), signal.SIGKILL)


def restart(root: Path, port: int) -> None:
    stop_server(root)
    server = root / "current" / "server.py"
    proc = subprocess.Popen(
        [sys.executable, str(server), str(port)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (root / "server.pid").write_text(str(proc.pid))


if __name__ == "__main__":
    if sys.argv[1] == "restart":
        restart(Path(sys.argv[2]), int(sys.argv[3]))
