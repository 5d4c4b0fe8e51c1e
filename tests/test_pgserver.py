"""The test PostgreSQL server is real and each test's database is its own."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_a_real_server_answers_and_each_test_gets_an_empty_database(pg_dsn: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        conn.execute("CREATE TABLE mine (id int)")
    assert version is not None and int(version[0]) >= 120000
    assert tables == (0,)


@pytest.mark.slow
def test_another_test_does_not_see_the_first_ones_tables(pg_dsn: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn) as conn:
        found = conn.execute("SELECT to_regclass('public.mine') IS NULL").fetchone()
    assert found == (True,)


def test_without_a_server_ci_fails_and_a_laptop_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.pgserver import unavailable

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required in CI"):
        unavailable("no initdb")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        unavailable("no initdb")
