"""The kiosk's fleet client, the façade the daemon uses: telemetry, central's messages, commands.

The MQTT connection (birth and will, reconnect) is edge/fleet/connection.py, the outbox drain
(window, PUBACKs) edge/fleet/drain.py; this module runs them on the fleet thread.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edge import __version__
from edge.events import Event, EventBus
from edge.fleet.commands import (
    Command,
    CommandHandler,
    CommandProcessor,
    OperatorKeys,
    Outcome,
    SeenCommands,
)
from edge.fleet.connection import Connection, Counters, Protocol, StatusProvider, dumps
from edge.fleet.drain import OutboxDrain
from edge.fleet.inbox import Malformed, parse_record_ack, parse_revocation_list
from edge.fleet.messages import queue_event
from edge.fleet.metrics import disk_free_mb, system_metrics
from edge.store.db import Store
from edge.store.outbox import Outbox
from protocol.messages import (
    ACK_SUFFIX,
    CENTRAL_STATUS_TOPIC,
    DEFAULT_PREFIX,
    REVOCATIONS_TOPIC,
    TELEMETRY,
    Severity,
    Topics,
    iso_time,
)

logger = logging.getLogger(__name__)

TelemetryProvider = Callable[[], dict[str, Any]]
# (topic suffix under <prefix>/<kiosk_id>/, payload, MQTT 5 properties or None)
MessageHandler = Callable[[str, bytes, Any], None]
# Central's record-ack/1: the ids of records stored at central (called on the fleet thread).
AckHandler = Callable[[list[str]], None]
# Central's retained copy-revocations/1, validated (called on the fleet thread).
RevocationsHandler = Callable[[dict[str, Any]], None]

DISK_CHECK_S = 30.0
MISCONFIGURED_RETRY_S = 60.0


class FleetClient:
    """Reports one kiosk to central over MQTT; never blocks its caller, never needs the broker.

    Threads: paho's network thread (callbacks only enqueue), `fleet` (connection events,
    telemetry, the outbox drain and its PUBACKs, central's record acknowledgements and
    revocation list, in that one thread) and `fleet-commands` (runs command handlers, so a slow
    handler never holds up the drain).
    """

    def __init__(
        self,
        *,
        kiosk_id: str,
        store: Store,
        outbox: Outbox,
        host: str = "localhost",
        port: int = 8883,
        tls: bool = True,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        keepalive_s: int = 60,
        topic_prefix: str = DEFAULT_PREFIX,
        telemetry_interval_s: float = 60.0,
        telemetry_provider: TelemetryProvider | None = None,
        status_provider: StatusProvider | None = None,
        version: str = __version__,
        capabilities: Sequence[str] = (),
        config_hash: str = "",
        commands: Mapping[str, CommandHandler | Command] | None = None,
        trust_dir: Path | None = None,
        bus: EventBus | None = None,
        client_id: str | None = None,
        protocol: Protocol = "auto",
        session_expiry_s: int = 86400,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 60.0,
        inflight_window: int = 32,
        poll_interval_s: float = 0.5,
        central_status_topic: str = CENTRAL_STATUS_TOPIC,
        disk_path: Path | None = None,
        min_free_mb: int = 200,
        clock_skew_s: float = 120.0,
        max_command_ttl_s: float = 86400.0,
        connect_timeout_s: float = 10.0,
        on_record_ack: AckHandler | None = None,
        on_revocations: RevocationsHandler | None = None,
        revocations_topic: str = REVOCATIONS_TOPIC,
    ) -> None:
        if protocol not in ("auto", "5", "3.1.1"):
            raise ValueError(f"protocol must be 'auto', '5' or '3.1.1', not {protocol!r}")
        if inflight_window < 1:
            raise ValueError("inflight_window must be at least 1")
        self.kiosk_id = kiosk_id
        self.store = store
        self.outbox = outbox
        self.topics = Topics(topic_prefix, kiosk_id, central_status_topic)
        self.telemetry_interval_s = telemetry_interval_s
        self.telemetry_provider = telemetry_provider
        self.version = version
        self.bus = bus
        self.poll_interval_s = poll_interval_s
        self.disk_path = disk_path or store.path.parent
        self.min_free_mb = min_free_mb
        self.on_record_ack = on_record_ack
        self.on_revocations = on_revocations
        self.revocations_topic = revocations_topic
        self.processor = CommandProcessor(
            kiosk_id=kiosk_id,
            topics=self.topics,
            commands=commands or {},
            keys=OperatorKeys(trust_dir),
            seen=SeenCommands(store),
            report=self.report_event,
            clock_skew_s=clock_skew_s,
            max_ttl_s=max_command_ttl_s,
        )

        self._wake: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._commands: queue.Queue[tuple[str, bytes, str | None, bytes | None]] = queue.Queue(
            maxsize=100
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._counters = Counters()
        self.connection = Connection(
            kiosk_id=kiosk_id,
            topics=self.topics,
            wake=self._wake,
            counters=self._counters,
            report=self.report_event,
            on_message=self._on_message,
            on_new_client=self._new_client,
            host=host,
            port=port,
            tls=tls,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            keepalive_s=keepalive_s,
            client_id=client_id or kiosk_id,
            protocol=protocol,
            session_expiry_s=session_expiry_s,
            reconnect_min_s=reconnect_min_s,
            reconnect_max_s=reconnect_max_s,
            max_inflight=inflight_window + 16,  # + state and results
            connect_timeout_s=connect_timeout_s,
            version=version,
            capabilities=capabilities,
            config_hash=config_hash,
            status_provider=status_provider,
        )
        # Owned by the fleet thread only.
        self.drain = OutboxDrain(
            kiosk_id=kiosk_id,
            store=store,
            outbox=outbox,
            topics=self.topics,
            inflight_window=inflight_window,
            counters=self._counters,
            report=self.report_event,
        )
        self._disk_low = False
        self._started_at = time.monotonic()
        # Extra subscriptions of services (request/response with central): filter -> handler.
        self._listeners: dict[str, MessageHandler] = {}

    @classmethod
    def from_config(
        cls, config: Any, *, store: Store, outbox: Outbox, **kwargs: Any
    ) -> FleetClient:
        """Build from the daemon's Config; keyword arguments win over config values.

        Reads [mqtt] host, port, tls, ca_file, cert_file, key_file, keepalive_s, topic_prefix,
        telemetry_interval_s, plus (once they exist in edge/config.py) trust_dir, client_id,
        protocol, session_expiry_s, reconnect_min_s, reconnect_max_s, inflight_window; and
        [kiosk] id, [storage] state_dir and min_free_mb.
        """
        m = config.mqtt
        values: dict[str, Any] = {
            "kiosk_id": config.kiosk.id,
            "host": m.host,
            "port": m.port,
            "tls": m.tls,
            "ca_file": m.ca_file,
            "cert_file": m.cert_file,
            "key_file": m.key_file,
            "keepalive_s": m.keepalive_s,
            "topic_prefix": m.topic_prefix,
            "telemetry_interval_s": m.telemetry_interval_s,
            "disk_path": config.storage.state_dir,
            "min_free_mb": config.storage.min_free_mb,
            "config_hash": config.digest(),
        }
        for name in (
            "trust_dir",
            "client_id",
            "protocol",
            "session_expiry_s",
            "reconnect_min_s",
            "reconnect_max_s",
            "inflight_window",
            "clock_skew_s",
            "max_command_ttl_s",
        ):
            if getattr(m, name, None) is not None:
                values[name] = getattr(m, name)
        values.update(kwargs)
        return cls(store=store, outbox=outbox, **values)

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the threads and the first connection attempt; returns at once, broker or not."""
        self._stop.clear()
        self._started_at = time.monotonic()
        self.connection.build()
        for name, target in (("fleet", self._run), ("fleet-commands", self._run_commands)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info(
            "fleet client started",
            extra={
                "broker": f"{self.connection.host}:{self.connection.port}",
                "kiosk": self.kiosk_id,
            },
        )

    def stop(self, timeout: float = 3.0) -> None:
        """Publish 'offline' (retained) if connected, disconnect, stop threads; bounded in time."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.put(("stop",))
        for thread in self._threads:
            thread.join(max(0.0, min(1.0, deadline - time.monotonic())))
        self._threads.clear()
        self.connection.stop(deadline)
        logger.info("fleet client stopped")

    @property
    def connected(self) -> bool:
        return self.connection.connected.is_set()

    @property
    def subscribed(self) -> bool:
        """Connected and the broker acknowledged the subscriptions (commands, listeners)."""
        connection = self.connection
        return connection.connected.is_set() and connection.subscribed.is_set()

    def status(self) -> dict[str, Any]:
        """Connection figures for telemetry and the technician screen (no personal data)."""
        stats = self._counters.snapshot()
        stats.update(
            connected=self.connected,
            protocol=self.connection.protocol_name,
            inflight=len(self.drain.inflight),
            disk_low=self._disk_low,
        )
        return stats

    # --- what the daemon calls ------------------------------------------------------

    def kick(self) -> None:
        """Something was added to the outbox: drain now rather than at the next poll."""
        self._wake.put(("kick",))

    def publish_state(self) -> None:
        """Re-publish the retained 'online' state (e.g. after lock/unlock changed status)."""
        self._wake.put(("state",))

    def send_telemetry(self) -> None:
        """Queue a telemetry message now instead of at the next interval."""
        self._wake.put(("telemetry",))

    def report_event(self, kind: str, severity: Severity, detail: dict[str, Any]) -> None:
        """An event for central (through the outbox) and for local observers (the bus)."""
        try:
            queue_event(self.outbox, self.kiosk_id, kind, severity, detail)
        except Exception:
            logger.exception("could not queue fleet event", extra={"event": kind})
        if self.bus is not None:
            self.bus.post(Event(kind, "fleet", {**detail, "severity": severity}))
        self.kick()

    def listen(self, suffix_filter: str, handler: MessageHandler) -> None:
        """Subscribe <prefix>/<kiosk_id>/<suffix_filter> (QoS 1) on every (re)connect.

        handler(suffix, payload, properties) runs on paho's network thread: it must only
        hand the message on (set an event, put on a queue), never block.
        """
        self._listeners[suffix_filter] = handler
        client = self.connection.live()
        if client is not None:
            client.subscribe(self.topics.under(suffix_filter), qos=1)

    def publish_live(
        self,
        suffix: str,
        payload: dict[str, Any],
        *,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        expiry_s: int | None = None,
    ) -> bool:
        """Publish now at QoS 1, not through the outbox (a question nobody will wait for
        later). False when there is no connection: the caller falls back at once."""
        client = self.connection.live()
        if client is None:
            return False
        properties = self.connection.properties()
        if properties is not None:
            if response_topic:
                properties.ResponseTopic = response_topic
            if correlation is not None:
                properties.CorrelationData = correlation
            if expiry_s:
                properties.MessageExpiryInterval = max(1, int(expiry_s))
        try:
            info = client.publish(
                self.topics.under(suffix), dumps(payload), qos=1, properties=properties
            )
        except ValueError:
            logger.exception("cannot publish", extra={"suffix": suffix})
            return False
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def _new_client(self) -> None:
        self.drain.reset()

    # --- messages (paho's network thread): hand on only ----------------------------------

    def _on_message(self, client: mqtt.Client, generation: int, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            return
        if topic == self.topics.central_status:
            self._wake.put(("central", generation, bytes(message.payload), bool(message.retain)))
            return
        if topic == self.topics.under(ACK_SUFFIX) and self.on_record_ack is not None:
            self._wake.put(("record_ack", generation, bytes(message.payload)))
            return
        if topic == self.revocations_topic and self.on_revocations is not None:
            self._wake.put(("revocations", generation, bytes(message.payload)))
            return
        for suffix_filter, handler in list(self._listeners.items()):
            if mqtt.topic_matches_sub(self.topics.under(suffix_filter), topic):
                try:
                    handler(
                        topic[len(self.topics.base) + 1 :],
                        bytes(message.payload),
                        getattr(message, "properties", None),
                    )
                except Exception:
                    logger.exception("message handler failed", extra={"filter": suffix_filter})
                return
        prefix = self.topics.base + "/cmd/"
        if not topic.startswith(prefix):
            return
        props = getattr(message, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None) if props else None
        correlation = getattr(props, "CorrelationData", None) if props else None
        item = (topic[len(prefix) :], bytes(message.payload), response_topic, correlation)
        try:
            self._commands.put_nowait(item)
        except queue.Full:
            logger.warning("command queue full, command dropped", extra={"topic": topic})

    # --- the fleet thread -------------------------------------------------------------

    def _run(self) -> None:
        next_telemetry = time.monotonic()  # the first one right away: central sees the boot
        next_disk_check = time.monotonic()
        next_rebuild = time.monotonic() + MISCONFIGURED_RETRY_S
        while not self._stop.is_set():
            now = time.monotonic()
            wait = min(next_telemetry, next_disk_check) - now
            if self.connected and self.drain.has_room:
                wait = min(wait, self.poll_interval_s)
            items: list[tuple[Any, ...]] = []
            try:
                items.append(self._wake.get(timeout=max(0.0, min(wait, 1.0))))
                while len(items) < 5000:
                    items.append(self._wake.get_nowait())
            except queue.Empty:
                pass
            if self._stop.is_set():
                break
            try:
                self._handle(items)
                now = time.monotonic()
                if now >= next_disk_check:
                    next_disk_check = now + DISK_CHECK_S
                    self._check_disk()
                if now >= next_telemetry:
                    next_telemetry = now + self.telemetry_interval_s
                    self._queue_telemetry()
                if self.connection.client is None and now >= next_rebuild:
                    next_rebuild = now + MISCONFIGURED_RETRY_S
                    self.connection.build()
                client = self.connection.live()
                if client is not None:
                    self.drain.fill(client, self.connection.properties)
            except Exception:
                # The thread must live on; the outbox keeps everything for the next pass.
                logger.exception("fleet loop step failed")
                self._stop.wait(1.0)

    def _handle(self, items: list[tuple[Any, ...]]) -> None:
        acked: list[str] = []
        for item in items:
            kind = item[0]
            if kind in ("stop", "kick"):
                continue
            if kind == "state":
                self.connection.publish_birth()
                continue
            if kind == "telemetry":
                self._queue_telemetry()
                continue
            # Central's messages count whichever client took them (paho has acknowledged them).
            if kind == "record_ack":
                self._record_ack(item[2])
                continue
            if kind == "revocations":
                self._revocation_list(item[2])
                continue
            if item[1] != self.connection.generation:
                continue  # from a client that was replaced
            if kind == "puback":
                message_id = self.drain.puback(item[2], item[3])
                if message_id is not None:
                    acked.append(message_id)
            elif kind == "connect":
                self._connected_event(item[2], item[3], item[4])
            elif kind in ("disconnect", "connect_fail"):
                self.connection.disconnected_event(item[2] if kind == "disconnect" else None)
            elif kind == "central":
                self._central_status(item[2], item[3])
            elif kind == "suback":
                self.connection.subscribed_event(item[2])
        self.drain.acknowledge(acked)

    def _connected_event(
        self, reason: ReasonCode, session_present: bool, receive_maximum: int | None
    ) -> None:
        if not self.connection.connected_event(reason, session_present):
            return
        self.drain.set_window(receive_maximum)
        client = self.connection.client
        if client is None:
            return
        extra = [(self.topics.under(f), 1) for f in self._listeners]
        if self.on_record_ack is not None:
            extra.append((self.topics.under(ACK_SUFFIX), 1))
        if self.on_revocations is not None:
            extra.append((self.revocations_topic, 1))
        client.subscribe([(self.topics.commands, 1), (self.topics.central_status, 1), *extra])
        self.connection.publish_birth()

    def _central_status(self, payload: bytes, retained: bool) -> None:
        state = _central_state(payload)
        logger.info("central is %s", state or "unknown", extra={"retained": retained})
        # The retained copy arrives on every subscribe, right after our own birth: only a
        # live announcement means central restarted and lost track of us.
        if state == "online" and not retained:
            self.connection.publish_birth()

    # --- from central: record acknowledgements, the revocation list ------------------------

    def _record_ack(self, payload: bytes) -> None:
        """Central has these records in its database: tell the daemon (idempotent there)."""
        try:
            ids = parse_record_ack(payload, self.kiosk_id)
        except Malformed as err:
            self._ignored("record acknowledgement", err)
            return
        self._counters.add("records_acked", len(ids))
        logger.debug("central stored records", extra={"count": len(ids)})
        try:
            self.on_record_ack(ids)  # type: ignore[misc]
        except Exception:
            logger.exception("record acknowledgement handler failed", extra={"count": len(ids)})

    def _revocation_list(self, payload: bytes) -> None:
        try:
            document = parse_revocation_list(payload)
        except Malformed as err:
            self._ignored("revocation list", err)
            return
        try:
            self.on_revocations(document)  # type: ignore[misc]
        except Exception:
            logger.exception("revocation list handler failed")

    def _ignored(self, what: str, err: Malformed) -> None:
        self._counters.add("central_ignored")
        logger.warning(
            "malformed %s from central ignored: %s", what, err, extra={"reason": str(err)}
        )

    # --- telemetry and disk ------------------------------------------------------------

    def _telemetry_payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.telemetry_provider is not None:
            try:
                body = dict(self.telemetry_provider())
            except Exception as err:
                logger.exception("telemetry provider failed")
                body = {"provider_error": f"{type(err).__name__}: {err}"[:200]}
        body.setdefault("uptime_s", round(time.monotonic() - self._started_at, 1))
        if "system" not in body:
            body["system"] = system_metrics(disk_path=self.disk_path)
        if "outbox" not in body:
            body["outbox"] = self.outbox.depth()
        body.setdefault("versions", {"software": self.version})
        body["fleet"] = self.status()
        return {**body, "schema": TELEMETRY, "kiosk_id": self.kiosk_id, "time": iso_time()}

    def _queue_telemetry(self) -> None:
        payload = self._telemetry_payload()
        if not self._disk_low:
            self.outbox.add("telemetry", "telemetry", payload)
            return
        # Disk nearly full: nothing new is stored for telemetry, but central still gets a
        # live sample (QoS 0, not kept) while the broker is there.
        client = self.connection.live()
        if client is not None:
            client.publish(self.topics.under("telemetry"), dumps(payload), qos=0)

    def _check_disk(self) -> None:
        try:
            free = disk_free_mb(self.disk_path)
        except OSError:
            logger.warning("cannot read free disk space", extra={"path": str(self.disk_path)})
            return
        low = free < self.min_free_mb
        if low:
            dropped = self.outbox.shed_telemetry()
            if not self._disk_low:
                self._disk_low = True
                logger.error(
                    "disk nearly full: telemetry shed, records kept", extra={"free_mb": free}
                )
                self.report_event(
                    "storage.disk_low",
                    "critical",
                    {
                        "free_mb": free,
                        "min_free_mb": self.min_free_mb,
                        "telemetry_dropped": dropped,
                    },
                )
        elif self._disk_low:
            self._disk_low = False
            logger.info("disk space back above the threshold", extra={"free_mb": free})
            self.report_event(
                "storage.disk_ok", "info", {"free_mb": free, "min_free_mb": self.min_free_mb}
            )

    # --- commands --------------------------------------------------------------------

    def _run_commands(self) -> None:
        while not self._stop.is_set():
            try:
                name, payload, response_topic, correlation = self._commands.get(timeout=0.5)
            except queue.Empty:
                continue
            outcome = self.processor.process(
                name, payload, response_topic=response_topic, correlation=correlation
            )
            self._counters.add("commands")
            self._reply(outcome)

    def _reply(self, outcome: Outcome) -> None:
        client = self.connection.client
        if client is None:
            return
        properties = self.connection.properties()
        if properties is not None and outcome.correlation is not None:
            properties.CorrelationData = outcome.correlation
        try:
            client.publish(outcome.topic, dumps(outcome.result), qos=1, properties=properties)
        except ValueError:
            logger.exception("cannot publish a command result", extra={"topic": outcome.topic})


def _central_state(payload: bytes) -> str | None:
    """Central's birth/will: plain 'online' / 'offline', or JSON with a 'state' field."""
    text = payload.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            value = json.loads(text).get("state")
        except (ValueError, AttributeError):
            return None
        text = value if isinstance(value, str) else ""
    text = text.lower()
    return text if text in ("online", "offline") else None
