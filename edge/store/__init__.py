"""Local state: SQLite (WAL) with migrations, the outbox, print jobs, encryption at rest."""

from edge.store.crypto import DataKey
from edge.store.db import Store

__all__ = ["DataKey", "Store"]
