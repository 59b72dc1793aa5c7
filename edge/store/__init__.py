"""Local state: SQLite (WAL) with migrations, the outbox, print jobs, encryption at rest."""

from edge.store.db import Store
from protocol.crypto import DataKey

__all__ = ["DataKey", "Store"]
