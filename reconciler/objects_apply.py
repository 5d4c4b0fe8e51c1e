"""Reading and changing the live credentials, secrets and API keys, wave by wave.

These objects are synchronous (no tasks), so a wave's actions simply run at once and each is
done when its answer comes. A create answered 409 means the object exists: a credential or
secret is then PUT to match, an API key is taken as it is (its secret cannot be had again; the
message says to rotate it). The secret an API key create returns once is written to
`<secrets_dir>/<project>/<name>` (folder 0700, file 0600) and nowhere else; the outcome carries
only the file's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .api import ApiClient
from .api.objects import InferenceObjects
from .config import Secret
from .diff import Hasher, hashed
from .errors import ApiError, ConflictError, NotFoundError
from .kinds import OBJECT_KINDS, DesiredObject, Kind, ObjectKey
from .model import DeploymentKey, LiveDeployment
from .objects_plan import LiveObject, ObjectAction, ObjectChange, ObjectRecord
from .state import offloop
from .state.objects import ObjectRecordStore

DEFAULT_SECRETS_DIR = ".reconciler/secrets"
NO_KEY_SECRET = "adopted; its secret is not available (reconciler rotate-key)"


async def fetch_live_objects(
    api: ApiClient, project_ids: Iterable[int]
) -> dict[ObjectKey, LiveObject]:
    """Every credential, secret and API key of the given projects."""
    objects = InferenceObjects(api)
    pairs = [(kind, p) for p in sorted(set(project_ids)) for kind in OBJECT_KINDS]
    answers = await asyncio.gather(*(objects.list_objects(k, p) for k, p in pairs))
    live = {}
    for (kind, project_id), found in zip(pairs, answers, strict=True):
        for answer in found:
            key = ObjectKey(kind, project_id, answer.name)
            live[key] = LiveObject(key, answer.view(kind))
    return live


def users_of(live: Mapping[DeploymentKey, LiveDeployment]) -> dict[ObjectKey, list[str]]:
    """For each object, the live deployments that name it (from their answers)."""
    users: dict[ObjectKey, list[str]] = {}

    def add(kind: Kind, project_id: int, name: Any, user: str) -> None:
        if isinstance(name, str) and name:
            users.setdefault(ObjectKey(kind, project_id, name), []).append(user)

    for key, deployment in sorted(live.items()):
        view = deployment.spec_view
        add(Kind.REGISTRY_CREDENTIAL, key.project_id, view.get("credentials_name"), key.name)
        for name in view.get("api_keys") or ():
            add(Kind.API_KEY, key.project_id, name, key.name)
        for container in view.get("containers") or ():
            sqs = ((container.get("scale") or {}).get("triggers") or {}).get("sqs") or {}
            add(Kind.SECRET, key.project_id, sqs.get("secret_name"), key.name)
    return users


@dataclass(frozen=True)
class ObjectOutcome:
    key: ObjectKey
    action: ObjectAction
    ok: bool
    message: str = ""
    secret_file: str | None = None  # where an API key's secret was written


def write_secret(folder: Path, key: ObjectKey, secret: Secret) -> Path:
    """Write an API key's secret to `folder/<project>/<name>`, private to its owner."""
    target_dir = folder / str(key.project_id)
    target_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    os.chmod(target_dir, 0o700)
    path = target_dir / key.name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (secret.reveal() + "\n").encode())
    finally:
        os.close(fd)
    return path


@dataclass
class ObjectExecutor:
    """Runs object changes against the API and keeps their records."""

    api: ApiClient
    records: ObjectRecordStore
    desired: Mapping[ObjectKey, DesiredObject]
    hasher: Hasher
    secrets_dir: Path
    clock: Callable[[], float] = time.time

    async def run(self, changes: Sequence[ObjectChange]) -> list[ObjectOutcome]:
        """Run every mutating change at once (they are one wave)."""
        todo = [c for c in changes if c.action.mutates]
        return list(await asyncio.gather(*(self._one(c) for c in todo)))

    async def _one(self, change: ObjectChange) -> ObjectOutcome:
        try:
            return await self._do(change)
        except ApiError as exc:
            return ObjectOutcome(change.key, change.action, False, str(exc))

    async def _do(self, change: ObjectChange) -> ObjectOutcome:
        objects = InferenceObjects(self.api)
        key = change.key
        if change.action is ObjectAction.DELETE:
            with contextlib.suppress(NotFoundError):
                await objects.delete(key.kind, key.project_id, key.name)
            await offloop(self.records, lambda: self.records.forget(key))
            return ObjectOutcome(key, change.action, True, "deleted")
        desired = self.desired[key]
        body = desired.spec.body()
        secret_file = None
        message = "applied"
        if change.action is ObjectAction.REPLACE:
            with contextlib.suppress(NotFoundError):
                await objects.delete(key.kind, key.project_id, key.name)
        if change.action in (ObjectAction.CREATE, ObjectAction.REPLACE):
            try:
                _, secret = await objects.create(key.kind, key.project_id, key.name, body)
            except ConflictError:
                secret = None
                message = await self._exists(objects, desired, body)
            if secret is not None:
                secret_file = str(write_secret(self.secrets_dir, key, secret))
                message = f"secret written to {secret_file}"
        else:  # update, adopt
            await objects.change(key.kind, key.project_id, key.name, self._change_body(key, body))
            if change.action is ObjectAction.ADOPT and key.kind is Kind.API_KEY:
                message = NO_KEY_SECRET
        record = self._record(desired, body)
        await offloop(self.records, lambda: self.records.save(record))
        return ObjectOutcome(key, change.action, True, message, secret_file)

    async def _exists(
        self, objects: InferenceObjects, desired: DesiredObject, body: Mapping[str, Any]
    ) -> str:
        key = desired.key
        if key.kind is Kind.API_KEY:
            await objects.change(key.kind, key.project_id, key.name, self._change_body(key, body))
            return f"existed: {NO_KEY_SECRET}"
        await objects.change(key.kind, key.project_id, key.name, body)
        return "existed: adopted and updated"

    @staticmethod
    def _change_body(key: ObjectKey, body: Mapping[str, Any]) -> dict[str, Any]:
        if key.kind is Kind.API_KEY:
            return {"description": body.get("description")}
        return dict(body)

    def _record(self, desired: DesiredObject, body: Mapping[str, Any]) -> ObjectRecord:
        return ObjectRecord(
            key=desired.key,
            last_applied=hashed(body, desired.sensitive_paths, self.hasher),
            applied_at=self.clock(),
            sensitive_paths=desired.sensitive_paths,
            labels=desired.labels,
            annotations=desired.annotations,
        )
