"""Fleet test harness: a test CA, a real Mosquitto from config/mosquitto, and MQTT peers."""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import ipaddress
import json
import random
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.fleet import FleetClient
from edge.pki import self_signed_ca

REPO = Path(__file__).resolve().parent.parent
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
BROKER_CONF = REPO / "config" / "mosquitto" / "mosquitto.conf"
BROKER_ACL = REPO / "config" / "mosquitto" / "kiosk-fleet.acl"
CENTRAL = "fleet-central"  # the CN the ACL grants central's rights to


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def restartable_port() -> int:
    """A free loopback port below the kernel's ephemeral range, for a server a test stops and
    starts again on the same port. A port from the ephemeral range (what bind(0) gives) can be
    taken while the server is down: by any process's outgoing connection, or by the kiosk's own
    reconnect to it (a TCP self-connect), and the restart then fails with "Address already in
    use" (seen once in a fresh-machine CI run)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not met in {timeout} s (last value: {value!r})")


# --- certificates -------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    cn: str
    cert: Path
    key: Path


class FleetPki:
    """A fleet CA (ECDSA P-256) issuing the broker's and the clients' certificates."""

    def __init__(
        self,
        root: Path,
        *,
        ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None,
    ) -> None:
        """ca: an existing CA (key, certificate), e.g. one made by `kiosk-ca init`."""
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._ca_key = ca[0] if ca else ec.generate_private_key(ec.SECP256R1())
        name = (
            ca[1].subject
            if ca
            else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kiosk-edge test fleet CA")])
        )
        now = dt.datetime.now(dt.UTC)
        self._ca_name = name
        self._ca_cert = (
            ca[1]
            if ca
            else self_signed_ca(
                self._ca_key,
                name,
                not_before=now - dt.timedelta(hours=1),
                not_after=now + dt.timedelta(days=2),
            )
        )
        self.ca_file = root / "ca.crt"
        self.ca_file.write_bytes(self._ca_cert.public_bytes(serialization.Encoding.PEM))
        self.server = self._issue("broker", server=True)
        self._clients: dict[str, Identity] = {}

    def client(self, cn: str) -> Identity:
        if cn not in self._clients:
            self._clients[cn] = self._issue(cn, server=False)
        return self._clients[cn]

    def sign_csr(self, csr_pem: str, days: int = 30) -> str:
        """Central's side of a certificate rotation: the CSR's key and name, our signature."""
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        assert csr.is_signature_valid
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self._ca_name)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    def _issue(self, cn: str, *, server: bool) -> Identity:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self._ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        cert = builder.sign(self._ca_key, hashes.SHA256())
        stem = cn.replace("/", "_")
        cert_path, key_path = self.root / f"{stem}.crt", self.root / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        return Identity(cn, cert_path, key_path)


# --- the broker ---------------------------------------------------------------------------


def render_broker_config(
    root: Path, port: int, pki: FleetPki, *, provision_port: int = 0, crl: Path | None = None
) -> Path:
    """config/mosquitto/mosquitto.conf with only paths, ports and user swapped for the test
    (and, given a CRL file, its crlfile line switched on)."""
    text = BROKER_CONF.read_text()
    passwd = root / "provision.passwd"
    if not passwd.exists():
        root.mkdir(parents=True, exist_ok=True)
        passwd.touch(mode=0o600)
    swaps = {
        "password_file /etc/mosquitto/provision.passwd": f"password_file {passwd}",
        "listener 8884": f"listener {provision_port or free_port()} 127.0.0.1",
        "#crlfile /etc/mosquitto/ca/fleet-ca.crl": f"crlfile {crl}" if crl else "#crlfile",
        "user mosquitto": f"user {getpass.getuser()}",
        "persistence_location /var/lib/mosquitto/": f"persistence_location {root / 'data'}/",
        "acl_file /etc/mosquitto/kiosk-fleet.acl": f"acl_file {BROKER_ACL}",
        "listener 8883": f"listener {port} 127.0.0.1",
        "cafile /etc/mosquitto/ca/fleet-ca.crt": f"cafile {pki.ca_file}",
        "certfile /etc/mosquitto/certs/broker.crt": f"certfile {pki.server.cert}",
        "keyfile /etc/mosquitto/certs/broker.key": f"keyfile {pki.server.key}",
    }
    lines = text.splitlines()
    for old, new in swaps.items():
        assert lines.count(old) >= 1, f"{BROKER_CONF} no longer has the line {old!r}"
        lines = [new if line == old else line for line in lines]
    (root / "data").mkdir(parents=True, exist_ok=True)
    path = root / "mosquitto.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


class Broker:
    """A Mosquitto process on a free loopback port; stop/start keeps its persistence dir."""

    def __init__(self, root: Path, pki: FleetPki, *, crl: Path | None = None) -> None:
        self.root = root
        self.pki = pki
        self.port = restartable_port()  # tests stop and restart the broker on it
        self.provision_port = (
            restartable_port()
        )  # the enrolment listener (password, no client cert)
        self.passwd = root / "provision.passwd"
        self.conf = render_broker_config(
            root, self.port, pki, provision_port=self.provision_port, crl=crl
        )
        self.log_path = root / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 5.0) -> None:
        if not Path(MOSQUITTO).exists():
            raise AssertionError("the fleet tests need Mosquitto: apt-get install mosquitto")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.01)
        raise AssertionError(f"mosquitto not listening in {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM: a clean stop, which writes the persistence database."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its password file and ACL (a claim account added)."""
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(signal.SIGHUP)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# --- MQTT peers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    properties: Any

    def json(self) -> Any:
        return json.loads(self.payload)


class Peer:
    """A plain paho client with a fleet certificate: central, a monitor, or a rogue kiosk."""

    def __init__(
        self,
        broker: Broker,
        identity: Identity,
        *,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
        persistent: bool = False,
    ) -> None:
        self.broker = broker
        self.identity = identity
        self.protocol = protocol
        self.persistent = persistent
        self.messages: list[Received] = []
        self.subacks: dict[int, list[Any]] = {}
        self.pubacks: dict[int, Any] = {}
        self.connack: Any = None
        self._lock = threading.Lock()
        v5 = protocol == MQTTProtocolVersion.MQTTv5
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=identity.cn,  # the broker replaces it with the CN anyway
            protocol=protocol,
            clean_session=None if v5 else not persistent,
        )
        self.client.tls_set(
            ca_certs=str(broker.pki.ca_file),
            certfile=str(identity.cert),
            keyfile=str(identity.key),
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish

    def connect(self, timeout: float = 5.0) -> Peer:
        properties = None
        clean_start: Any = mqtt.MQTT_CLEAN_START_FIRST_ONLY
        if self.protocol == MQTTProtocolVersion.MQTTv5:
            clean_start = not self.persistent
            if self.persistent:
                properties = Properties(PacketTypes.CONNECT)
                properties.SessionExpiryInterval = 3600
        self.client.connect_async(
            "127.0.0.1",
            self.broker.port,
            keepalive=30,
            clean_start=clean_start,
            properties=properties,
        )
        self.client.loop_start()
        wait_until(self.client.is_connected, timeout, f"{self.identity.cn} connected")
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5.0) -> list[Any]:
        result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        return wait_until(lambda: self.subacks.get(mid), timeout, f"SUBACK for {topic}")

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
        timeout: float = 5.0,
    ) -> Any:
        """Publish and wait for the PUBACK; returns its reason code (MQTT 5 says refusals)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(timeout)
        return self.pubacks.get(info.mid)

    def received(self, topic_filter: str = "#") -> list[Received]:
        with self._lock:
            return [m for m in self.messages if mqtt.topic_matches_sub(topic_filter, m.topic)]

    def wait_for(
        self,
        topic_filter: str,
        predicate: Callable[[Received], bool] = lambda m: True,
        timeout: float = 10.0,
    ) -> Received:
        def find() -> Received | None:
            return next((m for m in self.received(topic_filter) if predicate(m)), None)

        return wait_until(find, timeout, f"a message on {topic_filter}")

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connack = reason_code

    def _on_message(self, client, userdata, message) -> None:
        received = Received(
            message.topic, bytes(message.payload), bool(message.retain), message.properties
        )
        with self._lock:
            self.messages.append(received)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.subacks[mid] = list(reason_codes)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.pubacks[mid] = reason_code


# --- a 3.1.1-only front for the fallback test ----------------------------------------------


class V311OnlyFront:
    """Looks like an MQTT 3.1.1-only broker: refuses an MQTT 5 CONNECT the way such a broker
    does (a 3.1.1 CONNACK 'unacceptable protocol version'), and passes any other connection,
    byte for byte, to the real Mosquitto behind it, presenting the given client certificate.
    """

    def __init__(self, broker: Broker, identity: Identity) -> None:
        self.broker = broker
        self.identity = identity
        self.port = free_port()
        self.refused_v5 = 0
        self.passed = 0
        self._server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server.load_cert_chain(broker.pki.server.cert, broker.pki.server.key)
        self._server.load_verify_locations(broker.pki.ca_file)
        self._server.verify_mode = ssl.CERT_REQUIRED
        self._upstream = ssl.create_default_context(cafile=str(broker.pki.ca_file))
        self._upstream.load_cert_chain(identity.cert, identity.key)
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> V311OnlyFront:
        self._spawn(self._accept)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            self._spawn(self._serve, raw)

    def _serve(self, raw: socket.socket) -> None:
        try:
            conn = self._server.wrap_socket(raw, server_side=True)
            first = _read_packet(conn)
            level = _connect_protocol_level(first)
            if level == 5:
                self.refused_v5 += 1
                conn.sendall(b"\x20\x02\x00\x01")  # CONNACK, return code 1
                conn.close()
                return
            self.passed += 1
            up = self._upstream.wrap_socket(
                socket.create_connection(("127.0.0.1", self.broker.port)),
                server_hostname="localhost",
            )
            up.sendall(first)
            self._spawn(_pump, conn, up)
            _pump(up, conn)
        except (OSError, ValueError):
            raw.close()


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ValueError("connection closed")
        data += chunk
    return data


def _read_packet(sock: socket.socket) -> bytes:
    header = _read_exact(sock, 1)
    length, shift, raw_len = 0, 0, b""
    while True:
        byte = _read_exact(sock, 1)
        raw_len += byte
        length |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            break
        shift += 7
    return header + raw_len + _read_exact(sock, length)


def _connect_protocol_level(packet: bytes) -> int:
    if packet[0] >> 4 != 1:
        raise ValueError("first packet is not CONNECT")
    i = 1
    while packet[i] & 0x80:
        i += 1
    i += 1
    name_len = int.from_bytes(packet[i : i + 2], "big")
    return packet[i + 2 + name_len]


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.close()


# --- what the test modules' fixtures wrap ---------------------------------------------------


@contextlib.contextmanager
def running_broker(root: Path, pki: FleetPki, *, crl: Path | None = None) -> Iterator[Broker]:
    """A started broker, stopped afterwards whatever happened."""
    b = Broker(root, pki, crl=crl)
    b.start()
    try:
        yield b
    finally:
        b.stop()


@contextlib.contextmanager
def central_peer(broker: Broker, pki: FleetPki, topic: str = "kiosk/v1/#") -> Iterator[Peer]:
    """Central, connected and subscribed to every kiosk's tree."""
    peer = Peer(broker, pki.client(CENTRAL)).connect()
    peer.subscribe(topic)
    try:
        yield peer
    finally:
        peer.close()


# --- payload schemas ------------------------------------------------------------------------

SCHEMA_DIR = REPO / "protocol" / "schemas"
_FORMATS = jsonschema.FormatChecker()


@_FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    # jsonschema only checks date-time with an optional extra package; this is enough here.
    if not isinstance(value, str):
        return True
    return dt.datetime.fromisoformat(value).tzinfo is not None


def schema_validator(name: str) -> jsonschema.Draft202012Validator:
    """Validator for schemas/<name>.json, with date-time checked."""
    schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=_FORMATS)


def assert_valid(payload: Any, name: str) -> None:
    errors = sorted(schema_validator(name).iter_errors(payload), key=lambda e: list(e.path))
    assert not errors, f"{name}: " + "; ".join(
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors
    )


def kiosk_client(
    broker: Broker,
    pki: FleetPki,
    identity: Identity,
    *,
    kiosk_id: str,
    store: Any,
    outbox: Any,
    **options: Any,
) -> FleetClient:
    """The kiosk's real FleetClient on the tests' broker under identity: fast reconnects, no
    telemetry unless asked; options go to FleetClient as they are (not started)."""
    settings: dict[str, Any] = {
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5,
        "telemetry_interval_s": 3600,
    }
    return FleetClient(
        kiosk_id=kiosk_id,
        store=store,
        outbox=outbox,
        host="localhost",
        port=broker.port,
        ca_file=pki.ca_file,
        cert_file=identity.cert,
        key_file=identity.key,
        **(settings | options),
    )
