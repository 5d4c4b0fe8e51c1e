"""What only the PostgreSQL store does: passwords kept out of messages, the schema in `meta`,
the advisory lock's holder row, migrations racing."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from reconciler.state import SCHEMA_VERSION, StateError, open_store
from reconciler.state.postgres import PG_SCHEMA_VERSION, PostgresStateStore, redact_url

pytestmark = pytest.mark.slow

PASSWORD = "s3cr3t-Pa55word"


def test_both_backends_are_at_the_same_schema_version() -> None:
    assert PG_SCHEMA_VERSION == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://app:{PASSWORD}@db:5432/inv", "postgresql://app:***@db:5432/inv"),
        ("postgresql://app@db/inv", "postgresql://app@db/inv"),
        (
            f"postgres://db/inv?sslmode=require&password={PASSWORD}",
            "postgres://db/inv?sslmode=require&password=***",
        ),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_connection_error_never_shows_the_password(pg_server: str) -> None:
    port = pg_server.rsplit(":", 1)[1].split("/")[0]
    unused = int(port) + 1 if int(port) < 65000 else int(port) - 1
    urls = [
        f"postgresql://app:{PASSWORD}@127.0.0.1:{unused}/inv",  # nothing listens there
        pg_server.replace("postgres@", f"postgres:{PASSWORD}@").rsplit("/", 1)[0] + "/nope",
    ]
    for url in urls:
        with pytest.raises(StateError) as info:
            PostgresStateStore(url, connect_timeout=2)
        message = str(info.value)
        assert PASSWORD not in message and "***" in message and "\n" not in message


def test_the_store_names_itself_without_the_password(pg_dsn: str) -> None:
    url = pg_dsn.replace("postgres@", f"postgres:{PASSWORD}@")
    store = open_store(url)
    assert PASSWORD not in repr(store) and PASSWORD not in str(store)
    store.close()


def test_a_newer_schema_is_refused(pg_dsn: str) -> None:
    import psycopg

    open_store(pg_dsn).close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE reconciler.meta SET value = %s WHERE key = 'schema_version'",
            (str(PG_SCHEMA_VERSION + 1),),
        )
    with pytest.raises(StateError, match="newer than this reconciler understands"):
        open_store(pg_dsn)


def test_a_holder_row_whose_backend_let_go_is_not_shown(pg_dsn: str) -> None:
    import psycopg

    store = open_store(pg_dsn)
    store.acquire_lock(timeout=0)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE reconciler.lock SET backend_pid = 0")  # a row no backend backs
    assert store.holder() is None
    store.close()


def test_many_first_openers_at_once_migrate_once(pg_dsn: str) -> None:
    hashes: list[str] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            store = open_store(pg_dsn)
            hashes.append(store.hash_value("x"))
            store.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(hashes) == 6 and len(set(hashes)) == 1


def test_plan_apply_status_on_postgresql_never_print_the_password(
    pg_server: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import psycopg

    from reconciler.cli import main
    from tests.conftest import manifest
    from tests.pgserver import with_database

    unique = uuid.uuid4().hex[:12]  # roles are server-wide: unique across test processes too
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE app_{unique} LOGIN PASSWORD '{PASSWORD}'")
        conn.execute(f"CREATE DATABASE inv_{unique} OWNER app_{unique}")
    url = with_database(pg_server, f"inv_{unique}").replace(
        "postgres@", f"app_{unique}:{PASSWORD}@"
    )
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(manifest("svc-a"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECONCILER_STATE", url)
    assert main(["apply", "m", "--simulate", "--auto-approve"]) == 0
    assert main(["plan", "m", "--simulate", "--detailed-exitcode"]) == 0  # recorded in PG
    assert main(["status", "--simulate", "--format", "json"]) == 0
    monkeypatch.setenv("RECONCILER_STATE", f"postgresql://app:{PASSWORD}@127.0.0.1:1/inv")
    assert main(["plan", "m", "--simulate"]) == 1
    out, err = capsys.readouterr()
    assert "svc-a" in out and "cannot connect" in err
    assert PASSWORD not in out + err
    assert not list(tmp_path.glob(".reconciler/*.db"))  # no state file: the state is in PG


async def test_a_replicas_pages_metrics_and_logs_never_show_the_password(
    pg_server: str, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """`serve` on a PostgreSQL inventory, first working, then refused by the database: neither
    its answers nor its log lines carry the URL's password."""
    import logging

    import httpx
    import psycopg

    from tests.conftest import manifest
    from tests.pgserver import with_database
    from tests.uiharness import serving, sim_server

    caplog.set_level(logging.DEBUG)
    unique = uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE app_{unique} LOGIN PASSWORD '{PASSWORD}'")
        conn.execute(f"CREATE DATABASE inv_{unique} OWNER app_{unique}")
    url = with_database(pg_server, f"inv_{unique}").replace(
        "postgres@", f"app_{unique}:{PASSWORD}@"
    )
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "a.yaml").write_text(manifest("svc-a"))
    paths = ("/api/status", "/", "/deployments/1/svc-a", "/plan", "/metrics", "/readyz")
    bodies: list[str] = []
    with sim_server() as sim:
        async with (
            serving(tmp_path, folder, sim, state_url=url) as served,
            httpx.AsyncClient() as http,
        ):
            assert served.service.last is not None and served.service.last.result == "ok"
            bodies += [(await http.get(served.url + path)).text for path in paths]
            with psycopg.connect(pg_server, autocommit=True) as conn:
                conn.execute(f"ALTER ROLE app_{unique} NOLOGIN")  # new connections refused
            runs = served.service.runs
            served.service.trigger("test")
            await served.settled(runs + 1)
            assert served.service.last.result == "error"
            bodies += [(await http.get(served.url + path)).text for path in paths]
    status = bodies[len(paths)]
    assert f"app_{unique}:***@" in status and "not permitted to log in" in status
    for body in bodies:
        assert PASSWORD not in body
    assert "not permitted to log in" in caplog.text and PASSWORD not in caplog.text


def test_replicas_share_the_apply_lock_and_a_whole_inventory_apply_takes_it_alone(
    pg_dsn: str,
) -> None:
    import os

    from reconciler.state import LockHeld

    a, b, whole = (PostgresStateStore(pg_dsn) for _ in range(3))
    try:
        a.acquire_shared_lock(timeout=0)
        b.acquire_shared_lock(timeout=0)  # two replicas side by side
        holder = whole.holder()
        assert holder is not None and holder.pid == os.getpid()
        with pytest.raises(LockHeld, match=r"is locked by another apply \(pid \d+ on "):
            whole.acquire_lock(timeout=0)
        a.release_lock()
        with pytest.raises(LockHeld):
            whole.acquire_lock(timeout=0)  # b still applies
        b.release_lock()
        whole.acquire_lock(timeout=0)
        with pytest.raises(LockHeld, match=r"\(pid \d+ on "):
            a.acquire_shared_lock(timeout=0)  # and replicas wait for a whole-inventory apply
        whole.release_lock()
        a.acquire_shared_lock(timeout=0)
        assert a.holder() is not None
    finally:
        for store in (a, b, whole):
            store.close()
    after = PostgresStateStore(pg_dsn)
    assert after.holder() is None  # closing released every hold
    after.acquire_lock(timeout=0)
    after.close()
