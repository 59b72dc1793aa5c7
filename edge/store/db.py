"""The one owner of the SQLite connection: WAL, full fsync, migrations, integrity checks."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge.errors import StoreError
from edge.store.migrations import MIGRATIONS

logger = logging.getLogger(__name__)


class Store:
    """Serialises every access through one connection and one lock.

    synchronous=FULL: in WAL mode NORMAL may lose the last commits on power loss,
    and a record that the kiosk told a citizen it accepted must survive a power cut.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10
            )
            conn.row_factory = sqlite3.Row
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"SQLite refused WAL mode (got {mode}) at {self.path}")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            # Erased personal data (purged slips, expired copies) is overwritten, not just freed.
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA busy_timeout=10000")
        except sqlite3.Error as err:
            raise StoreError(f"cannot open database {self.path}: {err}") from err
        self._conn = conn
        self._migrate()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:
                    logger.warning("WAL checkpoint on close failed", exc_info=True)
                self._conn.close()
                self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("database is not open")
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the lock; ROLLBACK on any error."""
        with self._lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def schema_version(self) -> int:
        return self.query("PRAGMA user_version")[0][0]

    def integrity(self) -> str:
        """'ok', or the first problem PRAGMA integrity_check found."""
        return self.query("PRAGMA integrity_check")[0][0]

    def _migrate(self) -> None:
        current = self.schema_version()
        if current > len(MIGRATIONS):
            raise StoreError(
                f"database {self.path} is at schema {current}, newer than this software "
                f"({len(MIGRATIONS)}); refusing to touch it"
            )
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            try:
                with self.transaction() as conn:
                    for statement in _statements(script):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={version}")
            except sqlite3.Error as err:
                raise StoreError(f"migration to schema {version} failed: {err}") from err
            logger.info("database migrated", extra={"schema": version})

    def get_kv(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM kv WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_kv(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO kv(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


def _statements(script: str) -> list[str]:
    """Split a script into statements (executescript() would COMMIT our transaction)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
