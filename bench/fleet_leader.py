"""Elected singletons (issue 20): how long a role goes without a leader when its holder is
SIGKILLed, has its PostgreSQL session terminated, or freezes (no FIN, as on a network cut).

Two worker processes (tests/leader_worker.py: fleet.leader.Leadership over the console's
roles, the default timings: heartbeat 2 s, lease 10 s, retry 3 s) on a real PostgreSQL in a
temp dir; each sample hits the holder of "alerts" and times until a worker starts that role's
work again, then brings the fleet back to two workers. Set up once, torn down at exit.
"""

from __future__ import annotations

import atexit
import signal
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.registry import BenchError, figure

HEARTBEAT_S, LEASE_S, RETRY_S = 2.0, 10.0, 3.0
TIMEOUT_S = 90.0

_env: dict[str, Any] = {}
_lock = threading.Lock()


def _setup() -> dict[str, Any]:
    with _lock:
        if _env:
            return _env
        from tests.fleet_console_helpers import PG_BIN, Postgres

        if not (PG_BIN / "postgres").exists():
            raise BenchError("PostgreSQL 15 is not installed (apt install postgresql)")
        import psycopg

        stack = ExitStack()
        atexit.register(stack.close)
        pg = Postgres().start()
        stack.callback(pg.stop)
        with psycopg.connect(
            host="127.0.0.1", port=pg.port, user=pg.user, dbname="fleet", autocommit=True
        ) as conn:
            conn.execute("CREATE TABLE leader_work (role text, worker text, at double precision)")
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-leader-")))
        workers = _Workers(pg, root)
        stack.callback(workers.close)
        _env.update(pg=pg, workers=workers)
        return _env


class _Workers:
    """Two live workers; the one hit in a sample is replaced by a fresh one."""

    def __init__(self, pg: Any, root: Path) -> None:
        from tests.test_fleet_leader import Workers

        self.w = Workers(pg, root, (HEARTBEAT_S, LEASE_S, RETRY_S))
        self.n = 0
        for _ in range(2):
            self.spawn()

    def spawn(self) -> None:
        self.n += 1
        self.w.spawn(f"w{self.n}")

    def close(self) -> None:
        self.w.close()

    def alerts_holder(self) -> str:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            running = self.w.running()["alerts"]
            if len(running) == 1:
                return running[0]
            time.sleep(0.05)
        raise BenchError("no single holder of alerts")

    def next_start(self, after: float) -> float:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            for name, proc in self.w.procs.items():
                if proc.poll() is None:
                    later = [t for t in self.w.events(name, "start", "alerts") if t > after]
                    if later:
                        return min(later)
            time.sleep(0.05)
        raise BenchError(f"alerts not led again within {TIMEOUT_S} s")


def _takeover(hit: str) -> float:
    env = _setup()
    workers: _Workers = env["workers"]
    holder = workers.alerts_holder()
    proc = workers.w.procs[holder]
    at = time.time()
    if hit == "kill":
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    elif hit == "terminate":
        import psycopg

        from tests.test_fleet_leader import leader_pid

        pg = env["pg"]
        with psycopg.connect(
            host="127.0.0.1", port=pg.port, user=pg.user, dbname="fleet", autocommit=True
        ) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (leader_pid(pg, holder),))
    else:
        proc.send_signal(signal.SIGSTOP)
    try:
        started = workers.next_start(at)
    finally:
        if hit == "freeze":
            proc.send_signal(signal.SIGCONT)
    if hit != "terminate":
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        workers.spawn()
    return started - at


@figure("leader takeover after SIGKILL of the holder (lease 10 s)", unit="s")
def takeover_after_kill() -> float:
    return _takeover("kill")


@figure("leader takeover after the holder's session is terminated (lease 10 s)", unit="s")
def takeover_after_terminate() -> float:
    return _takeover("terminate")


@figure("leader takeover after the holder freezes, no FIN (lease 10 s)", unit="s")
def takeover_after_freeze() -> float:
    return _takeover("freeze")
