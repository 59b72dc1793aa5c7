"""Fleet console figures (issue 10): ingest throughput and dashboard response time with
2,000 simulated kiosks on one local Mosquitto (mTLS, the shipped config and ACL).

The simulated kiosks are a load generator: a few MQTT connections that publish the kiosk
side of the contract (state/1, telemetry/1) for 2,000 kiosk ids. The broker runs the shipped
mosquitto.conf with the shipped ACL plus one line that lets the load generator write every
kiosk's tree (a real kiosk may only write its own). Everything is set up once per bench run
and torn down at exit; each sample is bounded.
"""

from __future__ import annotations

import atexit
import datetime as dt
import http.cookiejar
import json
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.registry import BenchError, figure

KIOSKS = 2000
CONNECTIONS = 8
TELEMETRY_ROUNDS = 3  # per ingest sample: 6,000 telemetry messages
LOADGEN = "bench-loadgen"
PASSWORD = "bench-password-1"
TIMEOUT_S = 120.0

_env: dict[str, Any] = {}
_lock = threading.Lock()


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat()


class _LoadGen:
    """CONNECTIONS paho clients sharing the kiosk ids between them."""

    def __init__(self, peers: list[Any]) -> None:
        self.peers = peers  # one certificate each: the broker takes the CN as client id
        self.seq: dict[str, int] = {}

    def connect(self) -> None:
        for peer in self.peers:
            peer.connect()

    def close(self) -> None:
        for peer in self.peers:
            peer.close()

    def publish_all(self, messages: list[tuple[str, str, bool]]) -> None:
        """Publish at QoS 1 spread over the connections; returns when all are PUBACKed."""
        infos = []
        for i, (topic, payload, retain) in enumerate(messages):
            peer = self.peers[i % len(self.peers)]
            infos.append(peer.client.publish(topic, payload, qos=1, retain=retain))
        deadline = time.monotonic() + TIMEOUT_S
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise BenchError("the broker did not acknowledge the load in time")


def _kiosk_ids() -> list[str]:
    sites = ["HN-TAYHO", "HN-BADINH", "HN-HOANKIEM", "HN-CAUGIAY", "HN-DONGDA"]
    return [f"{sites[i % len(sites)]}-{i:04d}" for i in range(KIOSKS)]


def _telemetry(kiosk_id: str, seq: int, at: float) -> str:
    return json.dumps(
        {
            "schema": "telemetry/1",
            "kiosk_id": kiosk_id,
            "id": f"{kiosk_id}-t{seq}",
            "seq": seq,
            "queued_at": _iso(at),
            "time": _iso(at),
            "uptime_s": 100.0,
            "system": {
                "uptime_s": 1000.0,
                "load": [0.3, 0.2, 0.1],
                "cpu_temp_c": 45.0 + seq % 30,
                "memory": {"total_mb": 4000, "available_mb": 3100},
                "disk": {"total_mb": 30000, "free_mb": 20000, "used_pct": 33.3},
            },
            "outbox": {"record": seq % 3, "event": 0, "telemetry": 0},
            "fleet": {"connected": True, "protocol": "5", "inflight": 0},
            "printer": {"online": True, "paper": "ok" if seq % 50 else "near-end"},
            "camera": {"ok": True},
            "versions": {"software": "0.1.0"},
        }
    )


def _setup() -> dict[str, Any]:
    with _lock:
        if _env:
            return _env
        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            raise BenchError("mosquitto is not installed (apt install mosquitto)")
        from fleet.config import (
            AlertsSection,
            FleetConfig,
            MqttSection,
            StoreSection,
            WebSection,
        )
        from fleet.console import build_console
        from fleet.operators import create_operator
        from fleet.web import create_app
        from tests.mqtt_broker import BROKER_ACL, CENTRAL, Broker, FleetPki, Peer
        from web_ui.server import WebServer

        stack = ExitStack()
        atexit.register(stack.close)
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-console-")))
        pki = FleetPki(root / "pki")
        broker = Broker(root / "broker", pki)
        acl = root / "bench.acl"
        acl.write_text(
            BROKER_ACL.read_text()
            + "\n# bench only: the load generator speaks for every kiosk\n"
            + "".join(f"user {LOADGEN}-{i}\ntopic write kiosk/v1/#\n" for i in range(CONNECTIONS))
        )
        conf = broker.conf.read_text().replace(f"acl_file {BROKER_ACL}", f"acl_file {acl}")
        broker.conf.write_text(conf)
        broker.start()
        stack.callback(broker.stop)
        me = pki.client(CENTRAL)
        config = FleetConfig(
            store=StoreSection(url=f"sqlite:///{root / 'fleet.db'}", data_key_file=root / "dk"),
            mqtt=MqttSection(
                host="localhost",
                port=broker.port,
                ca_file=pki.ca_file,
                cert_file=me.cert,
                key_file=me.key,
            ),
            alerts=AlertsSection(interval_s=5.0),
            web=WebSection(secret_key_file=root / "secret.key", cookie_secure=False),  # plain HTTP
        )
        console = build_console(config)
        console.start()
        stack.callback(console.stop)
        if not console.ingest.wait_connected(10):
            raise BenchError("the console did not connect to the broker")
        gen = _LoadGen([Peer(broker, pki.client(f"{LOADGEN}-{i}")) for i in range(CONNECTIONS)])
        gen.connect()
        stack.callback(gen.close)
        ids = _kiosk_ids()
        now = time.time()
        births = [
            (
                f"kiosk/v1/{k}/state",
                json.dumps(
                    {
                        "schema": "state/1",
                        "kiosk_id": k,
                        "state": "online",
                        "time": _iso(now),
                        "version": "0.1.0",
                        "capabilities": ["printer", "camera"],
                        "config_hash": "bench",
                        "protocol": "5",
                        "status": {"locked": False},
                    }
                ),
                True,
            )
            for k in ids
        ]
        _ingest(console, gen, births)
        # A day of history for the kiosk page: 48 samples for the first kiosk.
        gen.seq.update({k: 0 for k in ids})
        history = []
        for i in range(48):
            gen.seq[ids[0]] += 1
            history.append(
                (
                    f"kiosk/v1/{ids[0]}/telemetry",
                    _telemetry(ids[0], gen.seq[ids[0]], now - 86400 + i * 1800),
                    False,
                )
            )
        _ingest(console, gen, history)
        create_operator(console.store, "bench.operator", "Bench", PASSWORD)
        web = WebServer(create_app(console), host="127.0.0.1", port=0, threads=4)
        web.start()
        stack.callback(web.stop)
        opener = _login(f"http://127.0.0.1:{web.port}")
        _env.update(
            console=console, gen=gen, ids=ids, opener=opener, url=f"http://127.0.0.1:{web.port}"
        )
        return _env


def _ingest(console: Any, gen: _LoadGen, messages: list[tuple[str, str, bool]]) -> float:
    """Publish and wait until the console has stored them all; returns the seconds taken."""
    target = console.ingest.stats.received + len(messages)
    start = time.perf_counter()
    gen.publish_all(messages)
    deadline = time.monotonic() + TIMEOUT_S
    while console.ingest.stats.received < target:
        if time.monotonic() > deadline:
            raise BenchError(
                f"console ingested {console.ingest.stats.received} of {target} in {TIMEOUT_S} s"
            )
        time.sleep(0.005)
    return time.perf_counter() - start


def _login(url: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{url}/login", timeout=10).read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    if token is None:
        raise BenchError("no CSRF token on the login page")
    body = urllib.parse.urlencode(
        {"csrf_token": token.group(1), "operator": "bench.operator", "password": PASSWORD}
    ).encode()
    final = opener.open(f"{url}/login", data=body, timeout=10)
    if "/login" in final.geturl():
        raise BenchError("bench login failed")
    return opener


@figure(f"console ingest, {KIOSKS} kiosks x {TELEMETRY_ROUNDS} telemetry via broker", unit="msg/s")
def ingest_throughput() -> float:
    env = _setup()
    gen, ids, console = env["gen"], env["ids"], env["console"]
    now = time.time()
    messages = []
    for _ in range(TELEMETRY_ROUNDS):
        for k in ids:
            gen.seq[k] += 1
            messages.append((f"kiosk/v1/{k}/telemetry", _telemetry(k, gen.seq[k], now), False))
    return len(messages) / _ingest(console, gen, messages)


def _get(path: str) -> float:
    env = _setup()
    start = time.perf_counter()
    with env["opener"].open(env["url"] + path, timeout=30) as response:
        body = response.read()
        if response.status != 200 or b"login" in response.geturl().encode():
            raise BenchError(f"GET {path} answered {response.status}")
    elapsed = (time.perf_counter() - start) * 1000
    # The dashboard is paginated (issue 20): it counts every kiosk and lists one page.
    if path == "/" and f"/ {KIOSKS} kiosk".encode() not in body:
        raise BenchError(f"the dashboard did not count {KIOSKS} kiosks")
    return elapsed


@figure(f"console dashboard, {KIOSKS} kiosks (GET /, first page)", unit="ms")
def dashboard_response() -> float:
    return _get("/")


@figure("console kiosk page with 24 h charts (GET /kiosks/<id>)", unit="ms")
def kiosk_page_response() -> float:
    env = _setup()
    return _get(f"/kiosks/{env['ids'][0]}")
