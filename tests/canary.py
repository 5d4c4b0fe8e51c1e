"""Canary secrets, and the one check every suite uses: none of them shows anywhere.

Each suite puts these values where secrets live (the API key, `envs`, a `${VAR}` anywhere, a
secret kind's write-only field, git credentials, the webhook secret) and hands whatever it can
read back (stdout, stderr, text and JSON logs, every plan format, the state file with its WAL and
SHM, HTTP bodies) to `assert_no_canary`. A value is looked for as text, as UTF-8 bytes and as JSON
would escape it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

CANARIES: Mapping[str, str] = {
    "api_key": "canary-apikey-5c1d9e0b7a",
    "env_value": "canary-env-3f8a2b71c4",
    "interpolated": "canary-var-9d4e6c2a15",
    "flavor": "canary-flavor-0b7e5d3c9f",  # echoed back by the API's error for an unknown flavor
    "secret_field": "canary-secret-field-6a1f4b8e2d",
    "git_token": "canary-gittoken-2e9c7a5f31",
    "webhook_secret": "canary-hook-8b3d1f6e0a",
}


def _forms(value: str) -> list[bytes]:
    return [value.encode(), json.dumps(value)[1:-1].encode()]


def state_bytes(state_file: Path) -> bytes:
    """The state file with its WAL and SHM (whatever of them exists)."""
    parts = [Path(f"{state_file}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")]
    return b"".join(p.read_bytes() for p in parts if p.exists())


def assert_no_canary(
    outputs: Mapping[str, str | bytes],
    canaries: Iterable[str] = CANARIES.values(),
) -> None:
    """Fail naming the output and the canary if any canary appears in any output."""
    leaks = []
    values = list(canaries)
    for where, output in outputs.items():
        data = output.encode() if isinstance(output, str) else output
        for value in values:
            if any(form in data for form in _forms(value)):
                leaks.append(f"{where}: {value}")
    assert not leaks, "secrets leaked: " + "; ".join(leaks)
