"""The revisions, one file each, oldest first (Alembic loads them by path, not by import)."""
