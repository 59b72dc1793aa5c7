"""Singletons elected among console workers: one PostgreSQL advisory lock per role, held on a
session of its own (docs/fleet-console.md, "Elected singletons")."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

logger = logging.getLogger(__name__)

# key1 of the two-int4 advisory locks ("KF", kiosk-fleet); key2 is the role's key. pg_locks
# shows them as locktype 'advisory', classid NAMESPACE, objid role_key(role), objsubid 2.
NAMESPACE = 0x4B46

# The roles the console elects (fleet/console.py); a role name is any short string.
ROLES = ("alerts", "revocations", "enrolment", "housekeeping", "certify-mail", "shipments")

_HELD = sa.text(
    "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND classid = :ns AND objsubid = 2"
)
_TRY = sa.text("SELECT pg_try_advisory_lock(:ns, :key)")


def role_key(role: str) -> int:
    """A stable positive int4 per role name (CRC-32 of the name, top bit cleared)."""
    return zlib.crc32(role.encode("utf-8")) & 0x7FFFFFFF


def default_worker() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class Role:
    name: str
    start: Callable[[], None]
    stop: Callable[[], None]
    locked_at: float | None = None  # monotonic time this worker's session took the lock
    running_since: float | None = None  # wall time the work started here
    next_try: float = 0.0


class Leadership:
    """Runs each added role's work only while this worker holds the role's lock.

    PostgreSQL: one session per worker holds the session-level advisory locks of the roles it
    leads; a heartbeat every `heartbeat_s` checks the session and the locks it holds (the lease
    is the session plus that check). The server ends the session after `lease_s` without a
    query (idle_session_timeout), which releases its locks; the worker stops a role's work on
    its own `lease_s - heartbeat_s` after its last good check was sent, so a worker cut off
    from the database has stopped before the server lets another take over. A worker that
    takes a lock waits one lease before it starts the work, so the previous holder has
    stopped however its lock went. Others try every `retry_s`.

    SQLite (one machine, one process): every role runs from start() to stop().
    """

    def __init__(
        self,
        url: str,
        *,
        worker: str = "",
        heartbeat_s: float = 2.0,
        lease_s: float = 10.0,
        retry_s: float = 3.0,
    ) -> None:
        if lease_s < 2 * heartbeat_s:
            raise ValueError("lease_s must be at least twice heartbeat_s")
        self.url = url
        self.worker = worker or default_worker()
        self.heartbeat_s = heartbeat_s
        self.lease_s = lease_s
        self.retry_s = retry_s
        self.elected = not url.startswith("sqlite")
        self.roles: dict[str, Role] = {}
        self.connected = False
        self._lock = threading.RLock()  # role transitions
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._good_until = 0.0  # monotonic: the lease this worker may still rely on
        self._poisoned = False  # stepped down by the guard: the session must be dropped

    def add(self, name: str, start: Callable[[], None], stop: Callable[[], None]) -> None:
        """A role and its work; adding a name again (a console started again) replaces it."""
        with self._lock:
            if name in self.roles and self.roles[name].running_since is not None:
                raise ValueError(f"role {name} is running")
            self.roles[name] = Role(name, start, stop)

    # --- life -----------------------------------------------------------------------------

    def start(self) -> Leadership:
        self._stop.clear()
        if not self.elected:
            for role in self.roles.values():
                self._start_role(role)
            return self
        for target, name in ((self._run, "fleet-leader"), (self._guard, "fleet-leader-guard")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop every role's work here, then give the locks back (others take over)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.lease_s + 5)
        self._threads.clear()
        self._step_down_all("worker stopping")
        self._drop_session()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def held(self) -> list[str]:
        """The roles whose work runs in this worker now."""
        with self._lock:
            return sorted(r.name for r in self.roles.values() if r.running_since is not None)

    def status(self) -> dict[str, Any]:
        with self._lock:
            roles = {
                r.name: {
                    "leader": r.running_since is not None,
                    "since": r.running_since,
                    "locked": r.locked_at is not None,
                }
                for r in self.roles.values()
            }
        return {
            "worker": self.worker,
            "elected": self.elected,
            "database": self.connected if self.elected else True,
            "roles": roles,
        }

    # --- role transitions -----------------------------------------------------------------

    def _start_role(self, role: Role) -> None:
        with self._lock:
            if role.running_since is not None:
                return
            logger.info("leading", extra={"role": role.name, "worker": self.worker})
            role.running_since = time.time()
            try:
                role.start()
            except Exception:
                logger.exception("role did not start", extra={"role": role.name})

    def _step_down(self, role: Role, reason: str) -> None:
        with self._lock:
            role.locked_at = None
            if role.running_since is None:
                return
            role.running_since = None
            logger.warning(
                "stepping down", extra={"role": role.name, "worker": self.worker, "reason": reason}
            )
            try:
                role.stop()
            except Exception:
                logger.exception("role did not stop cleanly", extra={"role": role.name})

    def _step_down_all(self, reason: str) -> None:
        with self._lock:
            for role in self.roles.values():
                self._step_down(role, reason)

    # --- the elector (PostgreSQL) ---------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._round()
                pause = self.heartbeat_s
            except Exception as err:  # the database away, the session ended, a timeout
                logger.warning(
                    "leadership session lost", extra={"worker": self.worker, "error": str(err)}
                )
                self._step_down_all("database session lost")
                self._drop_session()
                pause = self.retry_s
            self._stop.wait(pause)

    def _round(self) -> None:
        if self._poisoned:
            self._poisoned = False
            self._drop_session()
        conn = self._conn or self._open_session()
        sent = time.monotonic()
        held = {int(k) for (k,) in conn.execute(_HELD, {"ns": NAMESPACE})}
        if self._poisoned:  # the guard gave up on this check while it ran
            raise TimeoutError("heartbeat slower than the lease")
        self._good_until = sent + self.lease_s - self.heartbeat_s
        now = time.monotonic()
        for role in self.roles.values():
            key = role_key(role.name)
            if role.locked_at is not None and key not in held:
                self._step_down(role, "lock no longer held")
            if role.locked_at is None and key in held:  # ours from an earlier round
                role.locked_at = now
            if role.locked_at is None and now >= role.next_try:
                role.next_try = now + self.retry_s
                if conn.execute(_TRY, {"ns": NAMESPACE, "key": key}).scalar():
                    logger.info("lock taken", extra={"role": role.name, "worker": self.worker})
                    role.locked_at = now
            if (
                role.locked_at is not None
                and now - role.locked_at >= self.lease_s  # the last holder has stopped
                and time.monotonic() < self._good_until
                and not self._stop.is_set()
            ):
                self._start_role(role)

    def _open_session(self) -> Connection:
        if self._engine is None:
            self._engine = sa.create_engine(
                self.url,
                poolclass=NullPool,
                isolation_level="AUTOCOMMIT",
                connect_args=self._connect_args(),
            )
        conn = self._engine.connect()
        try:
            # The server ends this session after a lease without a query: a worker cut off
            # (no FIN, no RST) loses its locks then, not after the kernel's keepalive (hours).
            conn.exec_driver_sql(f"SET idle_session_timeout = {int(self.lease_s * 1000)}")
        except Exception:
            conn.close()
            raise
        self._conn = conn
        self.connected = True
        return conn

    def _connect_args(self) -> dict[str, Any]:
        """libpq's own bounds for a blocked call on a dead link (client side)."""
        return {
            "application_name": f"kiosk-fleet leader {self.worker}"[:63],
            "connect_timeout": max(2, int(self.heartbeat_s)),
            "keepalives": 1,
            "keepalives_idle": max(1, int(self.heartbeat_s)),
            "keepalives_interval": 1,
            "keepalives_count": 3,
            "tcp_user_timeout": int(self.lease_s * 1000),
        }

    def _drop_session(self) -> None:
        conn, self._conn = self._conn, None
        self.connected = False
        if conn is not None:
            try:
                conn.invalidate()  # closes the socket: the server ends the session, locks go
            except Exception:
                logger.debug("closing the leadership session failed", exc_info=True)
        with self._lock:
            for role in self.roles.values():
                role.locked_at = None

    # --- the guard: stops the work when the lease runs out, even if the elector is stuck ---

    def _guard(self) -> None:
        tick = min(0.25, self.heartbeat_s / 4)
        while not self._stop.wait(tick):
            if self.held() and time.monotonic() > self._good_until:
                self._poisoned = True
                self._step_down_all("lease ran out (no heartbeat)")
