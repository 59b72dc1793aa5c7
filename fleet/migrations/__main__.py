"""`python -m fleet.migrations revision -m "what changes"`: a new revision, written by comparing
the models with a scratch database at head (docs/fleet-console.md, "Schema migrations")."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from fleet.migrations import config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.migrations")
    sub = parser.add_subparsers(dest="command", required=True)
    revision = sub.add_parser("revision", help="write the next revision")
    revision.add_argument("-m", "--message", required=True, help="what it changes, in a line")
    revision.add_argument(
        "--empty", action="store_true", help="an empty revision (data migrations), no comparing"
    )
    args = parser.parse_args(argv)
    heads = ScriptDirectory.from_config(config()).get_heads()
    rev_id = f"{max((int(h) for h in heads), default=0) + 1:04d}"
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{Path(tmp) / 'scratch.db'}")
        try:
            with engine.begin() as conn:
                cfg = config(conn)
                command.upgrade(cfg, "head")
                script = command.revision(
                    cfg, message=args.message, autogenerate=not args.empty, rev_id=rev_id
                )
        finally:
            engine.dispose()
    assert script is not None and not isinstance(script, list)
    print(f"{script.path}: review it, then run tests/test_fleet_migrations.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
