"""The values the pipeline's stages hand each other: identity, places, desired deployments."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticSerializationError

from .answerview import NOTHING, Decoded, managed_by
from .spec import DeploymentSpec

if TYPE_CHECKING:
    from .kinds import DesiredObject, Reference

SpecPath = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class DeploymentKey:
    """A deployment's identity: its project and its name."""

    project_id: int
    name: str

    def __str__(self) -> str:
        return f"{self.project_id}/{self.name}"


@dataclass(frozen=True, order=True)
class Location:
    """Where something was written: a file and a 1-based line (and column)."""

    file: str
    line: int
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


_NO_LABELS: Mapping[str, str] = MappingProxyType({})


def _spec_json(spec: DeploymentSpec) -> str:
    """The JSON of the spec's fields as set, `stopped` included (`body()` leaves it out):
    pydantic writes it, or json where pydantic cannot (a lone surrogate, which json escapes)."""
    try:
        return spec.model_dump_json(by_alias=True, exclude_unset=True)
    except PydanticSerializationError:
        fields = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return json.dumps(fields, separators=(",", ":"))


@dataclass(frozen=True, init=False)
class DesiredDeployment:
    """One deployment as a manifest asks for it.

    `sensitive_paths` are paths inside `spec` (request-shape keys, list indices as ints) whose
    values must never be printed: every `envs` value, and anything interpolated from `${VAR}`.

    The validated spec is kept as its JSON text (the fields the manifest sets, by their API
    names): a plan of 10,000 deployments would otherwise hold ~15 models per deployment. `body()`
    decodes it; `spec` validates it into the model again, for the callers that want one.
    """

    key: DeploymentKey
    spec_json: str = field(repr=False)  # may hold secrets
    source: Location
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    sensitive_paths: frozenset[SpecPath]
    references: tuple[Reference, ...]  # the objects it names, where it names them
    wants_stopped: bool

    def __init__(
        self,
        key: DeploymentKey,
        spec: DeploymentSpec,
        source: Location,
        labels: Mapping[str, str] = _NO_LABELS,
        annotations: Mapping[str, str] = _NO_LABELS,
        sensitive_paths: frozenset[SpecPath] = frozenset(),
        references: tuple[Reference, ...] = (),
    ) -> None:
        put = object.__setattr__
        put(self, "key", key)
        put(self, "spec_json", _spec_json(spec))
        put(self, "source", source)
        put(self, "labels", labels)
        put(self, "annotations", annotations)
        put(self, "sensitive_paths", sensitive_paths)
        put(self, "references", references)
        put(self, "wants_stopped", spec.wants_stopped)

    @property
    def spec(self) -> DeploymentSpec:
        """The spec's model, validated anew from `spec_json` (equal to the one it came from)."""
        return DeploymentSpec.model_validate(json.loads(self.spec_json))

    def body(self) -> dict[str, Any]:
        """`spec.body()`: the request shape (only the fields set; `stopped` is never sent)."""
        body: dict[str, Any] = json.loads(self.spec_json)
        body.pop("stopped", None)
        return body


@dataclass(frozen=True)
class DesiredState:
    """Every desired deployment, in key order, and how many files they came from.

    `objects` are the other kinds (credentials, secrets, API keys), in key order.
    """

    deployments: tuple[DesiredDeployment, ...]
    files: int
    objects: tuple[DesiredObject, ...] = ()

    def __iter__(self) -> Iterator[DesiredDeployment]:
        return iter(self.deployments)

    def __len__(self) -> int:
        return len(self.deployments)

    def by_key(self) -> dict[DeploymentKey, DesiredDeployment]:
        return {d.key: d for d in self.deployments}


class DeploymentStatus(StrEnum):
    """A deployment's `status` as the API reports it (API.md)."""

    DEPLOYING = "DEPLOYING"
    PARTIALLYDEPLOYED = "PARTIALLYDEPLOYED"
    ACTIVE = "ACTIVE"
    PENDING = "PENDING"
    DISABLED = "DISABLED"
    DELETING = "DELETING"


class TaskState(StrEnum):
    """A task's `state` as the API reports it."""

    NEW = "NEW"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    ERROR = "ERROR"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskState.FINISHED, TaskState.ERROR)

    @property
    def succeeded(self) -> bool:
        return self is TaskState.FINISHED


@dataclass(frozen=True)
class ContainerStatus:
    region_id: int
    ready: int
    total: int
    error_message: str | None = None
    address: str | None = None


def _statuses(answer: Mapping[str, Any]) -> tuple[ContainerStatus, ...]:
    return tuple(
        ContainerStatus(
            region_id=c["region_id"],
            ready=(c.get("deploy_status") or {}).get("ready", 0),
            total=(c.get("deploy_status") or {}).get("total", 0),
            error_message=c.get("error_message"),
            address=c.get("address"),
        )
        for c in answer.get("containers") or []
    )


@dataclass(frozen=True, eq=False)
class LiveDeployment:
    """A deployment as the API reports it, split into its spec view and its runtime status.

    `spec_view` is the answer without the response-only fields (status, addresses, ...): still in
    the API's response shape (command as one string, server defaults filled in); the diff knows
    how that shape relates to a manifest's.

    A compact one (`compact_answer`, for a plan's listing of thousands) keeps the answer as JSON
    text, not as ~20 dicts: `raw` and `spec_view` decode it on every use, and `opened()` is the
    same deployment decoded once, for the turn that reads it.

    `managed_by` is the parent that manages it (`AppDeployment my-app`), from
    `object_references`; None for a standalone deployment. Such a deployment is never adopted,
    updated or deleted.
    """

    key: DeploymentKey
    status: str
    containers_status: tuple[ContainerStatus, ...]
    managed_by: str | None = None
    kept: Decoded | str = field(default=NOTHING, repr=False)  # may hold secrets
    unreadable: str = ""  # why the API's answer for it could not be read (then nothing else is)

    def _decoded(self) -> Decoded:
        kept = self.kept
        return kept if isinstance(kept, Decoded) else Decoded.of(json.loads(kept))

    @property
    def raw(self) -> Mapping[str, Any]:
        return self._decoded().raw

    @property
    def spec_view(self) -> Mapping[str, Any]:
        return self._decoded().view

    @property
    def compact(self) -> bool:
        return isinstance(self.kept, str)

    def opened(self) -> LiveDeployment:
        """This deployment with its answer decoded (itself if it is already)."""
        return replace(self, kept=self._decoded()) if isinstance(self.kept, str) else self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LiveDeployment):
            return NotImplemented
        return self._compared() == other._compared()

    def _compared(self) -> tuple[Any, ...]:
        return (self.key, self.status, self.containers_status, self.unreadable, self.raw)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def unreadable_answer(cls, key: DeploymentKey, message: str) -> LiveDeployment:
        """A listed deployment whose answer does not parse: known by name only."""
        return cls(key, "", (), unreadable=message)

    @classmethod
    def from_answer(cls, project_id: int, answer: Mapping[str, Any]) -> LiveDeployment:
        return cls(
            key=DeploymentKey(project_id, str(answer["name"])),
            status=str(answer.get("status", "")),
            containers_status=_statuses(answer),
            managed_by=managed_by(answer),
            kept=Decoded.of(answer),
        )

    @classmethod
    def compact_answer(cls, project_id: int, answer: Mapping[str, Any]) -> LiveDeployment:
        """Like `from_answer`, keeping the answer (plain JSON values) as JSON text."""
        return cls(
            key=DeploymentKey(project_id, str(answer["name"])),
            status=str(answer.get("status", "")),
            containers_status=_statuses(answer),
            managed_by=managed_by(answer),
            kept=json.dumps(
                answer if isinstance(answer, dict) else dict(answer), separators=(",", ":")
            ),
        )


class RecordOutcome(StrEnum):
    """How the last apply of an owned deployment went, as its record says."""

    APPLYING = "applying"  # submitted; not yet converged (or the run was cut short)
    ADOPTING = "adopting"
    CONVERGED = "converged"
    RESUMED = "resumed"  # finished by the next run's resume
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    UNKNOWN = "unknown"  # a word this version does not know (written by a newer one)

    @classmethod
    def parse(cls, text: str) -> RecordOutcome:
        try:
            return cls(text)
        except ValueError:
            return cls.UNKNOWN

    @property
    def settled(self) -> bool:
        """The last apply ended well: nothing about it is worth telling."""
        return self in (RecordOutcome.CONVERGED, RecordOutcome.RESUMED)


# Set by the reconciler on a record (never read from a manifest) when the deployment was applied
# with `spec.stopped: true`: a start out of band is then drift, not a change of the manifest.
STOPPED_ANNOTATION = "reconciler/stopped"


class JsonText(Mapping[str, Any]):
    """A JSON object kept as its text, decoded again for every read (for what is held long and
    read rarely: a compact record's `last_applied`). `decoded()` is one decode to read many
    times."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def decoded(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.text)
        return value

    def __getitem__(self, key: str) -> Any:
        return self.decoded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.decoded())

    def __len__(self) -> int:
        return len(self.decoded())

    def __eq__(self, other: object) -> bool:
        return self.decoded() == (other.decoded() if isinstance(other, JsonText) else other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self.decoded())


@dataclass(frozen=True)
class Record:
    """A deployment this reconciler owns, as it last applied it.

    A compact one (`compacted()`, for a plan over thousands) keeps `last_applied` as `JsonText`;
    `opened()` is the same record decoded once, for the turn that reads it.
    """

    key: DeploymentKey
    last_applied: Mapping[str, Any]  # request shape; sensitive leaves are salted hashes
    applied_at: float
    outcome: RecordOutcome
    message: str = ""
    revision: str | None = None
    sensitive_paths: frozenset[SpecPath] = frozenset()
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def was_stopped(self) -> bool:
        """Whether it was applied with `spec.stopped: true` (kept stopped on purpose)."""
        return self.annotations.get(STOPPED_ANNOTATION) == "true"

    def compacted(self) -> Record:
        """This record with `last_applied` kept as JSON text (itself if it is already)."""
        if isinstance(self.last_applied, JsonText):
            return self
        text = json.dumps(dict(self.last_applied), separators=(",", ":"))
        return replace(self, last_applied=JsonText(text))

    def opened(self) -> Record:
        """This record with `last_applied` decoded (itself if it is already)."""
        if isinstance(self.last_applied, JsonText):
            return replace(self, last_applied=self.last_applied.decoded())
        return self
