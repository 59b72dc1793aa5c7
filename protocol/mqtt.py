"""The one factory for paho MQTT clients and their TLS contexts, and the reconnect backoff."""

from __future__ import annotations

import random
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion


def tls_context(
    ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """Verifies the broker against ca_file (the system store without one), TLS 1.2 at least;
    with cert_file, our own certificate for mutual TLS. Raises OSError (ssl.SSLError) for
    unusable files."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    return context


def new_client(
    client_id: str,
    *,
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
    clean_session: bool | None = None,
    userdata: Any = None,
    tls: ssl.SSLContext | None = None,
    suppress_exceptions: bool = True,
) -> mqtt.Client:
    """A paho client on callback API v2, not yet connected.

    suppress_exceptions: a bug in a callback is logged and must not kill the network thread.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        clean_session=clean_session,
        userdata=userdata,
    )
    client.suppress_exceptions = suppress_exceptions
    if tls is not None:
        client.tls_set_context(tls)
    return client


class Backoff:
    """Exponential reconnect delay with 'equal jitter': half fixed, half random.

    A whole fleet that lost the broker at once must not come back in lock step.
    """

    def __init__(
        self, min_s: float, max_s: float, *, rng: Callable[[], float] = random.random
    ) -> None:
        self.min_s = min_s
        self.max_s = max(min_s, max_s)
        self.rng = rng
        self.attempt = 0
        self._lock = threading.Lock()

    def next(self) -> float:
        with self._lock:
            ceiling = min(self.max_s, self.min_s * 2 ** min(self.attempt, 30))
            self.attempt += 1
        return ceiling / 2 + self.rng() * ceiling / 2

    def reset(self) -> None:
        with self._lock:
            self.attempt = 0
