"""systemd notify protocol (READY, WATCHDOG, STOPPING); a no-op when not run by systemd."""

from __future__ import annotations

import logging
import os
import socket
import threading

logger = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send one sd_notify datagram; False when there is no NOTIFY_SOCKET or it failed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError as err:
        logger.warning("sd_notify failed: %s", err)
        return False


def watchdog_interval() -> float | None:
    """Half of WatchdogSec (as systemd recommends), when the watchdog is on for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6 / 2
    except ValueError:
        return None


class Watchdog:
    """Pings WATCHDOG=1 while healthy() says so; a hung daemon stops pinging and is restarted."""

    def __init__(self, healthy, interval: float) -> None:
        self._healthy = healthy
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if self._healthy():
                notify("WATCHDOG=1")
            else:
                logger.error("daemon unhealthy: not pinging the systemd watchdog")
