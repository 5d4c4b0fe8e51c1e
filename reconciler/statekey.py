"""How sensitive values are hashed before they are recorded, and where the hash key lives.

A record keeps, for every sensitive value, only `HMAC-SHA256(key, value)`: enough to see that a
value changed, never the value. A salt alone (the store's random `salt`, kept in the store) stops
precomputed tables but not someone who has the state and guesses a low-entropy secret offline:
they can compute the same HMAC. So the key is derived from the salt *and* key material that is
not in the store:

- `RECONCILER_STATE_KEY` (a secret the user supplies; stretched with PBKDF2, so guessing it is
  slow too), else `RECONCILER_STATE_KEY_FILE` (a file of random bytes),
- else, for a state file, `<state file>.key` beside it, created 0600 with 32 random bytes,
- else (PostgreSQL without a key) the salt alone, as before: the store records which one it uses.

A store remembers a check value of its key (an HMAC of a fixed text, not reversible), so a store
opened with other key material (a lost key file, a wrong `RECONCILER_STATE_KEY`) is refused
instead of silently making every secret look changed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from .diff import HASH_PREFIX
from .errors import ReconcilerError

ENV_KEY = "RECONCILER_STATE_KEY"
ENV_KEY_FILE = "RECONCILER_STATE_KEY_FILE"
PBKDF2_ROUNDS = 200_000
_CHECK_TEXT = b"reconciler state key check"


class KeyMismatch(ReconcilerError):
    """The key material given does not match the one the store was written with."""


class KeySource(StrEnum):
    """Where the hash key comes from; recorded in the store as `hash_key`."""

    SECRET = "secret"  # RECONCILER_STATE_KEY
    FILE = "file"  # RECONCILER_STATE_KEY_FILE or <state file>.key
    NONE = "none"  # the salt alone (state written before keys, or PostgreSQL without a key)


@dataclass(frozen=True)
class KeyMaterial:
    source: KeySource
    material: bytes = b""
    where: str = ""  # for messages: the key file's path, or the variable's name

    def derive(self, salt: str) -> bytes:
        if self.source is KeySource.SECRET:
            return hashlib.pbkdf2_hmac("sha256", self.material, salt.encode(), PBKDF2_ROUNDS)
        if self.source is KeySource.FILE:
            return hmac.new(self.material, salt.encode(), hashlib.sha256).digest()
        return salt.encode()


def from_env(env: Mapping[str, str] | None = None) -> KeyMaterial | None:
    """Key material the user supplied through the environment, if any."""
    env = os.environ if env is None else env
    if env.get(ENV_KEY):
        return KeyMaterial(KeySource.SECRET, env[ENV_KEY].encode(), ENV_KEY)
    if env.get(ENV_KEY_FILE):
        return read_key_file(Path(env[ENV_KEY_FILE]))
    return None


def read_key_file(path: Path) -> KeyMaterial:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReconcilerError(f"{path}: cannot read the state key file ({exc.strerror})") from None
    if len(data.strip()) < 16:
        raise ReconcilerError(f"{path}: the state key file is too short (at least 16 bytes)")
    return KeyMaterial(KeySource.FILE, data.strip(), str(path))


def create_key_file(path: Path) -> KeyMaterial:
    """A new random key, written 0600 (never readable by others, even for a moment).

    A key file already there (left beside a state file that was removed) is kept and used.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        return read_key_file(path)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_hex(32).encode() + b"\n")
    return read_key_file(path)


# json.dumps(value, sort_keys=True, separators=(",", ":")), without a new encoder per call
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


class Hasher:
    """Hashes sensitive values for one store: `HMAC-SHA256(derived key, canonical JSON)`."""

    def __init__(self, salt: str, key: KeyMaterial) -> None:
        self.source = key.source
        self._key = key.derive(salt)

    def __call__(self, value: Any) -> str:
        data = _CANONICAL(value).encode()
        return HASH_PREFIX + hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def check(self) -> str:
        """A value that tells whether two hashers share a key, and reveals nothing of it."""
        return hmac.new(self._key, _CHECK_TEXT, hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Hasher(source={self.source.value})"


def verify(hasher: Hasher, recorded_source: str, recorded_check: str, store: str) -> None:
    """Refuse key material other than the one the store was written with."""
    if recorded_source == hasher.source.value and recorded_check == hasher.check():
        return
    if recorded_source == KeySource.NONE.value:
        hint = f"it was written without a key: unset {ENV_KEY} and {ENV_KEY_FILE}"
    elif recorded_source == KeySource.SECRET.value:
        hint = f"it was written with a key from {ENV_KEY}: set the same value"
    else:
        hint = f"it was written with a key file: restore it, or point {ENV_KEY_FILE} at it"
    raise KeyMismatch(
        f"{store}: the state's secrets were hashed with another key ({hint}); "
        "without the same key every secret would look changed"
    )


NO_KEY = KeyMaterial(KeySource.NONE)


def meta_of(hasher: Hasher) -> dict[str, str]:
    """The store's `meta` rows that describe its hash key."""
    return {"hash_key": hasher.source.value, "key_check": hasher.check()}


def adopt(material: KeyMaterial, meta: Mapping[str, str], store: str) -> Hasher:
    """The hasher for another store's salt, if `material` is the key its hashes were made with.

    An export written without a key needs none; one written with a key needs the same key
    material here (`RECONCILER_STATE_KEY`, or `RECONCILER_STATE_KEY_FILE` naming a copy of the
    source's key file).
    """
    if meta.get("hash_key") == KeySource.NONE.value:
        material = NO_KEY
    hasher = Hasher(meta["salt"], material)
    verify(hasher, meta.get("hash_key", ""), meta.get("key_check", ""), store)
    return hasher


NO_STATE_SALT = "reconciler: a plan made where no state exists yet"


def no_state_hasher(api_key: str | None, env: Mapping[str, str] | None = None) -> Hasher:
    """The hasher that fingerprints a plan made where no state exists yet.

    `plan --out` does not create the state, so there is no state key to hash secrets with; yet
    `apply --plan` must find the same fingerprint (and a secret changed since must not). So the
    key is one both commands have without a state: `RECONCILER_STATE_KEY` or its key file when
    set, else the API key (a secret the plan's reader lacks). On the embedded simulator without
    either, only the fixed salt remains: the simulated cloud's plans are not guarded by a key.
    """
    material = from_env(env)
    if material is None and api_key:
        material = KeyMaterial(KeySource.FILE, api_key.encode(), "GCORE_API_KEY")
    return Hasher(NO_STATE_SALT, material or NO_KEY)
