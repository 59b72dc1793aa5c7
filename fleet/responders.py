"""What the console answers and publishes besides ingest: dossier status, enrolment, the
e-copy revocation list, housekeeping. Each is attached to a Console before it connects."""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleet.dossiers import dossier_answer, owner_key, seed_samples
from fleet.store import parse_time
from protocol.messages import COPY_REVOCATIONS, iso_time

if TYPE_CHECKING:
    from fleet.config import FleetConfig
    from fleet.ingest import FleetIngest
    from fleet.store import FleetStore

logger = logging.getLogger(__name__)


class Host(Protocol):
    """What a responder uses of the console (fleet.console.Console is one); responders do not
    import the console, so the console can import them."""

    config: FleetConfig
    store: FleetStore
    ingest: FleetIngest
    ca: Any
    ca_lock: threading.Lock
    accounts: Any
    provisioning: Any
    revocations: Any
    certifier: Any

    @property
    def sealer(self) -> Any: ...

    def operator_keys(self) -> list[dict[str, str]]: ...

    def send_command(
        self,
        handle: str,
        name: str,
        args: dict[str, Any],
        *,
        kiosk_ids: list[str],
        ttl_s: float | None = None,
    ) -> list[dict[str, Any]]: ...


def _reply(console: Host, topic: str, body: dict[str, Any], correlation: bytes | None) -> None:
    props = None
    if correlation is not None:
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = correlation
    console.ingest.publish(topic, body, properties=props)


class DossierResponder:
    """Answers dossier-status-request/1 from the dossier table (docs/fleet.md, "Dossier status").

    Exactly one answer per request taken, with its request_id, to the MQTT 5 Response Topic
    (correlation data echoed), else reply_to, else <prefix>/<kiosk>/res/dossier-status, and
    only ever to that kiosk's own res/dossier-status; nothing after the request's expires_at.
    """

    def attach(self, console: Host) -> None:
        from protocol.schemas import validator

        self.console = console
        self.request_schema = validator("dossier-status-request")
        if console.config.dossiers.seed_samples:
            n = seed_samples(console.store)
            if n:
                logger.info("sample dossiers inserted", extra={"count": n})
        self.prefix = console.config.mqtt.topic_prefix
        # Central's key for the dossiers' owner tags, beside the web session key: read (or made)
        # when an owner is first checked, so a console that never checks one writes no file.
        self._owner_key_file = console.config.web.secret_key_file.with_name("dossier-owner.key")
        self._owner_key: bytes | None = None
        console.ingest.on_request(f"{self.prefix}/+/req/dossier-status", self.handle)
        self.answered = 0

    @property
    def owner_key(self) -> bytes:
        if self._owner_key is None:
            self._owner_key = owner_key(self._owner_key_file)
        return self._owner_key

    def handle(
        self, kiosk_id: str | None, topic: str, body: dict[str, Any] | None, props: Any
    ) -> None:
        if kiosk_id is None:
            return
        if body is None or not isinstance(body.get("request_id"), str):
            logger.warning("dossier request without a request id, not answered")
            return
        errors = list(self.request_schema.iter_errors(body))
        request_id = body["request_id"]
        if not re.fullmatch(r"[0-9a-f]{32}", request_id):
            logger.warning("dossier request id malformed, not answered")
            return
        expires = parse_time(body.get("expires_at"), 0.0)
        if expires and time.time() > expires:
            logger.info("dossier request expired before it was taken, not answered")
            return
        allowed = f"{self.prefix}/{kiosk_id}/res/dossier-status"
        candidates = [
            getattr(props, "ResponseTopic", None) if props else None,
            body.get("reply_to"),
        ]
        reply_to = next((c for c in candidates if c == allowed), allowed)
        code = body.get("code") if isinstance(body.get("code"), str) else ""
        if errors:
            logger.warning(
                "dossier request does not fit its schema", extra={"error": errors[0].message[:200]}
            )
            answer: dict[str, Any] = {"result": "not_found", "message": "malformed request"}
        else:
            try:
                answer = dossier_answer(
                    self.console.store,
                    code,
                    owner_proof=body.get("owner_proof"),
                    key=self.owner_key if body.get("owner_proof") is not None else None,
                )
            except Exception:
                logger.exception("dossier lookup failed")
                answer = {"result": "unavailable", "message": "central's dossier table failed"}
        correlation = getattr(props, "CorrelationData", None) if props else None
        _reply(
            self.console,
            reply_to,
            {
                "schema": "dossier-status-response/1",
                "request_id": request_id,
                "code": code,
                "answered_at": iso_time(),
                **answer,
            },
            correlation,
        )
        self.answered += 1


class EnrolmentResponder:
    """Runs the provisioning service (its own MQTT identity) for the console."""

    role = "enrolment"  # one client id (fleet-provisioning): one worker at a time

    def attach(self, console: Host) -> None:
        from fleet.provisioning import Enrolment, ProvisioningService

        p, m = console.config.provisioning, console.config.mqtt
        assert console.ca is not None and p.cert_file and p.key_file
        enrolment = Enrolment(
            console.store,
            console.ca,
            console.sealer,
            cert_days=p.cert_days,
            broker={
                "host": p.broker_host or m.host,
                "port": p.broker_port or m.port,
                "topic_prefix": m.topic_prefix,
                "protocol": p.broker_protocol,
            },
            operators=console.operator_keys,
            ca_lock=console.ca_lock,
        )
        self.service = ProvisioningService(
            enrolment,
            host=m.host,
            port=m.port,
            ca_file=m.ca_file,
            cert_file=p.cert_file,
            key_file=p.key_file,
            accounts=console.accounts,
            store=console.store,
        )
        self.console = console
        console.provisioning = self.service
        self.service.start()

    def stop(self) -> None:
        self.service.stop()
        if self.console.provisioning is self.service:
            self.console.provisioning = None


class Revocations:
    """The e-copy revocation list (docs/fleet.md, "The e-copy revocation list"; docs/ecopy.md).

    The whole list, codes and signing certificates, as copy-revocations/1: published retained
    on <central>/revocations after every revocation and whenever the console connects (every
    kiosk merges it into its file at each connect), and served at /revocations.json. On demand
    it also goes out as the signed command update-revocations, which replaces a kiosk's file.
    Publishing at connect is RevocationBroadcast's, in the worker holding its role.
    """

    def attach(self, console: Host) -> None:
        self.console = console
        self.topic = f"{console.config.mqtt.central_topic}/revocations"
        console.revocations = self

    def document(self) -> dict[str, Any]:
        """copy-revocations/1 (schemas/copy-revocations.json), with issued_at."""
        return {"schema": COPY_REVOCATIONS, "issued_at": iso_time(), **self.lists()}

    def lists(self) -> dict[str, list[Any]]:
        """What update-revocations carries: {"codes": [...], "certificates": [...]}."""
        codes: list[Any] = []
        certificates: list[Any] = []
        for r in self.console.store.revocations():
            if r["kind"] == "certificate":
                item = {"serial": r["code"]}
                if r["effective_from"] is not None:
                    item["revoked_at"] = iso_time(r["effective_from"])
                certificates.append(item)
            else:
                codes.append(
                    {"code": r["code"], "reason": r["reason"]} if r["reason"] else r["code"]
                )
        return {"codes": codes, "certificates": certificates}

    def publish(self) -> None:
        self.console.ingest.publish(self.topic, self.document(), retain=True)

    def revoke(
        self,
        code: str,
        *,
        reason: str,
        operator: str,
        kind: str = "code",
        effective_from: float | None = None,
    ) -> bool:
        fresh = self.console.store.revoke_copy(
            code,
            reason=reason,
            operator=operator,
            now=time.time(),
            kind=kind,
            effective_from=effective_from,
        )
        if fresh:
            logger.info("e-copy revocation added", extra={"operator": operator, "kind": kind})
        self.publish()
        return fresh

    def push(self, handle: str, kiosk_ids: list[str] | None = None) -> int:
        """Send the whole list (codes and certificates) to kiosks, all known ones by default,
        signed by the session's operator; returns how many commands went out."""
        targets = kiosk_ids or [k["kiosk_id"] for k in self.console.store.kiosks()]
        if not targets:
            return 0
        sent = self.console.send_command(
            handle,
            "update-revocations",
            {"revocations": self.lists()},
            kiosk_ids=targets,
            ttl_s=86400,  # kiosks away for up to a day still get it from their session
        )
        return len(sent)


class RevocationBroadcast:
    """Publishes the revocation list (retained) when it starts and whenever central connects
    again, in one worker at a time; attached after Revocations."""

    role = "revocations"

    def __init__(self) -> None:
        self.active = False
        self.console: Host | None = None

    def attach(self, console: Host) -> None:
        if self.console is None:
            console.ingest.connected_hooks.append(self._connected)
        self.console = console
        self.active = True
        if console.ingest.connected:
            console.revocations.publish()

    def stop(self) -> None:
        self.active = False

    def _connected(self) -> None:
        if self.active and self.console is not None:
            self.console.revocations.publish()


class CertifyResponder:
    """The certifier's intake (issue 16): each cert-request record, once its batch is stored,
    goes to Certifier.receive; its answers go out on <prefix>/<kiosk_id>/cert at QoS 1."""

    def attach(self, console: Host) -> None:
        from fleet.certify.service import Certifier, load_issuers
        from protocol.certify import REQUEST_KIND

        c, m = console.config.certify, console.config.mqtt
        center_ca = console.config.provisioning.ca_dir
        ca_file = (
            c.fleet_ca_file
            or (center_ca / "ca.crt" if center_ca and (center_ca / "ca.crt").is_file() else None)
            or m.ca_file
        )
        self.console = console
        self.certifier = Certifier(
            console.store,
            config=c,
            publish=self.publish,
            prefix=m.topic_prefix,
            issuers=load_issuers(ca_file) if ca_file else [],
        )
        if not ca_file:
            logger.warning("[certify] has no fleet CA: every certification request is refused")
        console.certifier = self.certifier
        console.ingest.record_hooks[REQUEST_KIND] = self.certifier.receive

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        self.console.ingest.publish(topic, message, qos=1)


class CertifyMail:
    """Sends approved copies to the citizens who chose e-mail (fleet.certify.delivery); only
    attached when [certify.mail] host is set."""

    role = "certify-mail"  # the certification book's deliveries: one sender, no double mail

    def attach(self, console: Host) -> None:
        from fleet.certify.delivery import MailSender

        self.sender = MailSender(console.store, console.config.certify.mail)
        if console.certifier is not None:  # attached before: an approval sends at once
            console.certifier.approved_hook = self.sender.wake
        self.sender.start()

    def stop(self) -> None:
        self.sender.stop()


class Housekeeping:
    """Prunes telemetry and events past their keep time, hourly."""

    role = "housekeeping"

    def attach(self, console: Host) -> None:
        self.console = console
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-prune", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            s = self.console.config.store
            try:
                self.console.store.prune(
                    now=time.time(),
                    telemetry_keep_s=s.telemetry_keep_s,
                    events_keep_s=s.events_keep_s,
                )
            except Exception:
                logger.exception("pruning failed")
            self._stop.wait(3600)
