"""The inference objects a deployment references: registry credentials, secrets, API keys.

Each kind has the deployment's envelope (DESIGN.md §6a) and a spec that is the API's create body
without `name`. Identity is `(kind, project_id, name)`. Write-only fields (a credential's
`password`, a secret's `data.aws_secret_access_key`) never come back from the API, so they are
compared through the salted hash recorded when they were applied; they must not be written
literally in a manifest either (`${VAR}` or `valueFrom.file`, checked by the loader).

A deployment points at these objects by name: `credentials_name`, `api_keys` and every SQS
trigger's `secret_name`. `references_of` lists those pointers with the path they sit at, so the
loader can place them in a file and the planner can order work as a graph.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema

from .model import Location, SpecPath
from .spec import DeploymentSpec, Metadata, SpecModel


class Kind(StrEnum):
    """Every manifest kind, and what the API calls its collection."""

    DEPLOYMENT = "InferenceDeployment"
    REGISTRY_CREDENTIAL = "InferenceRegistryCredential"
    SECRET = "InferenceSecret"
    API_KEY = "InferenceApiKey"

    @property
    def collection(self) -> str:
        return _COLLECTIONS[self]

    @property
    def noun(self) -> str:
        """How a message names one object of this kind."""
        return _NOUNS[self]

    @property
    def write_only(self) -> tuple[SpecPath, ...]:
        """Spec paths the API accepts but never returns; they must not be literal."""
        return _WRITE_ONLY.get(self, ())

    @property
    def order(self) -> int:
        """Referenced kinds sort before the deployments that use them."""
        return 1 if self is Kind.DEPLOYMENT else 0


_COLLECTIONS = {
    Kind.DEPLOYMENT: "deployments",
    Kind.REGISTRY_CREDENTIAL: "registry_credentials",
    Kind.SECRET: "secrets",
    Kind.API_KEY: "api_keys",
}
_NOUNS = {
    Kind.DEPLOYMENT: "deployment",
    Kind.REGISTRY_CREDENTIAL: "registry credential",
    Kind.SECRET: "secret",
    Kind.API_KEY: "API key",
}
_WRITE_ONLY: dict[Kind, tuple[SpecPath, ...]] = {
    Kind.REGISTRY_CREDENTIAL: (("password",),),
    Kind.SECRET: (("data", "aws_secret_access_key"),),
}
OBJECT_KINDS = (Kind.REGISTRY_CREDENTIAL, Kind.SECRET, Kind.API_KEY)

_VALUE_FROM_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "description": 'must be "${VAR}": a literal secret is refused'},
        {
            "type": "object",
            "properties": {
                "valueFrom": {
                    "type": "object",
                    "properties": {"file": {"type": "string"}},
                    "required": ["file"],
                    "additionalProperties": False,
                }
            },
            "required": ["valueFrom"],
            "additionalProperties": False,
        },
    ]
}
SecretValue = Annotated[str, WithJsonSchema(_VALUE_FROM_SCHEMA)]


class RegistryCredentialSpec(SpecModel):
    """`POST …/registry_credentials` without `name`."""

    registry_url: str = Field(min_length=1, description="e.g. ghcr.io")
    username: str = Field(min_length=1)
    password: SecretValue = Field(min_length=1, description="write-only; ${VAR} or valueFrom")


class AwsIamData(SpecModel):
    aws_access_key_id: str = Field(min_length=1)
    aws_secret_access_key: SecretValue = Field(min_length=1, description="${VAR} or valueFrom")


class SecretSpec(SpecModel):
    """`POST …/secrets` without `name`; `aws-iam` is the only type the API knows."""

    type: Literal["aws-iam"]
    data: AwsIamData


class ApiKeySpec(SpecModel):
    """`POST …/api_keys` without `name`. Only `description` can change in place."""

    description: str | None = None
    expires_at: str | None = Field(None, description="ISO 8601, e.g. 2027-06-30T00:00:00Z")


ObjectSpec = RegistryCredentialSpec | SecretSpec | ApiKeySpec


class RegistryCredentialManifest(SpecModel):
    model_config = ConfigDict(title="InferenceRegistryCredential")

    apiVersion: Literal["reconciler/v1"]
    kind: Literal["InferenceRegistryCredential"]
    metadata: Metadata
    spec: RegistryCredentialSpec


class SecretManifest(SpecModel):
    model_config = ConfigDict(title="InferenceSecret")

    apiVersion: Literal["reconciler/v1"]
    kind: Literal["InferenceSecret"]
    metadata: Metadata
    spec: SecretSpec


class ApiKeyManifest(SpecModel):
    model_config = ConfigDict(title="InferenceApiKey")

    apiVersion: Literal["reconciler/v1"]
    kind: Literal["InferenceApiKey"]
    metadata: Metadata
    spec: ApiKeySpec


ObjectManifest = RegistryCredentialManifest | SecretManifest | ApiKeyManifest
MANIFEST_MODELS: Mapping[Kind, type[ObjectManifest]] = MappingProxyType(
    {
        Kind.REGISTRY_CREDENTIAL: RegistryCredentialManifest,
        Kind.SECRET: SecretManifest,
        Kind.API_KEY: ApiKeyManifest,
    }
)


@dataclass(frozen=True, order=True)
class ObjectKey:
    """Identity of any object: its kind, project and name."""

    kind: Kind
    project_id: int
    name: str

    def __str__(self) -> str:
        return f"{self.kind.noun} {self.project_id}/{self.name}"


@dataclass(frozen=True)
class DesiredObject:
    """A credential, secret or API key as a manifest asks for it.

    `sensitive_paths` (inside `spec`) hold the write-only fields and anything interpolated.
    """

    key: ObjectKey
    spec: ObjectSpec = field(repr=False)  # may hold secrets
    source: Location
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    sensitive_paths: frozenset[SpecPath] = frozenset()


@dataclass(frozen=True)
class Reference:
    """A deployment's pointer to an object by name, and where the manifest wrote it."""

    target: ObjectKey
    path: SpecPath  # inside `spec`
    location: Location


def references_of(spec: DeploymentSpec) -> Iterator[tuple[Kind, str, SpecPath]]:
    """Every object a deployment spec names, with the spec path of the name."""
    if spec.credentials_name:
        yield Kind.REGISTRY_CREDENTIAL, spec.credentials_name, ("credentials_name",)
    for i, key in enumerate(spec.api_keys or ()):
        yield Kind.API_KEY, key, ("api_keys", i)
    for i, container in enumerate(spec.containers):
        triggers = container.scale.triggers
        if triggers is not None and triggers.sqs is not None:
            path = ("containers", i, "scale", "triggers", "sqs", "secret_name")
            yield Kind.SECRET, triggers.sqs.secret_name, path
