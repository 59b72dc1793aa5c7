"""Telemetry on PostgreSQL in day partitions: native range partitioning on `at` (POSIX seconds,
UTC days), created ahead, and retention by dropping whole partitions instead of DELETE.

At 20,000 kiosks sending telemetry every 60 s a day is 28.8 million rows; deleting two-day-old
rows one by one would rewrite and vacuum as much as ingest writes, where dropping a day's
partition is a catalog change. Days, not weeks: the default keep time is two days
(StoreSection.telemetry_keep_s), so a day partition keeps at most a day more than asked, a week
partition up to a week (3.5 times the history).

The partitions live in their own schema (SCHEMA), out of the way of the application's tables
(and of Alembic's comparison of the models with the database). Rows whose day has no partition
(a kiosk clock far off, or history older than the partitions made) land in the DEFAULT
partition; its rows are moved into a day partition when one is made for them, and it is pruned
by DELETE. Events stay one table pruned by DELETE: a few per kiosk a day, against 1,440
telemetry samples, and their primary key (the kiosk's message id, how duplicates are found)
could not be unique across partitions, whose keys must include the partition column.

SQLite (the single-machine default) has none of this: its telemetry is one table, pruned by
DELETE (fleet.store.kiosks.Kiosks.prune).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

logger = logging.getLogger(__name__)

SCHEMA = "telemetry_days"
DEFAULT = "telemetry_other"
DAY_S = 86400
AHEAD_DAYS = 3  # made this many days ahead, so that a missed housekeeping run loses nothing
PREFIX = "telemetry_"
# Dropping or adding a partition takes a brief exclusive lock on `telemetry`: wait for it this
# long at most (ingest's transactions are short), and try again at the next housekeeping run
# rather than stall ingest queued behind a long reader.
LOCK_TIMEOUT = "5s"
# Serialises console workers making or dropping partitions at the same time.
_LOCK_KEY = 0x74656C656D  # "telem"


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    day: int  # days since 1970-01-01 (UTC)

    @property
    def start(self) -> float:
        return float(self.day * DAY_S)

    @property
    def end(self) -> float:
        return float((self.day + 1) * DAY_S)


def day_of(at: float) -> int:
    return int(at // DAY_S)


def name_of(day: int) -> str:
    return PREFIX + (dt.date(1970, 1, 1) + dt.timedelta(days=day)).strftime("%Y%m%d")


def is_partitioned(conn: Connection) -> bool:
    """Whether `telemetry` is a partitioned table (PostgreSQL at revision 0007 or later)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(
        sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass('telemetry')")
    ).scalar()
    return kind == "p"


def partitions(conn: Connection) -> list[Partition]:
    """The day partitions of telemetry, oldest first (the DEFAULT partition is not one)."""
    names = conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass('telemetry')"
        )
    ).scalars()
    found = []
    for name in names:
        if name == DEFAULT or not name.startswith(PREFIX):
            continue
        day = dt.datetime.strptime(name[len(PREFIX) :], "%Y%m%d").date()
        found.append(Partition(name, (day - dt.date(1970, 1, 1)).days))
    return sorted(found, key=lambda p: p.day)


def create_schema(conn: Connection) -> None:
    """The schema and the DEFAULT partition (the migration calls it once)."""
    conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    conn.execute(
        sa.text(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{DEFAULT} PARTITION OF telemetry DEFAULT")
    )


def ensure(conn: Connection, days: list[int]) -> list[str]:
    """Day partitions for `days`, made where missing (rows of theirs the DEFAULT partition
    holds are moved in); returns the names made."""
    have = {p.day for p in partitions(conn)}
    made = []
    for day in sorted(set(days) - have):
        start, end = float(day * DAY_S), float((day + 1) * DAY_S)
        bounds = {"start": start, "end": end}
        waiting = conn.execute(
            sa.text(f"SELECT count(*) FROM {SCHEMA}.{DEFAULT} WHERE at >= :start AND at < :end"),
            bounds,
        ).scalar_one()
        if waiting:
            # A new partition cannot be attached while DEFAULT holds rows of its range.
            conn.execute(
                sa.text("CREATE TEMP TABLE telemetry_moving (LIKE telemetry) ON COMMIT DROP")
            )
            conn.execute(
                sa.text(
                    f"WITH moved AS (DELETE FROM {SCHEMA}.{DEFAULT} "
                    "WHERE at >= :start AND at < :end RETURNING *) "
                    "INSERT INTO telemetry_moving SELECT * FROM moved"
                ),
                bounds,
            )
        conn.execute(
            sa.text(
                f"CREATE TABLE {SCHEMA}.{name_of(day)} PARTITION OF telemetry "
                f"FOR VALUES FROM ({start!r}) TO ({end!r})"
            )
        )
        if waiting:
            conn.execute(sa.text("INSERT INTO telemetry SELECT * FROM telemetry_moving"))
            conn.execute(sa.text("DROP TABLE telemetry_moving"))
        made.append(name_of(day))
    return made


def ensure_ahead(conn: Connection, now: float, ahead_days: int = AHEAD_DAYS) -> list[str]:
    """Today's partition and the next `ahead_days`' (at start and at each housekeeping run)."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    today = day_of(now)
    return ensure(conn, list(range(today, today + ahead_days + 1)))


def drop_before(conn: Connection, cutoff: float) -> tuple[list[str], int]:
    """Drop the day partitions that end at or before `cutoff` (all their rows are older) and
    delete the DEFAULT partition's rows older than it; returns (partitions dropped, rows
    deleted). A partition straddling the cutoff stays whole until its day is past."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    dropped = []
    for part in partitions(conn):
        if part.end <= cutoff:
            conn.execute(sa.text(f"DROP TABLE {SCHEMA}.{part.name}"))
            dropped.append(part.name)
    deleted = conn.execute(
        sa.text(f"DELETE FROM {SCHEMA}.{DEFAULT} WHERE at < :cutoff"), {"cutoff": cutoff}
    ).rowcount
    return dropped, deleted


def maintain(conn: Connection, *, now: float, keep_s: float) -> tuple[list[str], list[str], int]:
    """One housekeeping pass in the caller's transaction: (made, dropped, rows deleted)."""
    conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    made = ensure_ahead(conn, now)
    dropped, deleted = drop_before(conn, now - keep_s)
    if made or dropped:
        logger.info("telemetry partitions", extra={"made": made, "dropped": dropped})
    return made, dropped, deleted
