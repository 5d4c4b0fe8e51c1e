"""The values the pipeline's stages hand each other: identity, places, desired deployments."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .spec import DeploymentSpec

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


@dataclass(frozen=True)
class DesiredDeployment:
    """One deployment as a manifest asks for it.

    `sensitive_paths` are paths inside `spec` (request-shape keys, list indices as ints) whose
    values must never be printed: every `envs` value, and anything interpolated from `${VAR}`.
    """

    key: DeploymentKey
    spec: DeploymentSpec = field(repr=False)  # may hold secrets
    source: Location
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    sensitive_paths: frozenset[SpecPath] = frozenset()


@dataclass(frozen=True)
class DesiredState:
    """Every desired deployment, in key order, and how many files they came from."""

    deployments: tuple[DesiredDeployment, ...]
    files: int

    def __iter__(self) -> Iterator[DesiredDeployment]:
        return iter(self.deployments)

    def __len__(self) -> int:
        return len(self.deployments)

    def by_key(self) -> dict[DeploymentKey, DesiredDeployment]:
        return {d.key: d for d in self.deployments}
