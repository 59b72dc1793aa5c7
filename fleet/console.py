"""The console's composition root: store, MQTT ingest, alerts, key ring and the responders."""

from __future__ import annotations

import logging
import time
from typing import Any

from edge.errors import BadInput
from fleet.alerts import AlertEngine
from fleet.config import FleetConfig
from fleet.ingest import FleetIngest
from fleet.operators import KeyRing
from fleet.store import KIOSK_ID_PATTERN, FleetStore

logger = logging.getLogger(__name__)

# What the command form offers: name -> (label, default args). Kiosks refuse what they lack.
COMMANDS: dict[str, tuple[str, dict[str, Any]]] = {
    "print-test": ("In trang thử / print a test page", {}),
    "lock": ("Khóa (ngừng phục vụ) / lock: out of service", {}),
    "unlock": ("Mở khóa / unlock", {}),
    "restart": ("Khởi động lại / restart the daemon", {}),
    "collect-logs": ("Lấy nhật ký / collect logs", {"lines": 200}),
    "set-config": ("Đổi cấu hình / set config", {"changes": {}}),
    "rotate-certificate": ("Đổi chứng thư số / rotate certificate", {}),
    "update-catalog": ("Cập nhật danh mục thủ tục / update the procedure catalog", {}),
}


class Console:
    """Everything but the web server; the web app and the CLI take one of these."""

    def __init__(self, config: FleetConfig, *, store: FleetStore | None = None) -> None:
        self.config = config
        self.store = store or FleetStore(config.store.url)
        self.alerts = AlertEngine(self.store, config.alerts)
        self.ingest = FleetIngest(
            store=self.store, config=config.mqtt, listeners=[self.alerts.poke]
        )
        self.keys = KeyRing(attempts=config.web.login_attempts, lockout_s=config.web.lockout_s)
        self.services: list[Any] = []  # responders: attach(console), optional stop()
        self.revocations: Any = None  # fleet.responders.Revocations once attached
        self._started = False

    def start(self, *, mqtt: bool = True) -> Console:
        self.store.create()
        for service in self.services:
            service.attach(self)
        if mqtt:
            self.ingest.start()
        self.alerts.start()
        self._started = True
        return self

    def stop(self) -> None:
        if not self._started:
            return
        for service in reversed(self.services):
            stop = getattr(service, "stop", None)
            if stop is not None:
                stop()
        self.alerts.stop()
        self.ingest.stop()
        self.store.close()
        self._started = False

    # --- commands -------------------------------------------------------------------------

    def send_command(
        self,
        handle: str,
        name: str,
        args: dict[str, Any],
        *,
        kiosk_ids: list[str],
        ttl_s: float | None = None,
    ) -> list[dict[str, Any]]:
        """Sign one envelope per kiosk (each with its own id and target), log, publish."""
        if not kiosk_ids:
            raise BadInput("chọn ít nhất một kiosk / choose at least one kiosk")
        bad = [k for k in kiosk_ids if not KIOSK_ID_PATTERN.match(k)]
        if bad:
            raise BadInput(f"mã kiosk không hợp lệ / invalid kiosk id: {bad[0]}")
        ttl = ttl_s or self.config.web.command_ttl_s
        sent = []
        for kiosk_id in kiosk_ids:
            envelope = self.keys.sign(handle, name, args, target=kiosk_id, ttl_s=ttl)
            self.store.log_command(envelope, kiosk_id=kiosk_id, now=time.time())
            self.ingest.send_command(envelope, kiosk_id)
            logger.info(
                "command sent",
                extra={
                    "command": name,
                    "command_id": envelope["id"],
                    "kiosk": kiosk_id,
                    "operator": envelope["operator"],
                },
            )
            sent.append(envelope)
        return sent


def build_console(config: FleetConfig, *, store: FleetStore | None = None) -> Console:
    """The console with every responder the config enables."""
    from fleet.responders import DossierResponder, EnrolmentResponder, Housekeeping, Revocations

    console = Console(config, store=store)
    console.services += [DossierResponder(), Revocations(), Housekeeping()]
    if config.provisioning.ca_cert and config.provisioning.ca_key:
        console.services.append(EnrolmentResponder())
    return console
