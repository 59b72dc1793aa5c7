"""MQTT side of the console: ingest of kiosk/v1/#, central's birth, acks, commands, requests.

paho's callbacks only enqueue. The `fleet-ingest` thread stores messages in batches (one
transaction each) and only then acknowledges them to the broker (manual PUBACK), so a crash
of the console loses nothing the broker handed over: the broker sends it again, and the store
deduplicates. Records are then acknowledged to their kiosk on `<prefix>/<kiosk>/ack`.
Requests (dossier status) go to the `fleet-requests` thread.

With `[mqtt] shared_group` set, several such consoles (workers, each its own certificate and
client id) share the kiosks' topics through MQTT 5 shared subscriptions; each keeps a
persistent session, so what the broker handed a worker that dies waits in that worker's session
until it is back (docs/fleet-console.md, "Several workers").
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from fleet.config import MqttSection
from fleet.store import BatchOutcome, FleetStore, Incoming
from protocol.messages import KIOSK_ID_PATTERN as KIOSK_ID
from protocol.messages import RECORD_ACK, iso_time
from protocol.mqtt import new_client, tls_context

logger = logging.getLogger(__name__)

MAX_PAYLOAD = 16 * 1024 * 1024  # a signed PDF in a record can be large; anything above is junk
# What kiosks publish (config/mosquitto/kiosk-fleet.acl, the kiosks' `pattern write` lines):
# what a worker of a shared group subscribes to, under <prefix>/+/.
KIOSK_TOPICS = ("state", "telemetry", "events", "records/#", "cmd/+/result", "req/+")
ACK_TIMEOUT_S = 10.0  # record-ack/1 taken by the broker before the batch's PUBACKs

# A handler for requests: (kiosk id from the topic or None, topic, the JSON object or None if
# the payload was not one, MQTT properties) -> None.
RequestHandler = Callable[[str | None, str, dict[str, Any] | None, Any], None]
BatchListener = Callable[[BatchOutcome], None]
# Takes the records of one kind once their batch is committed, before the broker's PUBACK:
# (kiosk id, the record) -> None. An exception has the batch stored and handed again.
RecordHook = Callable[[str, dict[str, Any]], object]


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    rejected: int = 0
    duplicates: int = 0
    acks_sent: int = 0
    requests: int = 0
    retries: int = 0  # batches that failed to store and were tried again
    redelivered: int = 0  # messages the broker sent again (DUP): a session resumed
    by_kind: dict[str, int] = field(default_factory=dict)


class FleetIngest:
    """One MQTT connection for the console: reads every kiosk, writes commands and answers."""

    def __init__(
        self,
        *,
        store: FleetStore,
        config: MqttSection,
        listeners: list[BatchListener] | None = None,
        reconnect_max_s: float = 30.0,
    ) -> None:
        self.store = store
        self.config = config
        self.prefix = config.topic_prefix
        self.status_topic = f"{config.central_topic}/status"
        # Several workers: each says online/offline on its own topic; the fleet's status (the
        # kiosks re-publish their state on its live "online") is not turned offline by one
        # worker's death.
        self.worker_topic = (
            f"{config.central_topic}/workers/{config.client_id}/status"
            if config.shared_group
            else None
        )
        self._generation = 0  # connections so far: a PUBACK only on the connection it is for
        self.listeners = list(listeners or [])
        self.reconnect_max_s = reconnect_max_s
        self.stats = IngestStats()
        self._handlers: list[tuple[str, RequestHandler]] = []
        self.connected_hooks: list[Callable[[], None]] = []  # run on paho's thread
        self.record_hooks: dict[str, RecordHook] = {}  # record kind -> hook
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._requests: queue.Queue[Any] = queue.Queue(maxsize=10000)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._client: mqtt.Client | None = None
        self._threads: list[threading.Thread] = []
        self._stats_lock = threading.Lock()

    # --- wiring ---------------------------------------------------------------------------

    def on_request(self, topic_filter: str, handler: RequestHandler) -> None:
        """Route messages matching topic_filter (subscribed at connect) to handler."""
        self._handlers.append((topic_filter, handler))

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # --- start / stop ---------------------------------------------------------------------

    def start(self) -> None:
        c = self.config
        tls = tls_context(c.ca_file, c.cert_file, c.key_file) if c.tls else None
        client = new_client(c.client_id, tls=tls)
        client.manual_ack_set(True)  # PUBACK only once stored
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(0.1, self.reconnect_max_s)  # type: ignore[arg-type]  # paho takes float seconds
        client.will_set(
            self.worker_topic or self.status_topic,
            json.dumps({"state": "offline"}),
            qos=1,
            retain=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = c.session_expiry_s
        client.connect_async(
            c.host, c.port, keepalive=c.keepalive_s, clean_start=False, properties=props
        )
        self._client = client
        self._stop.clear()
        for name, target in (("fleet-ingest", self._ingest), ("fleet-requests", self._serve)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Say 'offline' (retained), drain what is queued, disconnect."""
        client = self._client
        if client is not None and self._connected.is_set():
            info = client.publish(
                self.worker_topic or self.status_topic,
                json.dumps({"state": "offline"}),
                qos=1,
                retain=True,
            )
            with contextlib.suppress(RuntimeError, ValueError):  # lost the broker meanwhile
                info.wait_for_publish(timeout=min(timeout, 2.0))
        self._stop.set()
        self._inbox.put(None)
        self._requests.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        if client is not None:
            client.disconnect()
            client.loop_stop()
        self._connected.clear()

    # --- publishing -----------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: Any,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> mqtt.MQTTMessageInfo | None:
        """JSON-encode and publish; never raises (None when there is no client)."""
        client = self._client
        if client is None:
            return None
        data = (
            payload
            if isinstance(payload, bytes | str)
            else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        )
        return client.publish(topic, data, qos=qos, retain=retain, properties=properties)

    def send_command(self, envelope: dict[str, Any], kiosk_id: str) -> mqtt.MQTTMessageInfo:
        """Publish a signed command envelope to <prefix>/<kiosk>/cmd/<name>."""
        info = self.publish(f"{self.prefix}/{kiosk_id}/cmd/{envelope['name']}", envelope)
        if info is None:
            raise RuntimeError("the console's MQTT client is not started")
        return info

    # --- paho callbacks (enqueue only) ----------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            logger.error("broker refused the console", extra={"reason": str(reason_code)})
            return
        self._generation += 1
        group = self.config.shared_group
        if group:
            # Only what kiosks publish, shared among the group's workers. No Local is a
            # protocol error on a shared subscription [MQTT-3.8.3-4]: our own commands and acks
            # are not in these filters anyway.
            filters = [f"{self.prefix}/+/{suffix}" for suffix in KIOSK_TOPICS]
            options = SubscribeOptions(qos=1)
        else:
            filters = [f"{self.prefix}/#"]
            options = SubscribeOptions(qos=1, noLocal=True)  # not our own commands and acks
        filters += [
            f
            for f, _ in self._handlers
            if not any(mqtt.topic_matches_sub(base, f.replace("+", "x")) for base in filters)
        ]
        client.subscribe([(f"$share/{group}/{f}" if group else f, options) for f in filters])
        if self.worker_topic:
            client.publish(
                self.worker_topic,
                json.dumps({"state": "online", "time": iso_time()}),
                qos=1,
                retain=True,
            )
        # Central's birth: every connected kiosk re-publishes its full state on seeing it. A
        # worker resuming its session missed nothing (the broker kept it): no birth, no storm.
        if not (group and flags.session_present):
            client.publish(
                self.status_topic,
                json.dumps({"state": "online", "time": iso_time()}),
                qos=1,
                retain=True,
            )
        self._connected.set()
        for hook in self.connected_hooks:
            try:
                hook()
            except Exception:
                logger.exception("on-connect hook failed")
        logger.info("console connected to the broker", extra={"session": flags.session_present})

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            logger.warning("console lost the broker", extra={"reason": str(reason_code)})

    def _on_message(self, client, userdata, message) -> None:
        if message.dup:
            with self._stats_lock:
                self.stats.redelivered += 1
        self._inbox.put(
            (
                self._generation,
                message.mid,
                message.qos,
                message.topic,
                bytes(message.payload),
                getattr(message, "properties", None),
                time.time(),
            )
        )

    # --- the ingest thread ----------------------------------------------------------------

    def _ingest(self) -> None:
        while True:
            first = self._inbox.get()
            if first is None:
                return
            items = [first]
            while len(items) < self.config.batch_max:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._inbox.put(None)
                    break
                items.append(item)
            batch, to_ack, rejected = self._prepare(items)
            delay = 1.0
            while True:
                try:
                    self._commit(batch, to_ack, rejected, len(items))
                    break
                except Exception:
                    # Nothing of the batch is acknowledged yet: keep it and try again (the
                    # database may be restarting); if the console stops meanwhile, the broker
                    # delivers the batch again to the next session.
                    logger.exception("storing a batch failed; retrying", extra={"size": len(items)})
                    with self._stats_lock:
                        self.stats.retries += 1
                    if self._stop.wait(delay):
                        return
                    delay = min(delay * 2, 30.0)

    def _prepare(self, items: list[Any]) -> tuple[list[Incoming], list[tuple[int, int, int]], int]:
        """Parse a batch; requests go to their thread. Returns (to store, to ack, rejected)."""
        batch: list[Incoming] = []
        to_ack: list[tuple[int, int, int]] = []
        rejected = 0
        for generation, mid, qos, topic, payload, props, received_at in items:
            to_ack.append((generation, mid, qos))
            if self._route_request(topic, payload, props):
                continue
            incoming = self._parse(topic, payload, received_at)
            if incoming is None:
                rejected += 1
            elif incoming is not _IGNORED:
                batch.append(incoming)
        return batch, to_ack, rejected

    def _commit(
        self,
        batch: list[Incoming],
        to_ack: list[tuple[int, int, int]],
        rejected: int,
        received: int,
    ) -> None:
        """Store, then acknowledge to the kiosks, then to the broker; then tell listeners."""
        outcome = self.store.apply(batch) if batch else BatchOutcome(acked={}, touched=set())
        self._run_hooks(batch)
        self._acknowledge(outcome.acked or {}, to_ack)
        with self._stats_lock:
            s = self.stats
            s.received += received
            s.rejected += rejected + outcome.rejected
            s.stored += (
                outcome.new_records
                + outcome.new_events
                + outcome.telemetry
                + outcome.states
                + outcome.results
            )
            s.duplicates += outcome.duplicate_records + outcome.duplicate_events
            s.acks_sent += len(outcome.acked or {})
            for m in batch:
                s.by_kind[m.kind] = s.by_kind.get(m.kind, 0) + 1
        for listener in self.listeners:
            try:
                listener(outcome)
            except Exception:
                logger.exception("batch listener failed")

    def _acknowledge(self, acked: dict[str, list[str]], to_ack: list[tuple[int, int, int]]) -> None:
        """record-ack/1 to the kiosks, taken by the broker (its PUBACK), and only then the
        batch's PUBACKs: a console killed in between has its batch handed again (stored once,
        acknowledged again), never a stored record the kiosk is not told about. Without the
        broker nothing is acknowledged: the session keeps the batch for the next connection."""
        client = self._client
        if client is None:
            return
        infos = [
            self.publish(
                f"{self.prefix}/{kiosk_id}/ack",
                {"schema": RECORD_ACK, "kiosk_id": kiosk_id, "ids": ids, "time": iso_time()},
            )
            for kiosk_id, ids in acked.items()
        ]
        for info in infos:
            if info is None:
                return
            try:
                info.wait_for_publish(timeout=ACK_TIMEOUT_S)
            except (RuntimeError, ValueError):
                return  # not connected: the broker hands the batch again in the next session
            if not info.is_published():
                if not self._connected.is_set():
                    return
                raise TimeoutError("the broker did not take the record acknowledgements")
        generation = self._generation
        for message_generation, mid, qos in to_ack:
            # A message of an earlier connection is handed again (DUP) on this one, with its
            # own PUBACK; acking its old packet id here could acknowledge another message.
            if qos > 0 and message_generation == generation:
                client.ack(mid, qos)

    def _run_hooks(self, batch: list[Incoming]) -> None:
        """Each record of a hooked kind to its hook, after the commit and before the PUBACK
        (nothing acknowledged is lost). A hook failing (its database) is tried again, not the
        batch; if the console stops meanwhile, the broker hands the batch again."""
        for m in batch:
            hook = self.record_hooks.get(m.record_kind) if m.kind == "record" else None
            if hook is None:
                continue
            delay = 1.0
            while True:
                try:
                    hook(m.kiosk_id, m.payload)
                    break
                except Exception:
                    logger.exception("record hook failed; retrying", extra={"topic": m.topic})
                    if self._stop.wait(delay):
                        raise
                    delay = min(delay * 2, 30.0)

    def _parse(
        self, topic: str, payload: bytes, received_at: float
    ) -> Incoming | Literal[_Ignored.IGNORED] | None:
        head = self.prefix + "/"
        if not topic.startswith(head):
            return _IGNORED
        parts = topic[len(head) :].split("/")
        kiosk_id, rest = parts[0], parts[1:]
        if not KIOSK_ID.match(kiosk_id) or not rest:
            logger.warning("message on a topic outside the contract", extra={"topic": topic})
            return None
        match rest:
            case ["state"]:
                kind = "state"
            case ["telemetry"]:
                kind = "telemetry"
            case ["events"]:
                kind = "event"
            case ["records", _]:
                kind = "record"
            case ["cmd", _, "result"]:
                kind = "result"
            case ["cmd", _] | ["ack"] | ["res", _]:
                return _IGNORED  # ours (noLocal keeps them away; a second console's are not)
            case _:
                logger.warning("message on an unknown kiosk topic", extra={"topic": topic})
                return None
        if len(payload) > MAX_PAYLOAD:
            logger.warning("message too large, dropped", extra={"topic": topic})
            return None
        try:
            body = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            logger.warning("message is not JSON, dropped", extra={"topic": topic})
            return None
        if not isinstance(body, dict):
            logger.warning("message is not a JSON object, dropped", extra={"topic": topic})
            return None
        if kind in ("event", "record") and not (isinstance(body.get("id"), str) and body["id"]):
            logger.warning("message without an id, dropped", extra={"topic": topic})
            return None
        if body.get("kiosk_id", kiosk_id) != kiosk_id:
            logger.warning("kiosk id in payload differs from topic", extra={"topic": topic})
        return Incoming(
            topic=topic,
            kiosk_id=kiosk_id,  # the topic's: the broker's ACL vouches for it
            kind=kind,
            payload=body,
            received_at=received_at,
            record_kind=rest[1] if kind == "record" else "",
        )

    # --- requests -------------------------------------------------------------------------

    def _route_request(self, topic: str, payload: bytes, props: Any) -> bool:
        for topic_filter, handler in self._handlers:
            if mqtt.topic_matches_sub(topic_filter, topic):
                try:
                    self._requests.put_nowait((handler, topic, payload, props))
                except queue.Full:
                    logger.warning("request queue full, request dropped", extra={"topic": topic})
                return True
        return False

    def _serve(self) -> None:
        while True:
            item = self._requests.get()
            if item is None:
                return
            handler, topic, payload, props = item
            with self._stats_lock:
                self.stats.requests += 1
            try:
                body = json.loads(payload.decode("utf-8")) if payload else {}
            except (UnicodeDecodeError, ValueError):
                body = None
            kiosk_id = None
            head = self.prefix + "/"
            if topic.startswith(head):
                candidate = topic[len(head) :].split("/", 1)[0]
                kiosk_id = candidate if KIOSK_ID.match(candidate) else None
            try:
                handler(kiosk_id, topic, body if isinstance(body, dict) else None, props)
            except Exception:
                logger.exception("request handler failed", extra={"topic": topic})


class _Ignored(Enum):
    """A message that is no error and no data (ours, or outside the fleet's topics)."""

    IGNORED = "ignored"


_IGNORED = _Ignored.IGNORED
