"""A real PostgreSQL server for the tests: the one `$RECONCILER_TEST_PG` names, or our own.

Our own is a throwaway cluster (`initdb` into a temporary folder, `pg_ctl` on a free loopback
port, fsync off), run as the `postgres` user when the tests run as root (the server refuses root).
Each test gets a fresh database, so tests never see each other's rows.

Where there is no server at all the PostgreSQL tests skip locally, but fail in CI (`CI=true`):
a CI run that silently skipped them would prove nothing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ENV_DSN = "RECONCILER_TEST_PG"


def _version(initdb: str) -> int:
    name = Path(initdb).parent.parent.name
    return int(name) if name.isdigit() else 0


def _bindir() -> Path | None:
    """The newest server installed the Debian way, else whatever `initdb` is on PATH."""
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if versions:
        return Path(versions[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as_server_user(*argv: str, check: bool = True) -> None:
    """Run a server tool; as root, as the `postgres` user (the server refuses to run as root)."""
    command = list(argv) if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *argv]
    subprocess.run(command, check=check, capture_output=True, timeout=120)


@contextmanager
def throwaway_server() -> Iterator[str]:
    """Start a private cluster and yield the DSN of its `postgres` database; stop it after."""
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL server found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    try:
        _run_as_server_user(
            str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
            "--no-sync", "-E", "UTF8", "--locale", "C",
        )  # fmt: skip
        _run_as_server_user(
            str(bindir / "pg_ctl"), "-D", str(data), "-o", options,
            "-l", str(root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            _run_as_server_user(
                str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop", check=False
            )
        shutil.rmtree(root, ignore_errors=True)


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL is required in CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason}")


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def create_database(admin_dsn: str) -> str:
    """A new empty database on the server; returns its DSN."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(admin_dsn, name)
