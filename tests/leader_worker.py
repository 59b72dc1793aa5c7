"""A worker process for tests/test_fleet_leader.py: fleet.leader.Leadership over the console's
roles, each role's work a thread writing rows to PostgreSQL while it leads.

python -m tests.leader_worker URL WORKER REPORT_FILE HEARTBEAT_S LEASE_S RETRY_S
Reports one JSON line per start and stop of a role's work (wall time) to REPORT_FILE.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path

import psycopg
import sqlalchemy as sa

from fleet.leader import ROLES, Leadership

WORK_PERIOD_S = 0.2


class Work:
    """One role's work: a row (role, worker, wall time) every WORK_PERIOD_S while running."""

    def __init__(self, dsn: str, role: str, worker: str, report: Path) -> None:
        self.dsn, self.role, self.worker, self.report = dsn, role, worker, report
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        _report(self.report, "start", self.role, self.worker)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        _report(self.report, "stop", self.role, self.worker)

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                conn.execute(
                    "INSERT INTO leader_work (role, worker, at) VALUES (%s, %s, %s)",
                    (self.role, self.worker, time.time()),
                )
                self._stop.wait(WORK_PERIOD_S)


def _report(path: Path, event: str, role: str, worker: str) -> None:
    line = json.dumps({"event": event, "role": role, "worker": worker, "at": time.time()})
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()


def main() -> None:
    url, worker, report = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    heartbeat_s, lease_s, retry_s = (float(a) for a in sys.argv[4:7])
    u = sa.engine.make_url(url)
    dsn = f"host={u.host} port={u.port} user={u.username} dbname={u.database}"
    leadership = Leadership(
        url, worker=worker, heartbeat_s=heartbeat_s, lease_s=lease_s, retry_s=retry_s
    )
    for role in ROLES:
        work = Work(dsn, role, worker, report)
        leadership.add(role, work.start, work.stop)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    leadership.start()
    _report(report, "ready", "", worker)
    done.wait()
    leadership.stop()


if __name__ == "__main__":
    main()
