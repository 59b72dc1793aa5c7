"""Runs `python -m edge run --simulate` in a throwaway state dir and watches it as systemd would."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.registry import BenchError
from edge import config as cfg

logger = logging.getLogger(__name__)

COMMAND = [sys.executable, "-m", "edge", "run", "--simulate"]
READY_TIMEOUT_S = 60.0
HTTP_TIMEOUT_S = 5.0
KILL_AFTER_S = 10.0
# Inherited variables that would change which config, port or notify socket the daemon uses.
_SCRUBBED = ("KIOSK_", "NOTIFY_SOCKET", "WATCHDOG_", "LISTEN_")


@dataclass(slots=True)
class Daemon:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    ready_s: float

    def health(self) -> int:
        """HTTP status of GET /api/health."""
        url = f"http://127.0.0.1:{self.port}/api/health"
        try:
            with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code
        except (urllib.error.URLError, OSError) as err:
            raise BenchError(f"GET {url} failed: {err}{self.log_tail()}") from err

    def require_health(self) -> None:
        status = self.health()
        if status != 200:
            raise BenchError(f"/api/health answered {status}, not 200{self.log_tail()}")

    def rss_mb(self) -> float:
        """Resident set size (VmRSS) in MB of 2^20 bytes."""
        try:
            lines = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        except OSError as err:
            raise BenchError(f"cannot read the daemon's memory: {err}") from err
        for line in lines:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise BenchError("no VmRSS in /proc/<pid>/status")

    def idle(self, seconds: float) -> None:
        """Let the daemon run; it must not exit meanwhile."""
        try:
            code = self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            return
        raise BenchError(f"daemon exited with code {code} while idle{self.log_tail()}")

    def terminate(self) -> float:
        """SIGTERM, then the seconds until the process has exited; it must exit with 0."""
        started = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(KILL_AFTER_S)
        except subprocess.TimeoutExpired as err:
            raise BenchError(
                f"daemon still running {KILL_AFTER_S:.0f} s after SIGTERM{self.log_tail()}"
            ) from err
        elapsed = time.perf_counter() - started
        if code != 0:
            raise BenchError(f"daemon exited with code {code} after SIGTERM{self.log_tail()}")
        return elapsed

    def log_tail(self, lines: int = 15) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n  daemon log:\n    " + "\n    ".join(tail) if tail else ""


@contextmanager
def simulated_daemon(tree: Path | None = None) -> Iterator[Daemon]:
    """A freshly started simulated daemon, past READY=1; killed on the way out whatever happens.
    tree: run the code of another checkout (bench/screens.py --compare), not this one."""
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kiosk-bench-")))
        notify = stack.enter_context(_notify_socket(tmp / "notify"))
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
        env |= {
            "XDG_STATE_HOME": str(tmp),
            "KIOSK_WEB__PORT": str(port),
            "NOTIFY_SOCKET": str(tmp / "notify"),
        }
        if cfg.DEFAULT_PATH.exists():
            # --simulate then starts from this kiosk's own config and its state_dir; keep the
            # bench away from the real database and key.
            env["KIOSK_STORAGE__STATE_DIR"] = str(tmp / "kiosk-edge-sim")
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
        log_path = tmp / "daemon.log"
        log = stack.enter_context(log_path.open("wb"))
        started = time.perf_counter()
        process = subprocess.Popen(
            COMMAND,
            env=env,
            cwd=tree,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(_kill, process)
        daemon = Daemon(process, port, log_path, ready_s=0.0)
        _wait_ready(notify, daemon)
        daemon.ready_s = time.perf_counter() - started
        yield daemon


@contextmanager
def _notify_socket(path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(str(path))
    except OSError as err:
        sock.close()
        raise BenchError(f"cannot bind the notify socket {path}: {err}") from err
    try:
        yield sock
    finally:
        sock.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(notify: socket.socket, daemon: Daemon) -> None:
    """Block until a datagram with READY=1 arrives; fail if the daemon exits or is too slow."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    notify.settimeout(0.2)  # short, so an early exit of the daemon is noticed
    while time.monotonic() < deadline:
        try:
            message = notify.recv(4096)
        except TimeoutError:
            code = daemon.process.poll()
            if code is not None:
                raise BenchError(
                    f"daemon exited with code {code} before READY=1{daemon.log_tail()}"
                ) from None
            continue
        if b"READY=1" in message.split(b"\n"):
            return
    raise BenchError(f"no READY=1 within {READY_TIMEOUT_S:.0f} s{daemon.log_tail()}")


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if still alive after KILL_AFTER_S; always reaps the process."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(KILL_AFTER_S)
    except subprocess.TimeoutExpired:
        logger.warning(
            "daemon %d ignored SIGTERM for %.0f s; killing it", process.pid, KILL_AFTER_S
        )
        process.kill()
        process.wait()
