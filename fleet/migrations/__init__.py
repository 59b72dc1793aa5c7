"""The central database's schema migrations (Alembic), run from code: no alembic.ini needed."""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from protocol.errors import StoreError

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
# The first revision: the tables as `metadata.create_all` made them before there were migrations.
BASELINE = "0001"
# Serialises console processes upgrading one PostgreSQL database at the same time.
_LOCK_KEY = 0x6B696F736B  # "kiosk"

# A table's shape, as far as telling the baseline from something else goes: its column names
# and its index names.
Shape = dict[str, tuple[frozenset[str], frozenset[str]]]


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the shipped scripts; `connection` is the one env.py uses."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision shipped."""
    found = ScriptDirectory.from_config(config()).get_current_head()
    assert found is not None, f"no revision in {HERE / 'versions'}"
    return found


def current(connection: Connection) -> str | None:
    """The database's revision (None: never migrated, maybe made by create_all)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the database to `revision` in one transaction, and say where it is now.

    A database made by `metadata.create_all`, before the console had migrations, has the
    console's tables but no alembic_version: if its tables are the baseline's, it is stamped at
    the baseline first, so that later revisions apply to it as to any other.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        if current(conn) is None and _adopt(conn):
            command.stamp(config(conn), BASELINE)
            logger.info("a database made before migrations: stamped at revision %s", BASELINE)
        command.upgrade(config(conn), revision)
        return current(conn)


def downgrade(engine: Engine, revision: str) -> str | None:
    with engine.begin() as conn:
        command.downgrade(config(conn), revision)
        return current(conn)


def _adopt(conn: Connection) -> bool:
    """Whether an unversioned database has the baseline's tables (True), or none (False);
    anything in between is refused rather than guessed at."""
    baseline = _baseline_shape()
    found = {t: s for t, s in _shape(conn).items() if t in baseline}
    if not found:
        return False
    if found == baseline:
        return True
    problems = [f"table {t} missing" for t in sorted(baseline.keys() - found.keys())]
    for table in sorted(found.keys() & baseline.keys()):
        (columns, indexes), (want_columns, want_indexes) = found[table], baseline[table]
        if columns != want_columns:
            problems.append(
                f"{table} has columns {sorted(columns - want_columns)} more and "
                f"{sorted(want_columns - columns)} fewer"
            )
        if indexes != want_indexes:
            problems.append(f"{table} has indexes {sorted(indexes)}, not {sorted(want_indexes)}")
    raise StoreError(
        "the database has some of the console's tables but no migration history, and they are "
        f"not those of revision {BASELINE}: " + "; ".join(problems)
    )


@cache
def _baseline_shape() -> Shape:
    """The baseline's tables, read back from a scratch in-memory SQLite upgraded to it."""
    engine = sa.create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            command.upgrade(config(conn), BASELINE)
            return _shape(conn)
    finally:
        engine.dispose()


def _shape(conn: Connection) -> Shape:
    inspector = sa.inspect(conn)
    return {
        table: (
            frozenset(c["name"] for c in inspector.get_columns(table)),
            frozenset(str(i["name"]) for i in inspector.get_indexes(table)),
        )
        for table in inspector.get_table_names()
        if table != "alembic_version"
    }
