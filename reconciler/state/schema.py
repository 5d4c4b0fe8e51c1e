"""The tables, written once for both backends; each dialect names its own column types.

A migration is frozen once released: a later version adds a new script, never edits these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Dialect:
    integer: str  # a 64-bit integer
    real: str  # a double
    serial: str  # an integer primary key the database numbers
    lock_owner: str  # what proves the lock row's holder (SQLite: a token; PostgreSQL: its backend)

    def __call__(self, template: str) -> str:
        return template.format(**asdict(self))


SQLITE = Dialect("INTEGER", "REAL", "INTEGER PRIMARY KEY AUTOINCREMENT", "token TEXT NOT NULL")
POSTGRES = Dialect(
    "BIGINT", "DOUBLE PRECISION", "BIGSERIAL PRIMARY KEY", "backend_pid INTEGER NOT NULL"
)

VERSION_1 = """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE deployments (
        project_id {integer} NOT NULL,
        name TEXT NOT NULL,
        last_applied TEXT NOT NULL,
        sensitive_paths TEXT NOT NULL DEFAULT '[]',
        labels TEXT NOT NULL DEFAULT '{{}}',
        annotations TEXT NOT NULL DEFAULT '{{}}',
        revision TEXT,
        applied_at {real} NOT NULL,
        outcome TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (project_id, name)
    );
    CREATE TABLE journal (
        id {serial},
        project_id {integer} NOT NULL,
        name TEXT NOT NULL,
        action TEXT NOT NULL,
        intent TEXT NOT NULL,
        task_ids TEXT NOT NULL DEFAULT '[]',
        state TEXT NOT NULL,
        result TEXT,
        message TEXT NOT NULL DEFAULT '',
        started_at {real} NOT NULL,
        updated_at {real} NOT NULL
    );
    CREATE INDEX journal_open ON journal (state) WHERE state != 'done';
    CREATE TABLE lock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        since {real} NOT NULL,
        {lock_owner}
    );
"""

OBJECT_RECORDS = """
CREATE TABLE IF NOT EXISTS {{table}} (
    kind TEXT NOT NULL,
    project_id {integer} NOT NULL,
    name TEXT NOT NULL,
    last_applied TEXT NOT NULL,
    sensitive_paths TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '{{{{}}}}',
    annotations TEXT NOT NULL DEFAULT '{{{{}}}}',
    applied_at {real} NOT NULL,
    PRIMARY KEY (kind, project_id, name)
)
"""
"""Created on first use (`objects.py`); formatted twice: by the dialect, then with the table."""
