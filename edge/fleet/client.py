"""The kiosk's MQTT client: birth and will, telemetry, outbox drain on PUBACK, signed commands."""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
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
from edge.fleet.inbox import Malformed, parse_record_ack, parse_revocation_list
from edge.fleet.messages import queue_event, wire_payload
from edge.fleet.metrics import disk_free_mb, system_metrics
from edge.store.db import Store
from edge.store.outbox import Outbox, OutboxMessage
from protocol.messages import (
    ACK_SUFFIX,
    CENTRAL_STATUS_TOPIC,
    DEFAULT_PREFIX,
    REVOCATIONS_TOPIC,
    TELEMETRY,
    Severity,
    Topics,
    iso_time,
    state_payload,
)
from protocol.mqtt import Backoff, new_client, tls_context

logger = logging.getLogger(__name__)
paho_logger = logging.getLogger("edge.fleet.paho")
# paho logs this at ERROR on every loop pass while the broker is away; we say it once.
paho_logger.addFilter(lambda record: not record.getMessage().startswith("Client is not connected"))

Protocol = Literal["auto", "5", "3.1.1"]
TelemetryProvider = Callable[[], dict[str, Any]]
StatusProvider = Callable[[], dict[str, Any]]
# (topic suffix under <prefix>/<kiosk_id>/, payload, MQTT 5 properties or None)
MessageHandler = Callable[[str, bytes, Any], None]
# Central's record-ack/1: the ids of records stored at central (called on the fleet thread).
AckHandler = Callable[[list[str]], None]
# Central's retained copy-revocations/1, validated (called on the fleet thread).
RevocationsHandler = Callable[[dict[str, Any]], None]

UNSUPPORTED_PROTOCOL = ReasonCode(PacketTypes.CONNACK, "Unsupported protocol version")
DISK_CHECK_S = 30.0
MISCONFIGURED_RETRY_S = 60.0


@dataclass(frozen=True, slots=True)
class _Inflight:
    seq: int
    id: str
    handed_at: float


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
        self.host = host
        self.port = port
        self.tls = tls
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file
        self.keepalive_s = keepalive_s
        self.topics = Topics(topic_prefix, kiosk_id, central_status_topic)
        self.telemetry_interval_s = telemetry_interval_s
        self.telemetry_provider = telemetry_provider
        self.status_provider = status_provider
        self.version = version
        self.capabilities = list(capabilities)
        self.config_hash = config_hash
        self.bus = bus
        self.client_id = client_id or kiosk_id
        self.protocol = protocol
        self.session_expiry_s = session_expiry_s
        self.inflight_window = inflight_window
        self.poll_interval_s = poll_interval_s
        self.disk_path = disk_path or store.path.parent
        self.min_free_mb = min_free_mb
        self.connect_timeout_s = connect_timeout_s
        self.on_record_ack = on_record_ack
        self.on_revocations = on_revocations
        self.revocations_topic = revocations_topic
        self.backoff = Backoff(reconnect_min_s, reconnect_max_s)
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

        self._client: mqtt.Client | None = None
        self._generation = 0  # callbacks of a replaced client are ignored
        self._mqtt_version = (
            MQTTProtocolVersion.MQTTv311 if protocol == "3.1.1" else MQTTProtocolVersion.MQTTv5
        )
        self._wake: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._commands: queue.Queue[tuple[str, bytes, str | None, bytes | None]] = queue.Queue(
            maxsize=100
        )
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._subscribed = threading.Event()  # SUBACK of this connection's filters
        self._threads: list[threading.Thread] = []
        # Owned by the fleet thread only.
        self._inflight: dict[int, _Inflight] = {}
        self._cursor = 0  # highest outbox seq handed to the current paho client
        self._window = inflight_window
        self._poisoned: set[str] = set()
        self._disk_low = False
        self._started_at = time.monotonic()
        self._stats: dict[str, Any] = {
            "connects": 0,
            "published": 0,
            "acknowledged": 0,
            "rejected": 0,
            "commands": 0,
            "records_acked": 0,
            "central_ignored": 0,
            "last_connected_at": None,
            "last_error": None,
        }
        self._stats_lock = threading.Lock()
        self._last_refusal: str | None = None
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
        self._build_client()
        for name, target in (("fleet", self._run), ("fleet-commands", self._run_commands)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info(
            "fleet client started",
            extra={"broker": f"{self.host}:{self.port}", "kiosk": self.kiosk_id},
        )

    def stop(self, timeout: float = 3.0) -> None:
        """Publish 'offline' (retained) if connected, disconnect, stop threads; bounded in time."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.put(("stop",))
        for thread in self._threads:
            thread.join(max(0.0, min(1.0, deadline - time.monotonic())))
        self._threads.clear()
        client, self._client = self._client, None
        if client is not None:
            if self._connected.is_set():
                payload = state_payload(kiosk_id=self.kiosk_id, online=False, reason="stopped")
                info = client.publish(self.topics.state, _dumps(payload), qos=1, retain=True)
                # RuntimeError / ValueError: the connection went meanwhile; the will says it.
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(max(0.1, min(1.0, deadline - time.monotonic())))
            self._close_client(client, deadline)
        self._connected.clear()
        logger.info("fleet client stopped")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def subscribed(self) -> bool:
        """Connected and the broker acknowledged the subscriptions (commands, listeners)."""
        return self._connected.is_set() and self._subscribed.is_set()

    def status(self) -> dict[str, Any]:
        """Connection figures for telemetry and the technician screen (no personal data)."""
        with self._stats_lock:
            stats = dict(self._stats)
        stats.update(
            connected=self.connected,
            protocol="5" if self._mqtt_version == MQTTProtocolVersion.MQTTv5 else "3.1.1",
            inflight=len(self._inflight),
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
        client = self._client
        if client is not None and self._connected.is_set():
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
        client = self._client
        if client is None or not self._connected.is_set():
            return False
        properties = self._properties()
        if properties is not None:
            if response_topic:
                properties.ResponseTopic = response_topic
            if correlation is not None:
                properties.CorrelationData = correlation
            if expiry_s:
                properties.MessageExpiryInterval = max(1, int(expiry_s))
        try:
            info = client.publish(
                self.topics.under(suffix), _dumps(payload), qos=1, properties=properties
            )
        except ValueError:
            logger.exception("cannot publish", extra={"suffix": suffix})
            return False
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    # --- the paho client ------------------------------------------------------------

    def _build_client(self) -> bool:
        """A new paho client for the current protocol, connecting in the background."""
        self._generation += 1
        version = self._mqtt_version
        v5 = version == MQTTProtocolVersion.MQTTv5
        client = new_client(
            self.client_id,
            protocol=version,
            clean_session=None if v5 else False,  # 3.1.1: a persistent session
            userdata=self._generation,
        )
        client.enable_logger(paho_logger)
        client.max_inflight_messages_set(self.inflight_window + 16)  # + state and results
        client.max_queued_messages_set(0)  # bounded by inflight_window, not by paho
        client.connect_timeout = self.connect_timeout_s
        delay = self.backoff.next()
        client.reconnect_delay_set(delay, delay)
        try:
            if self.tls:
                client.tls_set_context(tls_context(self.ca_file, self.cert_file, self.key_file))
        except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
            self._misconfigured(f"TLS files unusable: {err}")
            return False
        will = state_payload(
            kiosk_id=self.kiosk_id, online=False, reason="connection_lost", with_time=False
        )
        client.will_set(self.topics.state, _dumps(will), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.session_expiry_s
        try:
            client.connect_async(
                self.host,
                self.port,
                keepalive=self.keepalive_s,
                clean_start=False if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                properties=properties,
            )
        except ValueError as err:
            self._misconfigured(f"broker address unusable: {err}")
            return False
        client.loop_start()
        self._client = client
        self._inflight.clear()
        self._cursor = 0  # rows handed to a previous client go again: none was acknowledged
        return True

    def _misconfigured(self, problem: str) -> None:
        logger.error("fleet reporting not possible: %s", problem)
        with self._stats_lock:
            self._stats["last_error"] = problem
        if self._last_refusal != problem:
            self._last_refusal = problem
            self.report_event("fleet.misconfigured", "error", {"problem": problem[:200]})

    def _close_client(self, client: mqtt.Client, deadline: float) -> None:
        try:
            if client.is_connected():
                client.disconnect()
        except Exception:
            logger.debug("disconnect failed", exc_info=True)
        # loop_stop() joins without a timeout; a TCP connect in progress may hold it for up
        # to connect_timeout_s, so join from a helper thread and give up at the deadline.
        stopper = threading.Thread(target=client.loop_stop, name="fleet-loop-stop", daemon=True)
        stopper.start()
        stopper.join(max(0.1, deadline - time.monotonic()))
        if stopper.is_alive():
            logger.warning("MQTT network thread did not stop in time; leaving it behind")

    # --- callbacks (paho's network thread): enqueue only --------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        generation: int,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if not reason_code.is_failure:  # a refusal is followed by on_disconnect, which backs off
            self.backoff.reset()
        receive_maximum = getattr(properties, "ReceiveMaximum", None) if properties else None
        self._wake.put(("connect", generation, reason_code, flags.session_present, receive_maximum))

    def _on_connect_fail(self, client: mqtt.Client, generation: int) -> None:
        client.reconnect_delay_set(*[self.backoff.next()] * 2)
        self._wake.put(("connect_fail", generation))

    def _on_disconnect(
        self,
        client: mqtt.Client,
        generation: int,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        client.reconnect_delay_set(*[self.backoff.next()] * 2)
        self._wake.put(("disconnect", generation, reason_code))

    def _on_publish(
        self,
        client: mqtt.Client,
        generation: int,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._wake.put(("puback", generation, mid, reason_code))

    def _on_subscribe(
        self,
        client: mqtt.Client,
        generation: int,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._wake.put(("suback", generation, reason_codes))

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
            if self._connected.is_set() and len(self._inflight) < self._window:
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
                if self._client is None and now >= next_rebuild:
                    next_rebuild = now + MISCONFIGURED_RETRY_S
                    self._build_client()
                self._fill_window()
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
                self._publish_birth()
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
            if item[1] != self._generation:
                continue  # from a client that was replaced
            if kind == "puback":
                entry = self._inflight.pop(item[2], None)
                if entry is None:
                    continue  # state, results and live telemetry are not outbox rows
                if item[3].is_failure:
                    self._rejected(entry, str(item[3]))
                else:
                    acked.append(entry.id)
            elif kind == "connect":
                self._connected_event(item[2], item[3], item[4])
            elif kind in ("disconnect", "connect_fail"):
                self._disconnected_event(item[2] if kind == "disconnect" else None)
            elif kind == "central":
                self._central_status(item[2], item[3])
            elif kind == "suback":
                failed = [str(rc) for rc in item[2] if rc.is_failure]
                if failed:
                    logger.error("broker refused a subscription", extra={"reasons": failed})
                self._subscribed.set()
        for message_id in acked:
            self.outbox.acknowledge(message_id)
        if acked:
            with self._stats_lock:
                self._stats["acknowledged"] += len(acked)

    def _connected_event(
        self, reason: ReasonCode, session_present: bool, receive_maximum: int | None
    ) -> None:
        if reason.is_failure:
            self._connected.clear()
            if (
                reason == UNSUPPORTED_PROTOCOL
                and self.protocol == "auto"
                and self._mqtt_version == MQTTProtocolVersion.MQTTv5
            ):
                logger.warning("broker refused MQTT 5; falling back to MQTT 3.1.1")
                self._mqtt_version = MQTTProtocolVersion.MQTTv311
                old = self._client
                if old is not None:
                    self._close_client(old, time.monotonic() + 2.0)
                self._build_client()
                return
            problem = f"broker refused the connection: {reason}"
            if self._last_refusal != problem:  # log a change, not every retry
                self._last_refusal = problem
                logger.error(problem)
            with self._stats_lock:
                self._stats["last_error"] = problem
            return
        self._last_refusal = None
        self._subscribed.clear()
        # MQTT 5: the broker says how many unacknowledged QoS 1 messages it takes at once.
        self._window = min(self.inflight_window, receive_maximum or self.inflight_window)
        self._connected.set()
        with self._stats_lock:
            self._stats["connects"] += 1
            self._stats["last_connected_at"] = iso_time()
            self._stats["last_error"] = None
        logger.info(
            "connected to the fleet broker",
            extra={"session_present": session_present, "protocol": self.status()["protocol"]},
        )
        client = self._client
        if client is None:
            return
        extra = [(self.topics.under(f), 1) for f in self._listeners]
        if self.on_record_ack is not None:
            extra.append((self.topics.under(ACK_SUFFIX), 1))
        if self.on_revocations is not None:
            extra.append((self.revocations_topic, 1))
        client.subscribe([(self.topics.commands, 1), (self.topics.central_status, 1), *extra])
        self._publish_birth()

    def _disconnected_event(self, reason: ReasonCode | None) -> None:
        if self._connected.is_set():
            logger.warning("lost the fleet broker", extra={"reason": str(reason)})
        elif self._last_refusal is None:
            # Never got a CONNACK: broker down, unreachable, or it refused our TLS handshake.
            problem = (
                f"cannot reach the fleet broker at {self.host}:{self.port} (down, network or TLS)"
            )
            self._last_refusal = problem
            logger.warning(problem)
            with self._stats_lock:
                self._stats["last_error"] = problem
        self._connected.clear()

    def _publish_birth(self) -> None:
        client = self._client
        if client is None or not self._connected.is_set():
            return
        status: dict[str, Any] = {}
        if self.status_provider is not None:
            try:
                status = dict(self.status_provider())
            except Exception:
                logger.exception("status provider failed")
        payload = state_payload(
            kiosk_id=self.kiosk_id,
            online=True,
            version=self.version,
            capabilities=self.capabilities,
            config_hash=self.config_hash,
            protocol=self.status()["protocol"],
            status=status,
        )
        client.publish(self.topics.state, _dumps(payload), qos=1, retain=True)

    def _central_status(self, payload: bytes, retained: bool) -> None:
        state = _central_state(payload)
        logger.info("central is %s", state or "unknown", extra={"retained": retained})
        # The retained copy arrives on every subscribe, right after our own birth: only a
        # live announcement means central restarted and lost track of us.
        if state == "online" and not retained:
            self._publish_birth()

    # --- from central: record acknowledgements, the revocation list ------------------------

    def _record_ack(self, payload: bytes) -> None:
        """Central has these records in its database: tell the daemon (idempotent there)."""
        try:
            ids = parse_record_ack(payload, self.kiosk_id)
        except Malformed as err:
            self._ignored("record acknowledgement", err)
            return
        with self._stats_lock:
            self._stats["records_acked"] += len(ids)
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
        with self._stats_lock:
            self._stats["central_ignored"] += 1
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
        client = self._client
        if client is not None and self._connected.is_set():
            client.publish(self.topics.under("telemetry"), _dumps(payload), qos=0)

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

    # --- the outbox drain ------------------------------------------------------------

    def _fill_window(self) -> None:
        """Hand the next outbox rows (in seq order) to paho, at most inflight_window unacked.

        paho keeps every handed QoS 1 message until its PUBACK and sends it again after a
        reconnect; the row leaves the outbox only on that PUBACK. After a restart the cursor is
        0 again, so whatever was not acknowledged goes again, with the same id and seq.
        """
        client = self._client
        if client is None or not self._connected.is_set():
            return
        free = self._window - len(self._inflight)
        if free <= 0:
            return
        for message in self._pending(free):
            self._cursor = message.seq
            if message.id in self._poisoned:
                continue
            body = _dumps(wire_payload(message, self.kiosk_id))
            try:
                info = client.publish(
                    self.topics.under(message.topic), body, qos=1, properties=self._properties()
                )
            except ValueError as err:  # a topic paho refuses (wildcard, empty ...)
                self._poison(message, str(err))
                continue
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                self._cursor = message.seq - 1  # try again on the next pass
                logger.warning("paho refused a publish", extra={"rc": int(info.rc)})
                break
            self._inflight[info.mid] = _Inflight(message.seq, message.id, time.monotonic())
            with self._stats_lock:
                self._stats["published"] += 1

    def _pending(self, limit: int) -> list[OutboxMessage]:
        try:
            return self.outbox.pending(limit, after_seq=self._cursor)
        except Exception:
            # One unreadable row (e.g. sealed with another key) must not stall every row after
            # it: find it, report it, step over it. It stays in the outbox for a technician.
            logger.exception("outbox batch unreadable; reading row by row")
        rows = self.store.query(
            "SELECT seq, id FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (self._cursor, limit)
        )
        good: list[OutboxMessage] = []
        for row in rows:
            try:
                good.extend(self.outbox.pending(1, after_seq=row["seq"] - 1))
            except Exception as err:
                self._cursor = row["seq"]
                if row["id"] not in self._poisoned:
                    self._poisoned.add(row["id"])
                    self.report_event(
                        "fleet.outbox_unreadable",
                        "error",
                        {"id": row["id"], "seq": row["seq"], "error": type(err).__name__},
                    )
                if good:
                    break
        return good

    def _poison(self, message: OutboxMessage, problem: str) -> None:
        self._poisoned.add(message.id)
        logger.error("outbox row cannot be published", extra={"id": message.id, "problem": problem})
        self.report_event(
            "fleet.publish_rejected",
            "error",
            {
                "id": message.id,
                "seq": message.seq,
                "topic": message.topic,
                "problem": problem[:200],
            },
        )

    def _rejected(self, entry: _Inflight, reason: str) -> None:
        # The broker refused it (MQTT 5 PUBACK >= 0x80, e.g. not authorised): keep the row,
        # it goes again after the next restart; central sees the gap in seq meanwhile.
        with self._stats_lock:
            self._stats["rejected"] += 1
        if entry.id not in self._poisoned:
            self._poisoned.add(entry.id)
            logger.error(
                "broker rejected an outbox message", extra={"id": entry.id, "reason": reason}
            )
            self.report_event(
                "fleet.publish_rejected",
                "error",
                {"id": entry.id, "seq": entry.seq, "problem": reason},
            )

    def _properties(self) -> Properties | None:
        if self._mqtt_version != MQTTProtocolVersion.MQTTv5:
            return None
        properties = Properties(PacketTypes.PUBLISH)
        properties.PayloadFormatIndicator = 1
        properties.ContentType = "application/json"
        return properties

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
            with self._stats_lock:
                self._stats["commands"] += 1
            self._reply(outcome)

    def _reply(self, outcome: Outcome) -> None:
        client = self._client
        if client is None:
            return
        properties = None
        if self._mqtt_version == MQTTProtocolVersion.MQTTv5:
            properties = self._properties()
            if outcome.correlation is not None:
                properties.CorrelationData = outcome.correlation
        try:
            client.publish(outcome.topic, _dumps(outcome.result), qos=1, properties=properties)
        except ValueError:
            logger.exception("cannot publish a command result", extra={"topic": outcome.topic})


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


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
