"""Writes as values (`state.writes`): several in one transaction, from sync code (`write`) and
from async code (`writes`), on SQLite and on a real PostgreSQL (`state_location`); and on
PostgreSQL, an async commit that waits for the server leaves the event loop free."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pytest

from reconciler.model import DeploymentKey, Record
from reconciler.state import StateError, open_store
from reconciler.state.writes import CloseEntry, EntryTasks, Forget, OpenEntry, SaveRecord
from reconciler.statekey import ENV_KEY

KEY = DeploymentKey(1, "web")


@pytest.fixture(autouse=True)
def _no_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)
    monkeypatch.delenv("RECONCILER_STATE_KEY_FILE", raising=False)


def record(name: str = "web", outcome: str = "applying") -> Record:
    return Record(
        key=DeploymentKey(1, name), last_applied={"image": "x"}, applied_at=5.0, outcome=outcome
    )


def test_a_batch_is_committed_in_order_with_its_answers(state_location: str) -> None:
    store = open_store(state_location)
    try:
        first, second, none = store.write(
            [OpenEntry(KEY, "create", {"a": 1}), OpenEntry(KEY, "update", {}), SaveRecord(record())]
        )
        assert none is None
        assert first is not None and second is not None and second > first
        store.write([EntryTasks(first, ("t1",)), CloseEntry(second, "converged", "ok")])
        [entry] = store.unfinished()
        assert (entry.id, entry.state, entry.task_ids) == (first, "submitted", ("t1",))
        assert store.journal_history(KEY)[1].result == "converged"
        assert store.records() == {KEY: record()}
        store.write([Forget(KEY)])
        assert store.records() == {}
    finally:
        store.close()


def test_a_batch_with_a_write_that_fails_leaves_nothing_of_itself(state_location: str) -> None:
    store = open_store(state_location)
    try:
        bad = Record(key=DeploymentKey(1, None), last_applied={}, applied_at=1.0, outcome="x")  # type: ignore[arg-type]
        with pytest.raises(StateError) as caught:  # each backend names its constraint its way
            store.write([OpenEntry(KEY, "create", {}), SaveRecord(record()), SaveRecord(bad)])
        assert "null" in str(caught.value).lower()
        assert store.unfinished() == []
        assert store.records() == {}
        store.journal_intent(KEY, "create", {})  # the store goes on working
        assert len(store.unfinished()) == 1
    finally:
        store.close()


def test_async_writes_commit_on_both_stores(state_location: str) -> None:
    store = open_store(state_location)

    async def main() -> tuple[int | None, ...]:
        async with store.writes() as writes:
            answers = await writes.commit(
                [OpenEntry(KEY, "create", {"n": 1}), SaveRecord(record())]
            )
            entry = answers[0]
            assert entry is not None
            await writes.commit([EntryTasks(entry, ("t",)), CloseEntry(entry, "converged")])
            return tuple(answers)

    try:
        entry, none = asyncio.run(main())
        assert none is None
        [done] = store.journal_history(KEY)
        assert (done.id, done.state, done.result, done.task_ids) == (
            entry,
            "done",
            "converged",
            ("t",),
        )
        assert store.records() == {KEY: record()}
    finally:
        store.close()


def test_a_session_refuses_writes_once_its_context_has_closed(state_location: str) -> None:
    """A write that reaches a session after `writes()` has closed (an action still running when
    its apply was cancelled, or the batch a cancelled apply left queued) is refused: on
    PostgreSQL it used to open a new connection, commit after the apply (and its lock) had
    ended, and leave that connection open; a batch the close interrupted, which the server may
    have committed already, was retried there one write at a time."""
    from reconciler.state import StateError

    late = DeploymentKey(1, "late")
    store = open_store(state_location)

    async def main() -> None:
        async with store.writes() as writes:
            await writes.commit([OpenEntry(KEY, "create", {})])
        with pytest.raises(StateError, match="closed"):
            await writes.commit([OpenEntry(late, "create", {})])

    try:
        asyncio.run(main())
        assert store.journal_history(late) == []
        assert len(store.journal_history(KEY)) == 1
    finally:
        store.close()


@pytest.mark.slow
def test_a_postgresql_session_closed_while_it_connects_commits_nothing(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The apply ends (its session closes) while the session's first write is still connecting:
    the connection it then gets is closed, not kept open past the apply with the write on it."""
    import psycopg

    from reconciler.state import StateError

    real_connect = psycopg.AsyncConnection.connect
    connecting, go_on = asyncio.Event(), asyncio.Event()
    made: list[psycopg.AsyncConnection[Any]] = []

    async def gated(*args: Any, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
        connecting.set()
        await go_on.wait()
        made.append(await real_connect(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(psycopg.AsyncConnection, "connect", gated)
    store = open_store(pg_dsn)

    async def main() -> None:
        async with store.writes() as writes:
            commit = asyncio.ensure_future(writes.commit([OpenEntry(KEY, "create", {})]))
            await connecting.wait()
        go_on.set()
        with pytest.raises(StateError, match="closed"):
            await commit

    try:
        asyncio.run(main())
        assert store.journal_history(KEY) == []
        assert [conn.closed for conn in made] == [True]
    finally:
        store.close()


@pytest.mark.slow
def test_a_postgresql_session_writes_nothing_once_its_apply_lock_is_lost(pg_dsn: str) -> None:
    """The apply lock lives on the store's own connection and the writes on a session of their
    own. When the lock's session ends without the process (an administrator's
    pg_terminate_backend, `idle_session_timeout`), the server releases the lock and another
    apply may take it: the next batch is refused, so the apply stops at its next write, as it
    did when it wrote on the lock's own connection. Before, it went on to its end."""
    import psycopg

    from reconciler.state import StateError

    late = DeploymentKey(1, "late")
    store = open_store(pg_dsn)
    store.acquire_lock(timeout=0)
    lock_pid = store._conn.info.backend_pid  # type: ignore[attr-defined]

    async def main() -> None:
        async with store.writes() as writes:
            await writes.commit([OpenEntry(KEY, "create", {})])
            with psycopg.connect(pg_dsn, autocommit=True) as admin:  # waits until it is gone
                admin.execute("SELECT pg_terminate_backend(%s, 60000)", (lock_pid,))
            with pytest.raises(StateError, match="apply lock was lost"):
                await writes.commit([OpenEntry(late, "create", {})])

    asyncio.run(main())
    other = open_store(pg_dsn)
    try:
        other.acquire_lock(timeout=0)  # the server released it: another apply may run now
        assert other.journal_history(late) == []
        assert len(other.journal_history(KEY)) == 1
    finally:
        other.close()
        with contextlib.suppress(StateError):
            store.close()  # its connection is gone


@pytest.mark.slow
def test_a_postgresql_commit_waiting_for_the_server_leaves_the_loop_free(pg_dsn: str) -> None:
    """Another session holds the entry's row: the commit waits on the server while the event
    loop keeps turning; when that session lets go, the commit lands. A commit made on the
    loop's own thread, as the synchronous store does, would freeze the loop until then."""
    import psycopg

    store = open_store(pg_dsn)
    entry = store.journal_intent(KEY, "create", {})
    blocker = psycopg.connect(pg_dsn, autocommit=False)
    blocker.execute("SET search_path TO reconciler")
    blocker.execute("SELECT id FROM journal WHERE id = %s FOR UPDATE", (entry,))
    turns = 0
    # if the commit ever held the loop, this lets go so the test fails instead of hanging
    safety = threading.Timer(20, blocker.commit)
    safety.start()

    async def main() -> None:
        nonlocal turns
        async with store.writes() as writes:
            commit = asyncio.ensure_future(writes.commit([CloseEntry(entry, "converged")]))
            # the session connects, sends the batch, and waits on the row lock
            while not _waiting_on_a_lock(pg_dsn) and not commit.done():
                turns += 1
                await asyncio.sleep(0.01)
            for _ in range(20):
                turns += 1
                await asyncio.sleep(0)
            assert not commit.done()
            releasing = threading.Thread(target=blocker.commit)
            releasing.start()
            await asyncio.wait_for(commit, timeout=60)
            releasing.join()

    try:
        asyncio.run(main())
        assert turns >= 20
        assert store.journal_history(KEY)[0].result == "converged"
    finally:
        safety.cancel()
        blocker.close()
        store.close()


def _waiting_on_a_lock(dsn: str) -> bool:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        ).fetchall()
    return bool(rows[0][0])


@pytest.mark.slow
def test_a_postgresql_error_in_an_async_commit_names_the_url_without_its_password(
    pg_dsn: str,
) -> None:
    from urllib.parse import urlsplit

    from reconciler.state import StateError

    parts = urlsplit(pg_dsn)
    store = open_store(pg_dsn)
    store._conninfo = pg_dsn.replace(parts.netloc, f"nobody:s3cret-pw@{parts.hostname}:1")  # type: ignore[attr-defined]

    async def main() -> None:
        async with store.writes() as writes:
            await writes.commit([OpenEntry(KEY, "create", {})])

    try:
        with pytest.raises(StateError) as caught:
            asyncio.run(main())
        assert "s3cret-pw" not in str(caught.value)
        assert str(caught.value).startswith(store.url)  # type: ignore[attr-defined]
    finally:
        store.close()


def test_offloop_runs_a_database_call_in_a_worker_and_a_file_call_in_place(
    state_location: str,
) -> None:
    """What async code reads or locks goes through `offloop`: off the event loop's thread for a
    database (its object records too), on it for a SQLite file (its connection is that
    thread's)."""
    from reconciler.scoped import ScopedStore
    from reconciler.state import offloop
    from reconciler.state.objects import object_state_path, open_object_records

    store = open_store(state_location)
    objects = open_object_records(object_state_path(store))
    assert objects is not None

    async def threads() -> set[bool]:
        here = threading.get_ident()
        ran = [
            await offloop(one, threading.get_ident)
            for one in (store, ScopedStore(store, frozenset({1})), objects)
        ]
        return {ident == here for ident in ran}

    try:
        in_place = asyncio.run(threads())
        assert in_place == {not state_location.startswith("postgresql")}
    finally:
        objects.close()
        store.close()


def test_offloop_calls_at_once_on_one_store_each_get_a_whole_transaction(
    state_location: str,
) -> None:
    """A wave of credentials, secrets and API keys saves its records at once, each through
    `offloop`: on PostgreSQL, one worker thread per save on the store's one connection. Their
    transactions must not interleave (psycopg's nesting of one connection's transactions is not
    per thread: "transaction commit at the wrong nesting level", a save lost)."""
    from reconciler.kinds import Kind, ObjectKey
    from reconciler.objects_plan import ObjectRecord
    from reconciler.state import offloop
    from reconciler.state.objects import object_state_path, open_object_records

    store = open_store(state_location)
    objects = open_object_records(object_state_path(store))
    assert objects is not None
    saved = [
        ObjectRecord(ObjectKey(Kind.SECRET, 1, f"secret-{n}"), {"type": "aws-iam"}, 1.0)
        for n in range(24)
    ]

    async def wave() -> None:
        await asyncio.gather(
            *(offloop(objects, lambda one=one: objects.save(one)) for one in saved),
            *(offloop(store, store.records) for _ in saved),
        )

    try:
        asyncio.run(wave())
        assert sorted(k.name for k in objects.records()) == sorted(r.key.name for r in saved)
    finally:
        objects.close()
        store.close()


@pytest.mark.slow
def test_a_lost_postgresql_session_says_why_on_every_later_write(pg_dsn: str) -> None:
    """The session's server process ends between two batches: the next write fails with the
    cause, and so does every write after it (not "the connection is closed"), without a new
    connection being made."""
    import psycopg

    from reconciler.state import StateError

    store = open_store(pg_dsn)
    sync_pid = store._conn.info.backend_pid  # type: ignore[attr-defined]

    async def main() -> list[str]:
        async with store.writes() as writes:
            await writes.commit([OpenEntry(KEY, "create", {})])
            with psycopg.connect(pg_dsn, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                    "datname = current_database() AND application_name = 'reconciler' "
                    "AND pid <> %s",
                    (sync_pid,),
                )
            said = []
            for _ in range(3):
                with pytest.raises(StateError) as caught:
                    await writes.commit([OpenEntry(KEY, "update", {})])
                said.append(str(caught.value))
            return said

    try:
        said = asyncio.run(main())
    finally:
        store.close()
    assert len(set(said)) == 1, said
    assert "the connection is closed" not in said[0], said


def test_psycopgs_word_on_a_pipeline_it_had_to_drop_is_not_repeated() -> None:
    import logging

    import reconciler.state.postgres  # noqa: F401 - installs the filter

    kept: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record.getMessage())

    logger = logging.getLogger("psycopg")
    handler = Keep()
    logger.addHandler(handler)
    try:
        logger.warning("error ignored terminating %r: the connection is lost", "<AsyncPipeline>")
        logger.warning("something else")
    finally:
        logger.removeHandler(handler)
    assert kept == ["something else"]


@pytest.mark.slow
def test_a_postgresql_session_that_cannot_connect_tries_once_per_apply(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stops answering between the apply's lock and its first write. A batch that
    fails is tried again caller by caller (`StateWriter`), and each try connected anew: with
    the server gone silent, `connect_timeout` seconds per action, one action after another (a
    thousand creates: hours). The session keeps the failed connect's error, as it keeps a lost
    connection's, and every later write says it at once."""
    import psycopg

    from reconciler.execute.writer import StateWriter

    tries: list[int] = []

    async def unreachable(*args: Any, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
        tries.append(1)
        raise psycopg.OperationalError("connection timeout expired")

    store = open_store(pg_dsn)
    monkeypatch.setattr(psycopg.AsyncConnection, "connect", unreachable)

    async def main() -> list[BaseException | list[Any]]:
        async with store.writes() as writes:
            writer = StateWriter(writes)
            keys = [DeploymentKey(1, f"d{n}") for n in range(3)]
            return await asyncio.gather(
                *(writer.write(OpenEntry(k, "create", {})) for k in keys),
                return_exceptions=True,
            )

    try:
        answers = asyncio.run(main())
    finally:
        store.close()
    assert len(tries) == 1
    for one in answers:
        assert isinstance(one, StateError)
        assert "connection timeout expired" in str(one)
