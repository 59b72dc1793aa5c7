"""A small central responder for dossier status (docs/fleet.md, "Dossier status"): what the
fleet console must do, as a plain paho client with central's certificate. It also records every
other message it receives, so it can stand in for the `central` peer in the same test."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.mqtt_broker import CENTRAL, Broker, FleetPki, Peer


class CentralResponder:
    """Central's side, as the fleet console must implement it: subscribe to every kiosk's
    req/dossier-status, answer to the Response Topic (MQTT 5, correlation echoed) or reply_to
    (3.1.1), with the request_id, only within the kiosk's own tree."""

    def __init__(self, broker: Broker, pki: FleetPki, *, also: str | None = None) -> None:
        self.dossiers: dict[str, dict[str, Any]] = {}
        self.silent: set[str] = set()  # codes it never answers (a timeout)
        self.unavailable = False
        self.override: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.requests: list[tuple[str, dict[str, Any], Any]] = []
        self.peer = Peer(broker, pki.client(CENTRAL)).connect()
        self._record = self.peer.client.on_message
        self.peer.client.on_message = self._on_message
        self.peer.subscribe("kiosk/v1/+/req/dossier-status")
        if also:  # e.g. "kiosk/v1/#": keep what else arrives, like the central peer does
            self.peer.subscribe(also)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if not mqtt.topic_matches_sub("kiosk/v1/+/req/dossier-status", message.topic):
            self._record(client, userdata, message)
            return
        request = json.loads(message.payload)
        props = getattr(message, "properties", None)
        self.requests.append((message.topic, request, props))
        kiosk_id = message.topic.split("/")[2]
        code = request["code"]
        if code in self.silent:
            return
        answer: dict[str, Any] = {
            "schema": "dossier-status-response/1",
            "request_id": request["request_id"],
            "code": code,
            "answered_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        if self.unavailable:
            answer.update(result="unavailable", message="upstream timeout")
        elif code in self.dossiers:
            answer.update(result="found", dossier=self.dossiers[code])
        else:
            answer["result"] = "not_found"
        if self.override is not None:
            answer = self.override(answer)
        allowed = f"kiosk/v1/{kiosk_id}/res/dossier-status"
        topic = getattr(props, "ResponseTopic", None) or request.get("reply_to") or allowed
        if topic != allowed:
            return  # never answer outside the asking kiosk's tree
        out = Properties(PacketTypes.PUBLISH)
        correlation = getattr(props, "CorrelationData", None)
        if correlation is not None:
            out.CorrelationData = correlation
        client.publish(topic, json.dumps(answer, ensure_ascii=False), qos=1, properties=out)

    def close(self) -> None:
        self.peer.close()
