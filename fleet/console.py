"""The console's composition root: store, MQTT ingest, alerts, key ring and the responders."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from fleet.alerts import AlertEngine
from fleet.config import FleetConfig
from fleet.ingest import FleetIngest
from fleet.leader import Leadership
from fleet.operators import KeyRing
from fleet.payments import PaymentService
from fleet.responders import (
    CertifyMail,
    CertifyResponder,
    DossierResponder,
    EnrolmentResponder,
    Housekeeping,
    RevocationBroadcast,
    Revocations,
)
from fleet.store import FleetStore
from protocol.errors import BadInput
from protocol.messages import KIOSK_ID_PATTERN

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
    # No default args for these two: sent without args the kiosk refuses them (bad_args).
    "update-catalog": ("Cập nhật danh mục thủ tục / update the procedure catalog", {}),
    "update": ('Cập nhật phần mềm / software update ({"url": ...})', {}),
    # The kiosk's staff accounts from central: entries from `kiosk-fleet staff-account`.
    "set-staff": ("Tài khoản nhân viên / staff accounts", {"accounts": []}),
}


def open_store(config: FleetConfig) -> FleetStore:
    """The configured store; create() reads its key file and makes the tables."""
    return FleetStore(config.store.url, data_key=config.store.data_key_file)


class Console:
    """Everything but the web server; the web app and the CLI take one of these."""

    def __init__(self, config: FleetConfig, *, store: FleetStore | None = None) -> None:
        self.config = config
        self.store = store or open_store(config)
        self.alerts = AlertEngine(self.store, config.alerts)
        self.ingest = FleetIngest(
            store=self.store, config=config.mqtt, listeners=[self.alerts.poke, self._on_batch]
        )
        self.ca: Any = None  # provisioning.ca.CertificateAuthority when [provisioning] has one
        self.ca_lock = threading.Lock()  # kiosk-ca's issued.json is read-modify-write
        self.accounts: Any = None  # fleet.provisioning.BrokerAccounts
        self._sealer: Any = None
        self._rotations: dict[str, str] = {}  # rotate-certificate command id -> session handle
        self.keys = KeyRing(
            attempts=config.web.login_attempts,
            address_attempts=config.web.address_attempts,
            lockout_s=config.web.lockout_s,
            session_s=config.web.session_minutes * 60,
        )
        self.services: list[Any] = []  # responders: attach(console), optional stop()
        # Services with a `role` run in one worker at a time: attached on winning the role,
        # stopped on losing it (fleet/leader.py); alert evaluation is the role "alerts".
        e = config.election
        self.leadership = Leadership(
            config.store.url,
            worker=e.worker,
            heartbeat_s=e.heartbeat_s,
            lease_s=e.lease_s,
            retry_s=e.retry_s,
        )
        self.revocations: Any = None  # fleet.responders.Revocations once attached
        self.shipments: Any = None  # fleet.dossiers.ShipmentSender once attached
        self.provisioning: Any = None  # fleet.provisioning.ProvisioningService when enabled
        self.certifier: Any = None  # fleet.certify.service.Certifier when [certify] has an agency
        self.payments: Any = None  # fleet.payments.PaymentService once attached
        self._started = False
        self._mqtt = False  # serve --no-mqtt: a dashboard that cannot send commands

    def prepare(self) -> Console:
        """Tables, the CA and the broker accounts: what the CLI needs without threads."""
        self.store.create()
        p = self.config.provisioning
        if p.ca_dir and self.ca is None:
            from provisioning.ca import CertificateAuthority

            self.ca = CertificateAuthority(p.ca_dir)
        if p.password_file and self.accounts is None:
            from fleet.provisioning import BrokerAccounts

            self.accounts = BrokerAccounts(p.password_file, p.reload_command)
        return self

    def start(self, *, mqtt: bool = True) -> Console:
        self.prepare()
        for service in self.services:
            role = getattr(service, "role", None)
            if role is None:
                service.attach(self)
            else:
                self.leadership.add(role, functools.partial(service.attach, self), service.stop)
        self.leadership.add("alerts", self.alerts.start, self.alerts.stop)
        self.leadership.start()
        if mqtt:
            self.ingest.start()
        self._mqtt = mqtt
        self._started = True
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self.leadership.stop()  # the elected services and the alerts, then the locks
        for service in reversed(self.services):
            stop = getattr(service, "stop", None)
            if stop is not None and getattr(service, "role", None) is None:
                stop()
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
        publish: Callable[[dict[str, Any], str], object] | None = None,
    ) -> list[dict[str, Any]]:
        """Sign one envelope per kiosk (each with its own id and target), log, publish.

        publish: (envelope, kiosk id) -> None, for a sender without the console's ingest
        (`kiosk-fleet catalog push`); by default the ingest's connection."""
        if not kiosk_ids:
            raise BadInput("chọn ít nhất một kiosk / choose at least one kiosk")
        if publish is None and not self._mqtt:
            raise BadInput("không có kết nối broker (--no-mqtt) / no broker: nothing can be sent")
        bad = [k for k in kiosk_ids if not KIOSK_ID_PATTERN.match(k)]
        if bad:
            raise BadInput(f"mã kiosk không hợp lệ / invalid kiosk id: {bad[0]}")
        ttl = ttl_s or self.config.web.command_ttl_s
        sent = []
        for kiosk_id in kiosk_ids:
            envelope = self.keys.sign(handle, name, args, target=kiosk_id, ttl_s=ttl)
            self.store.log_command(envelope, kiosk_id=kiosk_id, now=time.time())
            (publish or self.ingest.send_command)(envelope, kiosk_id)
            logger.info(
                "command sent",
                extra={
                    "command": name,
                    "command_id": envelope["id"],
                    "kiosk": kiosk_id,
                    "operator": envelope["operator"],
                },
            )
            if name == "rotate-certificate" and "certificate" not in args:
                self._rotations[envelope["id"]] = handle
            sent.append(envelope)
        return sent

    # --- claims (online enrolment) ------------------------------------------------------------

    @property
    def sealer(self) -> Any:
        if self._sealer is None:
            from protocol.crypto import DataKey

            self._sealer = DataKey.load_or_create(self.config.provisioning.secrets_key_file)
        return self._sealer

    def create_claim(
        self, kiosk_id: str, *, site: str = "", serial: str = "", created_by: str
    ) -> str:
        """A one-time claim token `<claim_id>.<secret>` (shown once); its broker account."""
        from fleet.provisioning import create_claim

        return create_claim(
            self.store,
            self.sealer,
            kiosk_id,
            site=site,
            serial=serial,
            created_by=created_by,
            ttl_s=self.config.provisioning.token_ttl_s,
            accounts=self.accounts,
        )

    def operator_keys(self) -> list[dict[str, str]]:
        return [
            {"id": row["id"], "public_key": row["public_key"]}
            for row in self.store.operators()
            if not row["disabled"]
        ]

    # --- certificate rotation: central's half ----------------------------------------------

    def _on_batch(self, outcome: Any) -> None:
        if self.provisioning is not None and outcome.states:
            self.provisioning.kick()  # an enrolled kiosk's first birth ends its claim account
        for kiosk_id, result in outcome.command_results:
            handle = self._rotations.pop(str(result.get("id")), None)
            if handle is None or result.get("status") != "ok":
                continue
            csr = (result.get("result") or {}).get("csr")
            if isinstance(csr, str):
                self._finish_rotation(handle, kiosk_id, csr)

    def _finish_rotation(self, handle: str, kiosk_id: str, csr_pem: str) -> None:
        """The kiosk made a new key and sent its CSR: sign it with the center CA and send the
        certificate back in a second rotate-certificate, signed by the same operator."""
        if self.ca is None:
            logger.warning("rotation needs [provisioning] ca_dir", extra={"kiosk": kiosk_id})
            return
        from cryptography import x509

        from provisioning.ca import CaError

        try:
            with self.ca_lock:
                pem = self.ca.sign_csr(
                    csr_pem, kiosk_id=kiosk_id, days=self.config.provisioning.cert_days
                )
            cert = x509.load_pem_x509_certificate(pem.encode())
            self.store.certificate_issued(
                serial=format(cert.serial_number, "x"),
                kiosk_id=kiosk_id,
                site="",
                not_after=cert.not_valid_after_utc.timestamp(),
                now=time.time(),
            )
            self.send_command(
                handle, "rotate-certificate", {"certificate": pem}, kiosk_ids=[kiosk_id]
            )
        except (ValueError, BadInput, CaError) as err:
            logger.error(
                "certificate rotation not finished", extra={"kiosk": kiosk_id, "error": str(err)}
            )


def build_console(config: FleetConfig, *, store: FleetStore | None = None) -> Console:
    """The console with every responder the config enables."""
    console = Console(config, store=store)
    from fleet.dossiers import ShipmentSender

    console.services += [
        DossierResponder(),
        Revocations(),
        RevocationBroadcast(),
        Housekeeping(),
        PaymentService(),
        ShipmentSender(),
    ]
    if config.provisioning.service_enabled:
        console.services.append(EnrolmentResponder())
    if config.certify.enabled:
        console.services.append(CertifyResponder())
        if config.certify.mail.host:
            console.services.append(CertifyMail())
    return console
