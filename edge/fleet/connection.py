"""The kiosk's MQTT connection: the paho client and its callbacks, connect, reconnect, birth, will."""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from protocol.messages import Severity, Topics, iso_time, state_payload
from protocol.mqtt import Backoff, new_client, tls_context

logger = logging.getLogger(__name__)
paho_logger = logging.getLogger("edge.fleet.paho")
# paho logs this at ERROR on every loop pass while the broker is away; we say it once.
paho_logger.addFilter(lambda record: not record.getMessage().startswith("Client is not connected"))

Protocol = Literal["auto", "5", "3.1.1"]
StatusProvider = Callable[[], dict[str, Any]]
# report(kind, severity, detail): an event for central and the local bus.
Report = Callable[[str, Severity, dict[str, Any]], None]
# paho's on_message(client, userdata, message), userdata being the client's generation.
MessageRouter = Callable[[mqtt.Client, int, mqtt.MQTTMessage], None]

UNSUPPORTED_PROTOCOL = ReasonCode(PacketTypes.CONNACK, "Unsupported protocol version")


class Counters:
    """The fleet client's figures for telemetry and the technician screen, shared by threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {
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

    def add(self, name: str, count: int = 1) -> None:
        with self._lock:
            self._values[name] += count

    def set(self, **values: Any) -> None:
        with self._lock:
            self._values.update(values)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._values)


class Connection:
    """One paho client at a time: built, connected in the background, replaced on fallback.

    Callbacks run on paho's network thread and only put on `wake`; the `*_event` methods run on
    the fleet thread that takes them off. Messages go to `on_message` unchanged.
    """

    def __init__(
        self,
        *,
        kiosk_id: str,
        topics: Topics,
        wake: queue.Queue[tuple[Any, ...]],
        counters: Counters,
        report: Report,
        on_message: MessageRouter,
        on_new_client: Callable[[], None],
        host: str,
        port: int,
        tls: bool,
        ca_file: Path | None,
        cert_file: Path | None,
        key_file: Path | None,
        keepalive_s: int,
        client_id: str,
        protocol: Protocol,
        session_expiry_s: int,
        reconnect_min_s: float,
        reconnect_max_s: float,
        max_inflight: int,
        connect_timeout_s: float,
        version: str,
        capabilities: Sequence[str],
        config_hash: str,
        status_provider: StatusProvider | None,
    ) -> None:
        self.kiosk_id = kiosk_id
        self.topics = topics
        self.wake = wake
        self.counters = counters
        self.report = report
        self.on_message = on_message
        self.on_new_client = on_new_client
        self.host = host
        self.port = port
        self.tls = tls
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file
        self.keepalive_s = keepalive_s
        self.client_id = client_id
        self.protocol = protocol
        self.session_expiry_s = session_expiry_s
        self.max_inflight = max_inflight
        self.connect_timeout_s = connect_timeout_s
        self.version = version
        self.capabilities = list(capabilities)
        self.config_hash = config_hash
        self.status_provider = status_provider
        self.backoff = Backoff(reconnect_min_s, reconnect_max_s)
        self.client: mqtt.Client | None = None
        self.generation = 0  # callbacks of a replaced client are ignored
        self.mqtt_version = (
            MQTTProtocolVersion.MQTTv311 if protocol == "3.1.1" else MQTTProtocolVersion.MQTTv5
        )
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # SUBACK of this connection's filters
        self.last_refusal: str | None = None

    @property
    def protocol_name(self) -> str:
        return "5" if self.mqtt_version == MQTTProtocolVersion.MQTTv5 else "3.1.1"

    def live(self) -> mqtt.Client | None:
        """The client, when it is connected."""
        client = self.client
        return client if client is not None and self.connected.is_set() else None

    def properties(self) -> Properties | None:
        """PUBLISH properties for a JSON payload (MQTT 5 only)."""
        if self.mqtt_version != MQTTProtocolVersion.MQTTv5:
            return None
        properties = Properties(PacketTypes.PUBLISH)
        properties.PayloadFormatIndicator = 1
        properties.ContentType = "application/json"
        return properties

    # --- the paho client ------------------------------------------------------------

    def build(self) -> bool:
        """A new paho client for the current protocol, connecting in the background."""
        self.generation += 1
        version = self.mqtt_version
        v5 = version == MQTTProtocolVersion.MQTTv5
        client = new_client(
            self.client_id,
            protocol=version,
            clean_session=None if v5 else False,  # 3.1.1: a persistent session
            userdata=self.generation,
        )
        client.enable_logger(paho_logger)
        client.max_inflight_messages_set(self.max_inflight)
        client.max_queued_messages_set(0)  # bounded by the drain's window, not by paho
        client.connect_timeout = self.connect_timeout_s
        _reconnect_after(client, self.backoff.next())
        try:
            if self.tls:
                client.tls_set_context(tls_context(self.ca_file, self.cert_file, self.key_file))
        except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
            self.misconfigured(f"TLS files unusable: {err}")
            return False
        will = state_payload(
            kiosk_id=self.kiosk_id, online=False, reason="connection_lost", with_time=False
        )
        client.will_set(self.topics.state, dumps(will), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self.on_message
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
            self.misconfigured(f"broker address unusable: {err}")
            return False
        client.loop_start()
        self.client = client
        self.on_new_client()
        return True

    def misconfigured(self, problem: str) -> None:
        logger.error("fleet reporting not possible: %s", problem)
        self.counters.set(last_error=problem)
        if self.last_refusal != problem:
            self.last_refusal = problem
            self.report("fleet.misconfigured", "error", {"problem": problem[:200]})

    def stop(self, deadline: float) -> None:
        """Publish 'offline' (retained) if connected, disconnect; bounded by `deadline`."""
        client, self.client = self.client, None
        if client is not None:
            if self.connected.is_set():
                payload = state_payload(kiosk_id=self.kiosk_id, online=False, reason="stopped")
                info = client.publish(self.topics.state, dumps(payload), qos=1, retain=True)
                # RuntimeError / ValueError: the connection went meanwhile; the will says it.
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(max(0.1, min(1.0, deadline - time.monotonic())))
            self.close(client, deadline)
        self.connected.clear()

    def close(self, client: mqtt.Client, deadline: float) -> None:
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
        self.wake.put(("connect", generation, reason_code, flags.session_present, receive_maximum))

    def _on_connect_fail(self, client: mqtt.Client, generation: int) -> None:
        _reconnect_after(client, self.backoff.next())
        self.wake.put(("connect_fail", generation))

    def _on_disconnect(
        self,
        client: mqtt.Client,
        generation: int,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        _reconnect_after(client, self.backoff.next())
        self.wake.put(("disconnect", generation, reason_code))

    def _on_publish(
        self,
        client: mqtt.Client,
        generation: int,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.wake.put(("puback", generation, mid, reason_code))

    def _on_subscribe(
        self,
        client: mqtt.Client,
        generation: int,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self.wake.put(("suback", generation, reason_codes))

    # --- on the fleet thread -----------------------------------------------------------

    def connected_event(self, reason: ReasonCode, session_present: bool) -> bool:
        """CONNACK: True when now connected; a refused MQTT 5 falls back to 3.1.1 ('auto')."""
        if reason.is_failure:
            self.connected.clear()
            if (
                reason == UNSUPPORTED_PROTOCOL
                and self.protocol == "auto"
                and self.mqtt_version == MQTTProtocolVersion.MQTTv5
            ):
                logger.warning("broker refused MQTT 5; falling back to MQTT 3.1.1")
                self.mqtt_version = MQTTProtocolVersion.MQTTv311
                old = self.client
                if old is not None:
                    self.close(old, time.monotonic() + 2.0)
                self.build()
                return False
            problem = f"broker refused the connection: {reason}"
            if self.last_refusal != problem:  # log a change, not every retry
                self.last_refusal = problem
                logger.error(problem)
            self.counters.set(last_error=problem)
            return False
        self.last_refusal = None
        self.subscribed.clear()
        self.connected.set()
        self.counters.add("connects")
        self.counters.set(last_connected_at=iso_time(), last_error=None)
        logger.info(
            "connected to the fleet broker",
            extra={"session_present": session_present, "protocol": self.protocol_name},
        )
        return True

    def disconnected_event(self, reason: ReasonCode | None) -> None:
        if self.connected.is_set():
            logger.warning("lost the fleet broker", extra={"reason": str(reason)})
        elif self.last_refusal is None:
            # Never got a CONNACK: broker down, unreachable, or it refused our TLS handshake.
            problem = (
                f"cannot reach the fleet broker at {self.host}:{self.port} (down, network or TLS)"
            )
            self.last_refusal = problem
            logger.warning(problem)
            self.counters.set(last_error=problem)
        self.connected.clear()

    def subscribed_event(self, reason_codes: list[ReasonCode]) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            logger.error("broker refused a subscription", extra={"reasons": failed})
        self.subscribed.set()

    def publish_birth(self) -> None:
        """The retained 'online' state: version, capabilities, config hash, the app's status."""
        client = self.live()
        if client is None:
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
            protocol=self.protocol_name,
            status=status,
        )
        client.publish(self.topics.state, dumps(payload), qos=1, retain=True)


def dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _reconnect_after(client: mqtt.Client, delay_s: float) -> None:
    """paho's next reconnect after delay_s: min = max, so our Backoff decides, not paho's."""
    # paho annotates whole seconds but computes with them as floats (time arithmetic and
    # sleep); sub-second delays are what a quick retry (and the tests) need.
    client.reconnect_delay_set(delay_s, delay_s)  # type: ignore[arg-type]
