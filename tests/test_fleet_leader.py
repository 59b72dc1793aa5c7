"""Elected singletons (fleet/leader.py): real worker processes compete for the console's roles
through PostgreSQL advisory locks; the holder is SIGKILLed, frozen, or its session terminated."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fleet.config import ElectionSection, FleetConfig, StoreSection, WebSection
from fleet.console import build_console
from fleet.leader import NAMESPACE, ROLES, Leadership, role_key
from tests.fleet_console_helpers import Postgres, running_postgres
from tests.mqtt_broker import wait_until

ROOT = Path(__file__).resolve().parents[1]

# Short timings so the tests stay short; the design's takeover bound after a holder dies is
# retry_s + lease_s + heartbeat_s (4 s here); the assertions allow far more (shared CPU).
HEARTBEAT_S, LEASE_S, RETRY_S = 0.5, 3.0, 0.5
TAKEOVER_BOUND_S = 20.0


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


@pytest.fixture
def pg(postgres: Postgres) -> Postgres:
    postgres.reset()
    with _sql(postgres) as conn:
        conn.execute("CREATE TABLE leader_work (role text, worker text, at double precision)")
    return postgres


@contextlib.contextmanager
def _sql(pg: Postgres) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(
        host="127.0.0.1", port=pg.port, user=pg.user, dbname="fleet", autocommit=True
    ) as conn:
        yield conn


class Workers:
    """Worker processes (tests/leader_worker.py), each reporting to its own file."""

    def __init__(
        self,
        pg: Postgres,
        tmp_path: Path,
        timings: tuple[float, float, float] = (HEARTBEAT_S, LEASE_S, RETRY_S),
    ) -> None:
        """timings: heartbeat_s, lease_s, retry_s (bench/fleet_leader.py: the defaults)."""
        self.pg, self.tmp_path, self.timings = pg, tmp_path, timings
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str) -> None:
        self.procs[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.leader_worker",
                self.pg.url,
                name,
                str(self.report_file(name)),
                *(str(t) for t in self.timings),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def report_file(self, name: str) -> Path:
        return self.tmp_path / f"{name}.jsonl"

    def reports(self, name: str) -> list[dict[str, Any]]:
        path = self.report_file(name)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def running(self) -> dict[str, list[str]]:
        """role -> the live workers whose last report for it is "start" (their work runs)."""
        out: dict[str, list[str]] = {role: [] for role in ROLES}
        for name, proc in self.procs.items():
            if proc.poll() is not None:  # killed: its last "start" has no "stop"
                continue
            last: dict[str, str] = {}
            for r in self.reports(name):
                if r["role"]:
                    last[r["role"]] = r["event"]
            for role, event in last.items():
                if event == "start":
                    out[role].append(name)
        return out

    def events(self, name: str, event: str, role: str) -> list[float]:
        return [r["at"] for r in self.reports(name) if r["event"] == event and r["role"] == role]

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


@pytest.fixture
def workers(pg: Postgres, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(pg, tmp_path)
    try:
        yield w
    finally:
        w.close()


def lock_holders(pg: Postgres) -> dict[str, list[str]]:
    """role -> application names of the sessions holding its advisory lock (pg_locks)."""
    keys = {role_key(role): role for role in ROLES}
    out: dict[str, list[str]] = {role: [] for role in ROLES}
    with _sql(pg) as conn:
        rows = conn.execute(
            "SELECT l.objid::bigint, a.application_name FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objsubid = 2",
            (NAMESPACE,),
        ).fetchall()
    for key, app in rows:
        out[keys[int(key)]].append(app.removeprefix("kiosk-fleet leader "))
    return out


def leader_pid(pg: Postgres, worker: str) -> int:
    with _sql(pg) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
            (f"kiosk-fleet leader {worker}",),
        ).fetchone()
    assert row is not None, f"no leader session for {worker}"
    return int(row[0])


def work_runs(pg: Postgres, role: str) -> list[tuple[str, float, float]]:
    """The role's work rows in time order, folded into runs: (worker, first, last)."""
    with _sql(pg) as conn:
        rows = conn.execute(
            "SELECT worker, at FROM leader_work WHERE role = %s ORDER BY at", (role,)
        ).fetchall()
    runs: list[tuple[str, float, float]] = []
    for worker, at in rows:
        if runs and runs[-1][0] == worker:
            runs[-1] = (worker, runs[-1][1], at)
        else:
            runs.append((worker, at, at))
    return runs


def all_roles_led(workers: Workers) -> dict[str, str] | None:
    """role -> its one running worker, once every role has exactly one; else None."""
    running = workers.running()
    if all(len(names) == 1 for names in running.values()):
        return {role: names[0] for role, names in running.items()}
    return None


def test_three_workers_one_holder_per_role_and_a_sigkilled_holder_is_replaced(
    pg: Postgres, workers: Workers
) -> None:
    for name in ("w1", "w2", "w3"):
        workers.spawn(name)
    holders = wait_until(lambda: all_roles_led(workers), 30, "every role led")
    # Checked a few times over a few heartbeats: the processes' reports and pg_locks agree,
    # one holder per role.
    for _ in range(5):
        locks = lock_holders(pg)
        running = workers.running()
        for role in ROLES:
            assert locks[role] == [holders[role]], (role, locks, running)
            assert running[role] == [holders[role]], (role, locks, running)
        time.sleep(HEARTBEAT_S)

    victim = holders["alerts"]
    victim_roles = {role for role, name in holders.items() if name == victim}
    killed_at = time.time()
    workers.procs[victim].send_signal(signal.SIGKILL)
    workers.procs[victim].wait(10)

    after = wait_until(
        lambda: (
            (led := all_roles_led(workers)) is not None
            and victim not in led.values()
            and all(workers.events(led[r], "start", r)[-1] > killed_at for r in victim_roles)
            and led
        ),
        TAKEOVER_BOUND_S + 10,
        "the killed holder's roles taken over",
    )
    for role in victim_roles:
        started = workers.events(after[role], "start", role)[-1]
        assert killed_at < started < killed_at + TAKEOVER_BOUND_S, (role, started - killed_at)
    locks = lock_holders(pg)
    assert all(locks[role] == [after[role]] for role in ROLES), locks

    # The work itself never ran in two places at once: per role, one run of rows per holder
    # (work interleaved by two workers would fold into many runs).
    time.sleep(1)
    for role in ROLES:
        runs = work_runs(pg, role)
        if role in victim_roles:
            assert [r[0] for r in runs] == [victim, after[role]], (role, runs)
            assert runs[0][2] <= killed_at < runs[1][1]
        else:
            assert [r[0] for r in runs] == [holders[role]], (role, runs)


def test_a_holder_whose_session_is_terminated_steps_down_before_another_starts(
    pg: Postgres, workers: Workers
) -> None:
    for name in ("w1", "w2"):
        workers.spawn(name)
    holders = wait_until(lambda: all_roles_led(workers), 30, "every role led")
    victim = holders["alerts"]
    victim_roles = {role for role, name in holders.items() if name == victim}
    cut_at = time.time()
    with _sql(pg) as conn:
        assert conn.execute(
            "SELECT pg_terminate_backend(%s)", (leader_pid(pg, victim),)
        ).fetchone() == (True,)

    # It notices at its next heartbeat and stops the work of every role it held.
    wait_until(
        lambda: all(
            any(t > cut_at for t in workers.events(victim, "stop", r)) for r in victim_roles
        ),
        10,
        "the cut holder stepping down",
    )
    stopped = {
        r: min(t for t in workers.events(victim, "stop", r) if t > cut_at) for r in victim_roles
    }
    for role in victim_roles:
        assert stopped[role] - cut_at < LEASE_S + 5, role
    # Someone (the other worker, or this one with a new session) leads again, and only after
    # the cut one had stopped.
    after = wait_until(
        lambda: (
            (led := all_roles_led(workers)) is not None
            and all(workers.events(led[r], "start", r)[-1] > cut_at for r in victim_roles)
            and led
        ),
        TAKEOVER_BOUND_S + 10,
        "the roles led again",
    )
    time.sleep(1)
    for role in victim_roles:
        restarted = workers.events(after[role], "start", role)[-1]
        assert restarted > stopped[role], (role, restarted - stopped[role])
        with _sql(pg) as conn:
            late = conn.execute(
                "SELECT count(*) FROM leader_work WHERE role = %s AND worker = %s"
                " AND at > %s AND at < %s",
                (role, victim, stopped[role], restarted),
            ).fetchone()
        assert late == (0,), f"{victim} worked on {role} after stepping down"
    assert all(len(v) == 1 for v in lock_holders(pg).values())


def test_a_frozen_holder_loses_its_session_by_the_idle_timeout_and_stops_on_waking(
    pg: Postgres, workers: Workers
) -> None:
    """No FIN, no RST (as on a network cut): the server's idle_session_timeout ends the
    frozen holder's session after a lease; on waking, its guard stops the work at once."""
    for name in ("w1", "w2"):
        workers.spawn(name)
    holders = wait_until(lambda: all_roles_led(workers), 30, "every role led")
    victim = holders["alerts"]
    other = "w2" if victim == "w1" else "w1"
    victim_roles = {role for role, name in holders.items() if name == victim}
    proc = workers.procs[victim]
    frozen_at = time.time()
    proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(
            lambda: all(lock_holders(pg)[r] == [other] for r in victim_roles),
            TAKEOVER_BOUND_S,
            "the frozen holder's locks taken by the other worker",
        )
        released = time.time() - frozen_at
        assert released >= LEASE_S * 0.9, released  # not before the server's idle timeout
        wait_until(
            lambda: all(any(t > frozen_at for t in workers.events(other, "start", r))
                        for r in victim_roles),
            TAKEOVER_BOUND_S,
            "the other worker working",
        )  # fmt: skip
    finally:
        woke_at = time.time()
        proc.send_signal(signal.SIGCONT)
    wait_until(
        lambda: all(any(t >= woke_at for t in workers.events(victim, "stop", r))
                    for r in victim_roles),
        10,
        "the woken holder stepping down",
    )  # fmt: skip
    for role in victim_roles:
        stop = min(t for t in workers.events(victim, "stop", role) if t >= woke_at)
        assert stop - woke_at < 3.0, (role, stop - woke_at)
    time.sleep(LEASE_S + 1)
    assert all_roles_led(workers) is not None
    running = workers.running()
    assert all(running[r] == [other] for r in victim_roles), running


def test_a_holder_whose_heartbeat_hangs_stops_its_work_within_the_lease(
    pg: Postgres, workers: Workers
) -> None:
    """The holder's server process frozen: its heartbeat neither answers nor fails (a hung
    call, as on a dead link) and its locks stay; the holder's guard stops its work anyway."""
    for name in ("w1", "w2"):
        workers.spawn(name)
    holders = wait_until(lambda: all_roles_led(workers), 30, "every role led")
    victim = holders["alerts"]
    victim_roles = {role for role, name in holders.items() if name == victim}
    backend = leader_pid(pg, victim)
    frozen_at = time.time()
    os.kill(backend, signal.SIGSTOP)
    try:
        wait_until(
            lambda: all(
                any(t > frozen_at for t in workers.events(victim, "stop", r)) for r in victim_roles
            ),
            LEASE_S + 10,
            "the holder stepping down without an answer",
        )
        for role in victim_roles:
            stop = min(t for t in workers.events(victim, "stop", role) if t > frozen_at)
            assert stop - frozen_at < LEASE_S + 3, (role, stop - frozen_at)
        # Nobody else started meanwhile: the frozen session still holds the locks.
        assert not any(
            t > frozen_at
            for r in victim_roles
            for n in workers.procs
            for t in workers.events(n, "start", r)
        )
    finally:
        os.kill(backend, signal.SIGCONT)
    # Once the call returns, the holder drops that session: the roles are led again.
    wait_until(
        lambda: (
            (led := all_roles_led(workers)) is not None
            and all(workers.events(led[r], "start", r)[-1] > frozen_at for r in victim_roles)
        ),
        TAKEOVER_BOUND_S + 10,
        "the roles led again",
    )


def test_sqlite_one_process_always_leads(tmp_path: Path) -> None:
    started: list[str] = []
    stopped: list[str] = []
    leadership = Leadership(f"sqlite:///{tmp_path / 'fleet.db'}", worker="solo")
    for role in ROLES:
        leadership.add(
            role, functools.partial(started.append, role), functools.partial(stopped.append, role)
        )
    leadership.start()
    try:
        assert started == list(ROLES)  # at once, no thread, no lock
        assert leadership.held() == sorted(ROLES)
        assert leadership.status()["elected"] is False
    finally:
        leadership.stop()
    assert sorted(stopped) == sorted(ROLES)
    assert leadership.held() == []


def _config(tmp_path: Path, url: str, worker: str) -> FleetConfig:
    return FleetConfig(
        store=StoreSection(url=url, data_key_file=tmp_path / "data.key"),
        web=WebSection(secret_key_file=tmp_path / "secret.key", cookie_secure=False),
        election=ElectionSection(
            worker=worker, heartbeat_s=HEARTBEAT_S, lease_s=LEASE_S, retry_s=RETRY_S
        ),
    )


CONSOLE_ROLES = ["alerts", "housekeeping", "revocations", "shipments"]


def test_the_console_on_sqlite_runs_its_singletons_at_once(tmp_path: Path) -> None:
    console = build_console(_config(tmp_path, f"sqlite:///{tmp_path / 'fleet.db'}", "solo"))
    console.start(mqtt=False)
    try:
        assert console.leadership.held() == CONSOLE_ROLES
        assert console.alerts._thread is not None and console.alerts._thread.is_alive()
    finally:
        console.stop()
    assert console.alerts._thread is None


def test_two_consoles_on_postgresql_elect_one_and_the_other_takes_over(
    pg: Postgres, tmp_path: Path
) -> None:
    first = build_console(_config(tmp_path / "a", pg.url, "console-a"))
    second = build_console(_config(tmp_path / "b", pg.url, "console-b"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first.start(mqtt=False)
    try:
        wait_until(lambda: first.leadership.held() == CONSOLE_ROLES, 20, "the first leads")
        second.start(mqtt=False)
        time.sleep(LEASE_S + 2 * RETRY_S)
        assert second.leadership.held() == []
        assert second.alerts._thread is None  # a follower does not evaluate alerts
        assert all(lock_holders(pg)[r] == ["console-a"] for r in CONSOLE_ROLES)
        assert second.leadership.status()["database"] is True
        first.stop()
        stopped_at = time.monotonic()
        wait_until(
            lambda: second.leadership.held() == CONSOLE_ROLES,
            TAKEOVER_BOUND_S,
            "the second takes over",
        )
        assert time.monotonic() - stopped_at < TAKEOVER_BOUND_S
        assert second.alerts._thread is not None and second.alerts._thread.is_alive()
        assert all(lock_holders(pg)[r] == ["console-b"] for r in CONSOLE_ROLES)
    finally:
        first.stop()
        second.stop()
