"""The state store contract, kept by both backends: every test here runs on SQLite and on a
real PostgreSQL (the `state_location` fixture). Backend-only behaviour lives in
test_state_sqlite.py and test_state_postgres.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from reconciler.model import DeploymentKey, Record
from reconciler.state import JOURNAL_RETENTION, SCHEMA_VERSION, LockHeld, StateError, open_store
from reconciler.statekey import ENV_KEY, KeyMismatch

KEY = DeploymentKey(1, "my-instance")


@pytest.fixture(autouse=True)
def _no_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)
    monkeypatch.delenv("RECONCILER_STATE_KEY_FILE", raising=False)


def test_records_round_trip(state_location: str) -> None:
    store = open_store(state_location)
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

    again = open_store(state_location)
    assert again.records() == {KEY: record}
    changed = Record(key=KEY, last_applied={"image": "nginx:2"}, applied_at=124.0, outcome="failed")
    again.save_record(changed)
    assert again.records() == {KEY: changed}
    again.forget(KEY)
    assert again.records() == {}
    again.close()


def test_records_come_back_in_key_order(state_location: str) -> None:
    store = open_store(state_location)
    keys = [DeploymentKey(2, "a"), DeploymentKey(1, "b"), DeploymentKey(1, "a")]
    for key in keys:
        store.save_record(Record(key=key, last_applied={}, applied_at=1.0, outcome="converged"))
    assert list(store.records()) == sorted(keys)
    store.close()


def test_many_records_share_their_field_names(state_location: str) -> None:
    """Read together, records keep one string per field name (not one per record), and each
    body is its own."""
    store = open_store(state_location)
    bodies = {
        DeploymentKey(1, f"svc-{i}"): {"image": f"nginx:{i}", "containers": [{"region_id": i}]}
        for i in range(3)
    }
    for key, body in bodies.items():
        store.save_record(Record(key=key, last_applied=body, applied_at=1.0, outcome="converged"))
    records = store.records()
    assert {k: dict(r.last_applied) for k, r in records.items()} == bodies
    first, second = (next(iter(r.last_applied)) for r in list(records.values())[:2])
    assert first == second and first is second
    store.close()


def test_schema_version_and_integrity(state_location: str) -> None:
    store = open_store(state_location)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.integrity_ok()
    store.close()


def test_hashes_are_stable_per_store_and_differ_between_stores(
    state_location: str, tmp_path: object
) -> None:
    one = open_store(state_location)
    same = open_store(state_location)
    other = open_store(f"{tmp_path}/other/state.db")
    assert one.hash_value("secret") == one.hash_value("secret") == same.hash_value("secret")
    assert one.hash_value("secret") != other.hash_value("secret")
    assert one.hash_value("secret") != one.hash_value("secreT")
    assert "secret" not in one.hash_value("secret")
    for store in (one, same, other):
        store.close()


def test_a_user_supplied_key_is_required_once_used(
    state_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_KEY, "correct horse battery staple")
    keyed = open_store(state_location)
    digest = keyed.hash_value("secret")
    keyed.save_record(Record(key=KEY, last_applied={}, applied_at=1.0, outcome="converged"))
    keyed.close()
    assert open_store(state_location).hash_value("secret") == digest
    monkeypatch.setenv(ENV_KEY, "another phrase entirely")
    with pytest.raises(KeyMismatch, match="set the same value") as info:
        open_store(state_location)
    assert "correct horse" not in str(info.value) and "another phrase" not in str(info.value)
    monkeypatch.delenv(ENV_KEY)
    with pytest.raises(KeyMismatch):
        open_store(state_location)


def test_journal_lifecycle(state_location: str) -> None:
    store = open_store(state_location)
    first = store.journal_intent(KEY, "create", {"fields": ["image"]})
    second = store.journal_intent(DeploymentKey(1, "other-one"), "delete", {})
    store.journal_tasks(first, ["t-1"])
    [a, b] = store.unfinished()
    assert (a.id, a.key, a.action, a.state, a.task_ids, a.intent) == (
        first,
        KEY,
        "create",
        "submitted",
        ("t-1",),
        {"fields": ["image"]},
    )
    assert (b.id, b.state, b.task_ids) == (second, "pending", ())
    store.journal_done(first, "converged")
    assert [e.id for e in store.unfinished()] == [second]
    store.journal_done(second, "failed", "boom")
    assert store.unfinished() == []
    store.close()


def test_an_unfinished_journal_outlives_its_writer(state_location: str) -> None:
    writer = open_store(state_location)
    entry = writer.journal_intent(KEY, "create", {"fields": ["image"]})
    writer.journal_tasks(entry, ["t-9"])
    writer.close()
    reader = open_store(state_location)
    assert [(e.id, e.task_ids) for e in reader.unfinished()] == [(entry, ("t-9",))]
    reader.close()


def test_only_open_journal_entries_are_unfinished_after_a_while(state_location: str) -> None:
    now = [1_000_000.0]
    store = open_store(state_location, clock=lambda: now[0])
    old = store.journal_intent(KEY, "create", {})
    store.journal_done(old, "converged")
    still_open = store.journal_intent(KEY, "update", {})
    recent = store.journal_intent(KEY, "update", {})
    store.close()
    now[0] += JOURNAL_RETENTION + 1
    again = open_store(state_location, clock=lambda: now[0])
    again.journal_done(recent, "converged")
    again.close()
    third = open_store(state_location, clock=lambda: now[0])
    assert [e.id for e in third.unfinished()] == [still_open]
    third.close()


def test_the_history_keeps_every_applied_revision(state_location: str) -> None:
    # failed before: finished entries were deleted after 30 days, and `history` with them
    now = [1_000_000.0]
    spec = {"image": "nginx:1", "envs": {"A": "hmac-sha256:x"}}
    store = open_store(state_location, clock=lambda: now[0])
    applied = store.journal_intent(KEY, "create", {"last_applied": spec, "revision": "r1"})
    store.journal_done(applied, "converged")
    failed = store.journal_intent(KEY, "update", {"last_applied": spec, "revision": "r2"})
    store.journal_done(failed, "failed", "task error")
    store.close()
    now[0] += 10 * JOURNAL_RETENTION
    again = open_store(state_location, clock=lambda: now[0])
    kept = again.journal_history(KEY)
    again.close()
    assert [(e.id, e.result) for e in kept] == [(applied, "converged"), (failed, "failed")]
    assert kept[0].intent == {"last_applied": spec, "revision": "r1"}  # a rollback needs it
    assert kept[1].intent == {"revision": "r2"}  # a failed one keeps its row, not its spec
    assert kept[1].message == "task error"


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_second_holder_waits_a_bounded_time_then_names_the_holder(state_location: str) -> None:
    holder = open_store(state_location)
    holder.acquire_lock()
    waiter = open_store(state_location)
    fake = FakeTime()
    with pytest.raises(LockHeld) as info:
        waiter.acquire_lock(timeout=2.0, poll=0.5, sleep=fake.sleep, monotonic=fake.monotonic)
    assert fake.slept == [0.5, 0.5, 0.5, 0.5]
    assert f"pid {os.getpid()} on {socket.gethostname()}" in str(info.value)
    named = waiter.holder()
    assert named is not None and (named.pid, named.host) == (os.getpid(), socket.gethostname())
    holder.release_lock()
    assert waiter.holder() is None
    waiter.acquire_lock(timeout=0)
    assert waiter.holder() is not None
    waiter.close()
    assert holder.holder() is None  # closing releases
    holder.close()


def test_the_lock_is_released_when_its_holder_closes(state_location: str) -> None:
    first = open_store(state_location)
    first.acquire_lock(timeout=0)
    first.close()
    second = open_store(state_location)
    second.acquire_lock(timeout=0)
    second.close()


@pytest.mark.slow  # a real process dies by kill -9 holding the lock
def test_a_lock_left_by_a_killed_process_is_taken_at_once(state_location: str) -> None:
    open_store(state_location).close()
    code = (
        "import sys, os, signal\n"
        "from reconciler.state import open_store\n"
        "s = open_store(sys.argv[1]); s.acquire_lock()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"  # dies holding the lock, no cleanup at all
    )
    victim = subprocess.run([sys.executable, "-c", code, state_location], timeout=60)
    assert victim.returncode == -9
    store = open_store(state_location)
    store.acquire_lock(timeout=5)
    holder = store.holder()
    assert holder is not None and holder.pid == os.getpid()
    store.close()


def test_an_unusable_location_is_a_one_line_error(state_location: str, tmp_path: object) -> None:
    bad = (
        f"{tmp_path}/not-a-db"
        if not state_location.startswith("postgresql")
        else state_location.rsplit("/", 1)[0] + "/no_such_database"
    )
    if not bad.startswith("postgresql"):
        with open(bad, "wb") as f:
            f.write(b"this is not a database" * 100)
    with pytest.raises(StateError) as info:
        open_store(bad)
    assert "\n" not in str(info.value)


def test_journal_history_keeps_one_deployments_entries_in_order(state_location: str) -> None:
    store = open_store(state_location)
    first = store.journal_intent(KEY, "create", {"revision": "abc"})
    store.journal_intent(DeploymentKey(1, "other-one"), "delete", {})
    second = store.journal_intent(KEY, "update", {"revision": "def"})
    store.journal_done(first, "converged")
    history = store.journal_history(KEY)
    assert [(e.id, e.action, e.result, e.intent["revision"]) for e in history] == [
        (first, "create", "converged", "abc"),
        (second, "update", None, "def"),
    ]
    assert store.journal_history(DeploymentKey(2, "my-instance")) == []
    store.close()


def test_object_records_round_trip_beside_the_deployments(state_location: str) -> None:
    from reconciler.kinds import Kind, ObjectKey
    from reconciler.objects_plan import ObjectRecord
    from reconciler.state.objects import open_object_records

    store = open_store(state_location)
    objects = open_object_records(store)
    assert objects is not None and objects.records() == {}
    key = ObjectKey(Kind.REGISTRY_CREDENTIAL, 1, "registry")
    record = ObjectRecord(
        key=key,
        last_applied={"username": "bot", "password": store.hash_value("pw")},
        applied_at=7.5,
        sensitive_paths=frozenset({("password",)}),
        labels={"team": "search"},
        annotations={"reconciler/prune": "false"},
    )
    objects.save(record)
    other = ObjectRecord(key=ObjectKey(Kind.API_KEY, 1, "ci"), last_applied={}, applied_at=1.0)
    objects.save(other)
    objects.close()
    store.close()

    again = open_store(state_location)
    objects = open_object_records(again)
    assert objects is not None
    assert objects.records() == {key: record, other.key: other}
    assert "pw" not in repr(objects.records())
    changed = ObjectRecord(key=key, last_applied={"username": "other"}, applied_at=8.0)
    objects.save(changed)
    objects.forget(other.key)
    assert objects.records() == {key: changed}
    assert again.records() == {}  # deployments and objects are apart
    objects.close()
    again.close()


def test_compact_records_are_the_records_kept_as_their_text(state_location: str) -> None:
    """`records(compact=True)` (what a plan keeps) reads as `records()` does, key order of each
    body included, without decoding any body until it is read."""
    from reconciler.model import JsonText

    store = open_store(state_location)
    try:
        for name in ("web-a", "web-b"):
            store.save_record(
                Record(
                    key=DeploymentKey(1, name),
                    last_applied={"image": "x", "envs": {"Z": "1", "A": store.hash_value("s")}},
                    applied_at=2.0,
                    outcome="converged",
                    sensitive_paths=frozenset({("envs", "A")}),
                    labels={"team": "a"},
                )
            )
        plain, compact = store.records(), store.records(compact=True)
        assert compact == plain
        for key, record in compact.items():
            assert isinstance(record.last_applied, JsonText)
            opened = record.opened().last_applied
            assert list(opened) == list(plain[key].last_applied)
            assert list(opened["envs"]) == list(plain[key].last_applied["envs"])
    finally:
        store.close()
