"""The SQLite state store: records, secrets as hashes, journal, schema versions, the lock."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.model import DeploymentKey, Record
from reconciler.state import SCHEMA_VERSION, LockHeld, SqliteStateStore, StateError

KEY = DeploymentKey(1, "my-instance")


def test_records_round_trip(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    record = Record(
        key=KEY,
        last_applied={"image": "nginx:latest", "envs": {"A": store.hash_value("x")}},
        applied_at=123.5,
        outcome="converged",
        message="ok",
        revision="abc123",
        sensitive_paths=frozenset({("envs", "A"), ("containers", 0, "scale")}),
        labels={"team": "search"},
        annotations={"reconciler/prune": "false"},
    )
    store.save_record(record)
    store.close()

    again = SqliteStateStore(tmp_path / "state.db")
    assert again.records() == {KEY: record}
    again.forget(KEY)
    assert again.records() == {}


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store.schema_version() == SCHEMA_VERSION
    assert store.integrity_ok()


def test_hashes_are_salted_per_store(tmp_path: Path) -> None:
    one = SqliteStateStore(tmp_path / "one.db")
    two = SqliteStateStore(tmp_path / "two.db")
    assert one.hash_value("secret") == one.hash_value("secret")
    assert one.hash_value("secret") != two.hash_value("secret")
    assert "secret" not in one.hash_value("secret")


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStateStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="newer than this reconciler understands"):
        SqliteStateStore(path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="not a usable state file"):
        SqliteStateStore(path)


def test_journal_lifecycle(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    first = store.journal_intent(KEY, "create", {"fields": ["image"]})
    second = store.journal_intent(DeploymentKey(1, "other-one"), "delete", {})
    store.journal_tasks(first, ["t-1"])
    [a, b] = store.unfinished()
    assert (a.id, a.state, a.task_ids, a.intent) == (
        first,
        "submitted",
        ("t-1",),
        {"fields": ["image"]},
    )
    assert (b.id, b.state, b.task_ids) == (second, "pending", ())
    store.journal_done(first, "converged")
    store.journal_done(second, "failed", "boom")
    assert store.unfinished() == []


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_second_holder_waits_a_bounded_time_then_names_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    holder = SqliteStateStore(path)
    holder.acquire_lock()
    waiter = SqliteStateStore(path)
    fake = FakeTime()
    with pytest.raises(LockHeld) as info:
        waiter.acquire_lock(timeout=2.0, poll=0.5, sleep=fake.sleep, monotonic=fake.monotonic)
    assert fake.slept == [0.5, 0.5, 0.5, 0.5]
    message = str(info.value)
    import os
    import socket

    assert f"pid {os.getpid()} on {socket.gethostname()}" in message
    holder.release_lock()
    waiter.acquire_lock(timeout=0)
    assert waiter.holder() is not None


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStateStore(path).close()
    code = (
        "import sys, os\n"
        "from reconciler.state import SqliteStateStore\n"
        "s = SqliteStateStore(sys.argv[1]); s.acquire_lock()\n"
        "os._exit(0)\n"  # dies holding the lock
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    store = SqliteStateStore(path)
    dead = store.holder()
    assert dead is not None
    store.acquire_lock(timeout=0)
    holder = store.holder()
    assert holder is not None and holder.pid != dead.pid


def test_finished_journal_entries_are_forgotten_after_a_while(tmp_path: Path) -> None:
    from reconciler.state import JOURNAL_RETENTION

    now = [1_000_000.0]
    store = SqliteStateStore(tmp_path / "state.db", clock=lambda: now[0])
    old = store.journal_intent(KEY, "create", {})
    store.journal_done(old, "converged")
    still_open = store.journal_intent(KEY, "update", {})
    store.close()
    now[0] += JOURNAL_RETENTION + 1
    again = SqliteStateStore(tmp_path / "state.db", clock=lambda: now[0])
    rows = again._db.execute("SELECT id FROM journal ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [still_open]
