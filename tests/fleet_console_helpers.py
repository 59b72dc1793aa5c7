"""Fleet console test parts: a real PostgreSQL in a temp dir, store URLs, simulated kiosks."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from tests.mqtt_broker import Broker, Identity, Peer, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class Postgres:
    """initdb into a temp dir and run `postgres` on a free loopback port, as a non-root user."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="fleet-pg-"))
        self.data = self.root / "data"
        self.user = "fleet"
        self.proc: subprocess.Popen[bytes] | None = None
        # PostgreSQL refuses to run as root: run it as nobody, in a dir nobody owns.
        self._as: list[str] = []
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self._as = ["runuser", "-u", "nobody", "--"]
        self.root.chmod(0o700)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/fleet"

    def start(self, timeout: float = 30.0) -> Postgres:
        if not (PG_BIN / "postgres").exists():
            raise AssertionError("these tests need PostgreSQL 15: apt-get install postgresql")
        self._initdb()
        self._serve(timeout, create=True)
        return self

    def halt(self) -> None:
        """Stop the server, keep the data (a database outage)."""
        self._shutdown()

    def resume(self, timeout: float = 30.0) -> None:
        self._serve(timeout, create=False)

    def _initdb(self) -> None:
        subprocess.run(
            [
                *self._as,
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "-N",
            ],
            check=True,
            capture_output=True,
        )

    def _serve(self, timeout: float, *, create: bool) -> None:
        log = (self.root / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            [
                *self._as,
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data),
                "-k",
                str(self.root),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        import psycopg

        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"postgres exited:\n{self.log()}")
            try:
                with psycopg.connect(
                    host="127.0.0.1",
                    port=self.port,
                    user=self.user,
                    dbname="postgres",
                    autocommit=True,
                    connect_timeout=2,
                ) as conn:
                    if create:
                        conn.execute("CREATE DATABASE fleet")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"postgres not ready in {timeout} s:\n{self.log()}"
                    ) from None
                time.sleep(0.1)

    def reset(self) -> None:
        """An empty database for the next test (faster than a new cluster)."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute("DROP DATABASE IF EXISTS fleet WITH (FORCE)")
            conn.execute("CREATE DATABASE fleet")

    def stop(self) -> None:
        self._shutdown()
        shutil.rmtree(self.root, ignore_errors=True)

    def _shutdown(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # runuser passes SIGTERM on; "smart" shutdown of the server it started.
            os.killpg(self.proc.pid, signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def log(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def running_postgres() -> Iterator[Postgres]:
    pg = Postgres()
    try:
        yield pg.start()
    finally:
        pg.stop()


def database_url(request: Any, tmp_path: Path, kind: str | None = None) -> str:
    """The URL of an empty fleet database of `kind` (default: the fixture's param), "sqlite" (a
    file in tmp_path) or "postgresql" (the module's `postgres` fixture, reset)."""
    if (kind or request.param) == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    pg: Postgres = request.getfixturevalue("postgres")
    pg.reset()
    return pg.url


# --- a load generator speaking the kiosk side of the contract -----------------------------


class SimKiosk:
    """Publishes what a kiosk publishes (state, telemetry, events, records) through a Peer.

    For fleets too large for one FleetClient process each; the real client is used where one
    kiosk's behaviour matters (commands, records through the outbox).
    """

    def __init__(self, broker: Broker, identity: Identity) -> None:
        self.kiosk_id = identity.cn
        self.peer = Peer(broker, identity)
        self.base = f"kiosk/v1/{self.kiosk_id}"
        self.seq = 0
        self.peer.client.will_set(
            f"{self.base}/state",
            json.dumps(
                {
                    "schema": "state/1",
                    "kiosk_id": self.kiosk_id,
                    "state": "offline",
                    "reason": "connection_lost",
                }
            ),
            qos=1,
            retain=True,
        )

    def start(self) -> SimKiosk:
        self.peer.connect()
        self.birth()
        return self

    def birth(self) -> None:
        self.peer.publish(
            f"{self.base}/state",
            json.dumps(
                {
                    "schema": "state/1",
                    "kiosk_id": self.kiosk_id,
                    "state": "online",
                    "time": _now(),
                    "version": "0.1.0",
                    "capabilities": ["camera", "printer"],
                    "config_hash": "sim",
                    "protocol": "5",
                    "status": {"locked": False, "ready": True},
                }
            ),
            retain=True,
        )

    def _stamp(self, payload: dict[str, Any], message_id: str | None = None) -> dict[str, Any]:
        self.seq += 1
        return {
            **payload,
            "kiosk_id": self.kiosk_id,
            "id": message_id or str(uuid.uuid4()),
            "seq": self.seq,
            "queued_at": _now(),
        }

    def telemetry(
        self,
        *,
        paper: str = "ok",
        cpu: float = 48.0,
        disk_pct: float = 40.0,
        outbox: int = 0,
        camera_ok: bool = True,
        wait: bool = True,
        at: float | None = None,
    ) -> None:
        payload = self._stamp(
            {
                "schema": "telemetry/1",
                "time": _now(at),
                "uptime_s": 100.0,
                "system": {
                    "uptime_s": 1000.0,
                    "load": [0.2, 0.2, 0.1],
                    "cpu_temp_c": cpu,
                    "memory": {"total_mb": 4000, "available_mb": 3000, "used_pct": 25.0},
                    "disk": {
                        "total_mb": 30000,
                        "free_mb": int(30000 * (1 - disk_pct / 100)),
                        "used_pct": disk_pct,
                    },
                },
                "outbox": {"record": outbox, "event": 0, "telemetry": 0},
                "fleet": {"connected": True, "protocol": "5", "inflight": 0},
                "printer": {"online": True, "paper": paper, "cover_open": False},
                "camera": {"ok": camera_ok, "state": "streaming", "frames": 10},
                "door": "closed",
                "versions": {"software": "0.1.0"},
            }
        )
        self._send("telemetry", payload, wait)

    def event(
        self, kind: str, severity: str = "warning", detail: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        payload = self._stamp(
            {
                "schema": "event/1",
                "kind": kind,
                "severity": severity,
                "time": _now(),
                "detail": detail or {},
            }
        )
        self._send("events", payload, True)
        return payload

    def record(
        self, kind: str, data: dict[str, Any], message_id: str | None = None
    ) -> dict[str, Any]:
        payload = self._stamp(
            {"schema": "record/1", "kind": kind, "time": _now(), "data": data}, message_id
        )
        self._send(f"records/{kind}", payload, True)
        return payload

    def resend(self, topic_suffix: str, payload: dict[str, Any]) -> None:
        self._send(topic_suffix, payload, True)

    def _send(self, suffix: str, payload: dict[str, Any], wait: bool) -> None:
        if wait:
            self.peer.publish(f"{self.base}/{suffix}", json.dumps(payload))
        else:
            self.peer.client.publish(f"{self.base}/{suffix}", json.dumps(payload), qos=1)

    def drop(self) -> None:
        """Vanish without a clean stop: the broker publishes the will."""
        sock = self.peer.client.socket()
        if isinstance(sock, socket.socket):  # paho's SSL socket is one
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.peer.client.loop_stop()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.peer.client.disconnect()
            self.peer.client.loop_stop()


def _now(at: float | None = None) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(time.time() if at is None else at, dt.UTC).isoformat()


__all__ = ["Postgres", "SimKiosk", "mqtt", "running_postgres"]
