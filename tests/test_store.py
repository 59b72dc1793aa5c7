"""Store: WAL and migrations, sealed personal data, the key file, the outbox, a power cut."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge.errors import StoreError
from edge.store import DataKey, Store
from edge.store.migrations import MIGRATIONS
from edge.store.outbox import Outbox

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "kiosk.db")
    s.open()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def key(tmp_path: Path) -> DataKey:
    return DataKey.load_or_create(tmp_path / "keys" / "data.key")


def test_database_is_wal_with_full_sync_and_migrated(store: Store) -> None:
    assert store.query("PRAGMA journal_mode")[0][0] == "wal"
    assert store.query("PRAGMA synchronous")[0][0] == 2  # FULL
    assert store.schema_version() == len(MIGRATIONS)
    tables = {r[0] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"outbox", "print_jobs", "kv"} <= tables
    assert store.integrity() == "ok"


def test_migrations_run_once(tmp_path: Path, store: Store) -> None:
    store.set_kv("boot", "1")
    store.close()
    again = Store(tmp_path / "kiosk.db")
    again.open()
    assert again.get_kv("boot") == "1"
    again.close()


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this software"):
        Store(path).open()


def test_failed_transaction_rolls_back(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as conn:
        conn.execute("INSERT INTO kv(key, value) VALUES ('a', 'b')")
        raise RuntimeError("power wobble")
    assert store.get_kv("a") is None


def test_key_file_is_created_0600_and_round_trips(tmp_path: Path, key: DataKey) -> None:
    path = tmp_path / "keys" / "data.key"
    assert path.stat().st_mode & 0o777 == 0o600
    sealed = key.encrypt("Nguyễn Văn Mẫu".encode(), aad=b"rec-1")
    assert "Nguyễn".encode() not in sealed
    assert key.decrypt(sealed, aad=b"rec-1").decode() == "Nguyễn Văn Mẫu"
    again = DataKey.load_or_create(path)  # same key on the next start
    assert again.decrypt(sealed, aad=b"rec-1").decode() == "Nguyễn Văn Mẫu"


def test_tampered_or_misfiled_ciphertext_is_refused(key: DataKey) -> None:
    sealed = bytearray(key.encrypt(b"secret", aad=b"rec-1"))
    with pytest.raises(StoreError, match="authentication"):
        key.decrypt(bytes(sealed), aad=b"rec-2")  # moved to another record
    sealed[-1] ^= 1
    with pytest.raises(StoreError, match="authentication"):
        key.decrypt(bytes(sealed), aad=b"rec-1")


def test_readable_key_file_is_refused(tmp_path: Path, key: DataKey) -> None:
    path = tmp_path / "keys" / "data.key"
    path.chmod(0o644)
    with pytest.raises(StoreError, match="must be 0600"):
        DataKey.load_or_create(path)


def test_outbox_is_fifo_and_forgets_only_on_ack(store: Store, key: DataKey) -> None:
    outbox = Outbox(store, key)
    first = outbox.add("record", "records/copy", {"code": "HN-1", "name": "Trần Thị Bé"})
    second = outbox.add("event", "events", {"kind": "tamper.opened"})
    third = outbox.add("telemetry", "telemetry", {"cpu": 41.5})
    assert [m.id for m in outbox.pending()] == [first.id, second.id, third.id]
    assert outbox.pending()[0].payload == {"code": "HN-1", "name": "Trần Thị Bé"}
    assert outbox.depth() == {"record": 1, "event": 1, "telemetry": 1}
    assert outbox.acknowledge(second.id)
    assert not outbox.acknowledge(second.id)  # a duplicate PUBACK is harmless
    assert [m.id for m in outbox.pending()] == [first.id, third.id]
    assert outbox.shed_telemetry() == 1
    assert [m.id for m in outbox.pending()] == [first.id]  # records are never shed
    raw = store.path.read_bytes() + store.path.with_name("kiosk.db-wal").read_bytes()
    assert "Trần Thị Bé".encode() not in raw


def test_kill_9_during_writes_keeps_database_and_outbox_intact(tmp_path: Path) -> None:
    """Power cut: every record the writer saw committed is there, in order, readable."""
    for attempt in range(3):  # three cuts at different moments, same database
        writer = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.outbox_writer", str(tmp_path)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        committed = []
        try:
            for line in writer.stdout:
                committed.append(line.strip())
                if len(committed) >= 40 + 25 * attempt:
                    break
            os.kill(writer.pid, signal.SIGKILL)
        finally:
            writer.kill()
            writer.wait(10)
        store = Store(tmp_path / "kiosk.db")
        store.open()
        try:
            assert store.integrity() == "ok"
            outbox = Outbox(store, DataKey.load_or_create(tmp_path / "keys" / "data.key"))
            pending = outbox.pending(limit=100_000)
            ids = [m.id for m in pending]
            assert set(committed) <= set(ids)
            seqs = [m.seq for m in pending]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            numbers = [m.payload["n"] for m in pending[-len(committed) :]]
            assert numbers == sorted(numbers)
        finally:
            store.close()
