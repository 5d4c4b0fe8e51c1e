"""What only the SQLite store does: WAL, file modes, the key file beside it, old files."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.diff import HASH_PREFIX
from reconciler.model import DeploymentKey, Record
from reconciler.state import SCHEMA_VERSION, SqliteStateStore, StateError
from reconciler.statekey import ENV_KEY, ENV_KEY_FILE, KeyMismatch

KEY = DeploymentKey(1, "my-instance")


@pytest.fixture(autouse=True)
def _no_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)
    monkeypatch.delenv(ENV_KEY_FILE, raising=False)


def _with_a_record(path: Path) -> None:
    """A store that has hashed something: its key now matters."""
    store = SqliteStateStore(path)
    store.save_record(Record(key=KEY, last_applied={}, applied_at=1.0, outcome="converged"))
    store.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_wal_mode(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_state_file_wal_shm_and_key_are_private_and_the_new_folder_is_0700(
    tmp_path: Path,
) -> None:
    old_umask = os.umask(0o022)  # a usual umask would make files 0644 and folders 0755
    try:
        store = SqliteStateStore(tmp_path / "fresh" / "state.db")
        store.save_record(Record(key=KEY, last_applied={}, applied_at=1.0, outcome="converged"))
        folder = tmp_path / "fresh"
        files = sorted(p.name for p in folder.iterdir())
        assert files == ["state.db", "state.db-shm", "state.db-wal", "state.db.key"]
        assert {name: _mode(folder / name) for name in files} == dict.fromkeys(files, 0o600)
        assert _mode(folder) == 0o700
        store.close()
    finally:
        os.umask(old_umask)


def test_an_existing_readable_state_file_is_tightened_and_a_shared_folder_left_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    SqliteStateStore(path).close()
    path.chmod(0o644)
    tmp_path.chmod(0o755)
    SqliteStateStore(path).close()
    assert _mode(path) == 0o600
    assert _mode(tmp_path) == 0o755  # not a folder we made: not ours to change


def test_the_key_is_not_in_the_state_file_and_the_hash_needs_it(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStateStore(path)
    digest = store.hash_value("1234")
    store.close()
    key = (tmp_path / "state.db.key").read_bytes().strip()
    assert key not in path.read_bytes()
    salt = sqlite3.connect(path).execute("SELECT value FROM meta WHERE key='salt'").fetchone()[0]
    # Someone with the state file alone (salt included) cannot recompute the hash of a guess.
    data = json.dumps("1234").encode()
    salt_only = HASH_PREFIX + hmac.new(salt.encode(), data, hashlib.sha256).hexdigest()
    assert digest != salt_only
    keyed = hmac.new(hmac.new(key, salt.encode(), hashlib.sha256).digest(), data, hashlib.sha256)
    assert digest == HASH_PREFIX + keyed.hexdigest()


def test_a_lost_key_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _with_a_record(path)
    (tmp_path / "state.db.key").unlink()
    with pytest.raises(StateError, match=r"state\.db\.key: the state key file is missing"):
        SqliteStateStore(path)


def test_a_wrong_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _with_a_record(path)
    (tmp_path / "state.db.key").write_text("0" * 64)
    with pytest.raises(KeyMismatch, match="hashed with another key"):
        SqliteStateStore(path)


def test_a_key_file_named_in_the_environment_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared.key"
    shared.write_text("a" * 64)
    monkeypatch.setenv(ENV_KEY_FILE, str(shared))
    one = SqliteStateStore(tmp_path / "one" / "state.db")
    assert not (tmp_path / "one" / "state.db.key").exists()
    digest = one.hash_value("x")
    one.save_record(Record(key=KEY, last_applied={}, applied_at=1.0, outcome="converged"))
    one.close()
    monkeypatch.delenv(ENV_KEY_FILE)
    with pytest.raises(StateError, match="key file is missing"):
        SqliteStateStore(tmp_path / "one" / "state.db")
    monkeypatch.setenv(ENV_KEY_FILE, str(shared))
    assert SqliteStateStore(tmp_path / "one" / "state.db").hash_value("x") == digest


def _legacy_state_file(path: Path) -> str:
    """A state file as the previous version wrote it: no key, hashes keyed by the salt alone."""
    store = SqliteStateStore(path)
    store.close()
    db = sqlite3.connect(path)
    db.execute("DELETE FROM meta WHERE key IN ('hash_key', 'key_check')")
    db.commit()
    salt = str(db.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()[0])
    db.close()
    path.with_name("state.db.key").unlink()
    data = json.dumps("hunter2").encode()
    return HASH_PREFIX + hmac.new(salt.encode(), data, hashlib.sha256).hexdigest()


def test_a_state_file_from_before_keys_keeps_its_hashes(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old_hash = _legacy_state_file(path)
    store = SqliteStateStore(path)
    assert store.hash_value("hunter2") == old_hash  # no spurious "changed" secret after upgrade
    assert not (tmp_path / "state.db.key").exists()
    store.close()


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
    store.close()


def test_an_empty_store_takes_new_key_material(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStateStore(path).close()  # nothing hashed yet
    (tmp_path / "state.db.key").unlink()
    again = SqliteStateStore(path)
    assert (tmp_path / "state.db.key").exists()
    again.close()


def test_the_no_state_hasher_is_keyed_by_what_plan_and_apply_both_have() -> None:
    """A plan made where no state exists fingerprints secrets with this hasher: stable for the
    same key, different for another, the state key (when set) before the API key."""
    from reconciler.statekey import ENV_KEY, KeySource, no_state_hasher

    one, again = no_state_hasher("api-key-1", env={}), no_state_hasher("api-key-1", env={})
    assert one("s3cret") == again("s3cret")
    assert one("s3cret") != no_state_hasher("api-key-2", env={})("s3cret")
    assert one.source is KeySource.FILE
    by_state_key = no_state_hasher("api-key-1", env={ENV_KEY: "state-key"})
    assert by_state_key.source is KeySource.SECRET
    assert by_state_key("s3cret") == no_state_hasher("api-key-2", env={ENV_KEY: "state-key"})(
        "s3cret"
    )
    assert no_state_hasher(None, env={}).source is KeySource.NONE  # the simulator, no key


def test_a_lock_that_cannot_be_released_is_a_state_error_and_the_file_is_still_closed(
    tmp_path: Path,
) -> None:
    """A full disk at the end of an apply: releasing the lock is a write that fails. It is a
    one-line StateError naming the file (not sqlite3's own error, a traceback on the CLI), and
    the connection is closed all the same."""
    path = tmp_path / "state.db"
    store = SqliteStateStore(path)
    store.acquire_lock()
    store._db.execute("PRAGMA query_only = 1")  # as a file that can no longer be written
    with pytest.raises(StateError, match=r"state\.db: .*readonly"):
        store.close()
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        store._db.execute("SELECT 1")


def test_a_lock_that_cannot_be_written_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStateStore(path)
    store._db.execute("PRAGMA query_only = 1")
    try:
        with pytest.raises(StateError, match=r"state\.db: .*readonly"):
            store.acquire_lock(timeout=0)
    finally:
        store._db.execute("PRAGMA query_only = 0")
        store.close()


def test_a_state_file_that_cannot_be_created_is_a_state_error(tmp_path: Path) -> None:
    """`--state notes.txt/state.db`, or a folder that is not ours: a one-line error naming the
    file, not the OSError's traceback."""
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    with pytest.raises(StateError, match=r"notes\.txt/state\.db: cannot open .*Not a directory"):
        SqliteStateStore(tmp_path / "notes.txt" / "state.db")
