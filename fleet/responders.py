"""What the console answers and publishes besides ingest: dossier status, enrolment, the
e-copy revocation list, housekeeping. Each is attached to a Console before it connects."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from paho.mqtt.client import topic_matches_sub
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.fleet.messages import iso_time
from fleet.dossiers import seed_samples, status_answer

if TYPE_CHECKING:
    from fleet.console import Console

logger = logging.getLogger(__name__)


def _reply(console: Console, topic: str, body: dict[str, Any], correlation: bytes | None) -> None:
    props = None
    if correlation is not None:
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = correlation
    console.ingest.publish(topic, body, properties=props)


class DossierResponder:
    """Answers dossier status requests from kiosks out of the dossier table."""

    def attach(self, console: Console) -> None:
        self.console = console
        if console.config.dossiers.seed_samples:
            n = seed_samples(console.store)
            if n:
                logger.info("sample dossiers inserted", extra={"count": n})
        prefix = console.config.mqtt.topic_prefix
        self.request_filter = f"{prefix}/+/dossier/request"
        self.allowed_reply = f"{prefix}/{{kiosk}}/dossier/response"
        console.ingest.on_request(self.request_filter, self.handle)

    def handle(
        self, kiosk_id: str | None, topic: str, body: dict[str, Any] | None, props: Any
    ) -> None:
        if kiosk_id is None:
            return
        allowed = self.allowed_reply.format(kiosk=kiosk_id)
        response_topic = getattr(props, "ResponseTopic", None) if props else None
        reply_to = (
            response_topic
            if (isinstance(response_topic, str) and topic_matches_sub(allowed, response_topic))
            else allowed
        )
        correlation = getattr(props, "CorrelationData", None) if props else None
        request_id = body.get("id") if body else None
        if body is None or not isinstance(body.get("code"), str):
            answer: dict[str, Any] = {"found": False, "reason": "malformed"}
        else:
            answer = status_answer(self.console.store, body["code"])
        _reply(
            self.console,
            reply_to,
            {
                "schema": "dossier-status/1",
                "request_id": request_id,
                "kiosk_id": kiosk_id,
                "time": iso_time(),
                **answer,
            },
            correlation,
        )


class EnrolmentResponder:
    """Claim token + CSR in, certificate out (provisional contract, see docs)."""

    def attach(self, console: Console) -> None:
        from fleet.provisioning import CenterCa, Enrolment

        self.console = console
        p = console.config.provisioning
        assert p.ca_cert is not None and p.ca_key is not None
        self.enrolment = Enrolment(
            console.store, CenterCa(p.ca_cert, p.ca_key), cert_days=p.cert_days
        )
        base = console.config.mqtt.central_topic
        self.request_filter = f"{base}/enrol/+/request"
        console.ingest.on_request(self.request_filter, self.handle)

    def handle(
        self, kiosk_id: str | None, topic: str, body: dict[str, Any] | None, props: Any
    ) -> None:
        from fleet.provisioning import EnrolmentRefused

        parts = topic.split("/")
        claimed = parts[-2] if len(parts) >= 2 else ""
        reply = "/".join([*parts[:-1], "response"])
        correlation = getattr(props, "CorrelationData", None) if props else None
        request_id = body.get("id") if body else None
        try:
            if body is None:
                raise EnrolmentRefused("malformed", "not a JSON object")
            issued = self.enrolment.enrol(
                str(body.get("token", "")), str(body.get("csr", "")), kiosk_id=claimed
            )
        except EnrolmentRefused as err:
            logger.warning("enrolment refused", extra={"reason": err.reason})
            answer: dict[str, Any] = {
                "status": "refused",
                "reason": err.reason,
                "message": str(err),
            }
        else:
            answer = {
                "status": "ok",
                "certificate": issued.certificate_pem,
                "ca": issued.ca_pem,
                "serial": issued.serial,
            }
        _reply(
            self.console,
            reply,
            {
                "schema": "enrol-response/1",
                "request_id": request_id,
                "kiosk_id": claimed,
                "time": iso_time(),
                **answer,
            },
            correlation,
        )


class Revocations:
    """Publishes the e-copy revocation list, retained, on <central>/revocations."""

    def attach(self, console: Console) -> None:
        self.console = console
        self.topic = f"{console.config.mqtt.central_topic}/revocations"
        console.revocations = self
        console.ingest.connected_hooks.append(self.publish)

    def document(self) -> dict[str, Any]:
        rows = self.console.store.revocations()
        return {
            "schema": "revocation-list/1",
            "issued_at": iso_time(),
            "count": len(rows),
            "revoked": [
                {"code": r["code"], "revoked_at": iso_time(r["revoked_at"]), "reason": r["reason"]}
                for r in rows
            ],
        }

    def publish(self) -> None:
        self.console.ingest.publish(self.topic, self.document(), retain=True)

    def revoke(self, code: str, *, reason: str, operator: str) -> bool:
        fresh = self.console.store.revoke_copy(
            code, reason=reason, operator=operator, now=time.time()
        )
        if fresh:
            logger.info("e-copy revoked", extra={"operator": operator})
        self.publish()
        return fresh


class Housekeeping:
    """Prunes telemetry and events past their keep time, hourly."""

    def attach(self, console: Console) -> None:
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
