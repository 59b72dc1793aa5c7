"""waitress in a thread: a production WSGI server the daemon can start and stop."""

from __future__ import annotations

import logging
import threading
from typing import Any

from edge.errors import HardwareUnavailable

logger = logging.getLogger(__name__)


class WebServer:
    def __init__(self, app: Any, *, host: str, port: int, threads: int = 4) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.threads = threads
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.effective_port if self._server else self.requested_port

    def start(self) -> None:
        from waitress import create_server

        try:
            self._server = create_server(
                self.app,
                host=self.host,
                port=self.requested_port,
                threads=self.threads,
                ident="kiosk-edge",
                clear_untrusted_proxy_headers=True,
                # Read ahead on each connection, so that waitress sees a browser close it while
                # its request still runs: an event stream whose page has gone ends at once
                # (environ["waitress.client_disconnected"], web_ui/live.py).
                channel_request_lookahead=1,
            )
        except OSError as err:
            raise HardwareUnavailable(
                f"cannot listen on {self.host}:{self.requested_port}: {err.strerror or err}"
            ) from err
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self._server.run()
        except Exception:
            # asyncore raises EBADF on close(); only a failure while still wanted matters.
            if self._server is not None:
                logger.exception("web server stopped unexpectedly")

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 2.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        server.task_dispatcher.shutdown(timeout=timeout)
        worker = getattr(self.app, "extensions", {}).get("kiosk_worker")
        if worker is not None:  # the long work's thread (edge.services.jobs): no new jobs
            worker.close()
        if self._thread is not None:
            self._thread.join(timeout)
