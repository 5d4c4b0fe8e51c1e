"""`state export` / `state import`: an inventory as one JSON document, and back.

The document carries what a store holds, as it holds it: records with their sensitive values
still hashed, the unfinished journal (so a move does not forget an operation in flight), and
the salt and key description the hashes were made with, never the key. An import therefore
needs the same key material as the source (see `statekey`), goes only into an empty store, and
either takes everything or nothing it can check first: the document is validated whole before
a row is written.

    {"format": "reconciler-state", "format_version": 1, "schema_version": 1,
     "hash": {"salt": "…", "hash_key": "file", "key_check": "…"},
     "records": [{"project_id": 1, "name": "…", "last_applied": {…}, …}],
     "journal": [{"project_id": 1, "name": "…", "action": "create", …}],
     "objects": [{"kind": "InferenceSecret", "project_id": 1, "name": "…", …}]}

`objects` (credentials, secrets, API keys; their sensitive values hashed like the records') is
written only when there are some, so a document without them still reads in older versions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ReconcilerError
from .kinds import Kind, ObjectKey
from .model import DeploymentKey, Record, RecordOutcome
from .objects_plan import ObjectRecord
from .state import JournalEntry, StateStore
from .state.objects import ObjectRecordStore, open_object_records

FORMAT = "reconciler-state"
FORMAT_VERSION = 1


class TransferError(ReconcilerError):
    """An export document that cannot be imported, or a store that cannot take it."""


class TransferStore(StateStore, Protocol):
    def is_empty(self) -> bool: ...
    def schema_version(self) -> int: ...
    def hash_meta(self) -> dict[str, str]: ...
    def adopt_hash_meta(self, meta: Mapping[str, str]) -> None: ...
    def restore_journal(self, entries: list[JournalEntry]) -> None: ...


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Hash(_Strict):
    salt: str = Field(min_length=8)
    hash_key: Literal["file", "secret", "none"]
    key_check: str = Field(min_length=8)


class _Record(_Strict):
    project_id: int = Field(ge=1, lt=2**63)
    name: str = Field(min_length=1)
    last_applied: dict[str, Any]
    sensitive_paths: list[list[str | int]] = []
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    revision: str | None = None
    applied_at: float
    outcome: str
    message: str = ""


class _Journal(_Strict):
    project_id: int = Field(ge=1, lt=2**63)
    name: str = Field(min_length=1)
    action: str
    intent: dict[str, Any]
    task_ids: list[str] = []
    state: Literal["pending", "submitted"]
    result: str | None = None
    message: str = ""
    started_at: float


class _Object(_Strict):
    kind: Kind
    project_id: int = Field(ge=1, lt=2**63)
    name: str = Field(min_length=1)
    last_applied: dict[str, Any]
    sensitive_paths: list[list[str | int]] = []
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    applied_at: float


class _Document(_Strict):
    format: Literal["reconciler-state"]
    format_version: Literal[1]
    schema_version: int = Field(ge=1)
    hash: _Hash
    records: list[_Record]
    journal: list[_Journal] = []
    objects: list[_Object] = []


@dataclass(frozen=True)
class Imported:
    records: int
    journal: int
    objects: int = 0


def _object_records(store: TransferStore) -> ObjectRecordStore:
    found = open_object_records(store)
    if found is None:
        raise TransferError(f"{store} cannot hold credentials, secrets or API keys")
    return found


def _export_objects(store: TransferStore) -> list[dict[str, Any]]:
    objects = _object_records(store)
    try:
        return [
            {
                "kind": o.key.kind.value,
                "project_id": o.key.project_id,
                "name": o.key.name,
                "last_applied": dict(o.last_applied),
                "sensitive_paths": sorted(list(p) for p in o.sensitive_paths),
                "labels": dict(o.labels),
                "annotations": dict(o.annotations),
                "applied_at": o.applied_at,
            }
            for o in objects.records().values()
        ]
    finally:
        objects.close()


def export_state(store: TransferStore) -> dict[str, Any]:
    records = [
        {
            "project_id": r.key.project_id,
            "name": r.key.name,
            "last_applied": dict(r.last_applied),
            "sensitive_paths": sorted(list(p) for p in r.sensitive_paths),
            "labels": dict(r.labels),
            "annotations": dict(r.annotations),
            "revision": r.revision,
            "applied_at": r.applied_at,
            "outcome": str(r.outcome),
            "message": r.message,
        }
        for r in store.records().values()
    ]
    journal = [
        {
            "project_id": e.key.project_id,
            "name": e.key.name,
            "action": str(e.action),
            "intent": dict(e.intent),
            "task_ids": list(e.task_ids),
            "state": str(e.state),
            "result": e.result,
            "message": e.message,
            "started_at": e.started_at,
        }
        for e in store.unfinished()
    ]
    document: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_version": store.schema_version(),
        "hash": store.hash_meta(),
        "records": records,
        "journal": journal,
    }
    objects = _export_objects(store)
    if objects:
        document["objects"] = objects
    return document


def parse_document(text: str, where: str) -> _Document:
    """The whole document, checked, or one line naming where it is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TransferError(f"{where}:{exc.lineno}:{exc.colno}: not JSON ({exc.msg})") from None
    try:
        return _Document.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"]) or "(document)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise TransferError(f"{where}: {path}: {first['msg']}{more}") from None


def import_state(store: TransferStore, document: _Document) -> Imported:
    if document.schema_version > store.schema_version():
        raise TransferError(
            f"the export is of state schema {document.schema_version}, newer than {store} "
            f"({store.schema_version()}); upgrade reconciler"
        )
    if not store.is_empty():
        raise TransferError(f"{store} already holds records or a journal; import into an empty one")
    keys = [DeploymentKey(r.project_id, r.name) for r in document.records]
    if len(set(keys)) != len(keys):
        raise TransferError("the export lists one deployment twice")
    object_keys = [ObjectKey(o.kind, o.project_id, o.name) for o in document.objects]
    if len(set(object_keys)) != len(object_keys):
        raise TransferError("the export lists one credential, secret or API key twice")
    objects = _object_records(store)
    try:
        if objects.records():
            raise TransferError(
                f"{store} already holds credentials, secrets or API keys; import into an empty one"
            )
        imported = _import(store, document, keys)
        for o, okey in zip(document.objects, object_keys, strict=True):
            objects.save(
                ObjectRecord(
                    key=okey,
                    last_applied=o.last_applied,
                    sensitive_paths=frozenset(tuple(p) for p in o.sensitive_paths),
                    labels=MappingProxyType(o.labels),
                    annotations=MappingProxyType(o.annotations),
                    applied_at=o.applied_at,
                )
            )
    finally:
        objects.close()
    return Imported(imported.records, imported.journal, len(object_keys))


def _import(store: TransferStore, document: _Document, keys: list[DeploymentKey]) -> Imported:
    store.adopt_hash_meta(document.hash.model_dump())
    for r, key in zip(document.records, keys, strict=True):
        store.save_record(
            Record(
                key=key,
                last_applied=r.last_applied,
                sensitive_paths=frozenset(tuple(p) for p in r.sensitive_paths),
                labels=MappingProxyType(r.labels),
                annotations=MappingProxyType(r.annotations),
                revision=r.revision,
                applied_at=r.applied_at,
                outcome=RecordOutcome.parse(r.outcome),
                message=r.message,
            )
        )
    entries = [
        JournalEntry(
            id=0,
            key=DeploymentKey(j.project_id, j.name),
            action=j.action,
            intent=j.intent,
            task_ids=tuple(j.task_ids),
            state=j.state,
            result=j.result,
            message=j.message,
            started_at=j.started_at,
        )
        for j in document.journal
    ]
    store.restore_journal(entries)
    return Imported(len(keys), len(entries))
