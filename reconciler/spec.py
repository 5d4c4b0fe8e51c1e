"""Pydantic models of a deployment spec: the API's create body without `name` (API.md).

Every model forbids unknown fields and is strict about types (a YAML `80` is an integer, `"80"`
is not), so a typo or a wrong type is an error at its place in the manifest, not a surprise at
the API. Fields a manifest leaves out stay unset (`model_fields_set`): the diff compares only what
a manifest sets, so defaults live in the API, not here.

Limits come from Gcore's OpenAPI spec (`reconciler.facts`). An explicit `null` where the create
schema refuses one (`envs`, `api_keys`, `auth_enabled`, `scale.triggers`, a probe's `probe` and
timings, `http_get.path` / `schema`) is an error here, not a 422 at apply time.

Choices where the API is silent (the simulator makes the same ones): names are 4-30 characters
of lowercase letters, digits and `-`, starting with a letter and not ending with `-`;
`scale.min <= scale.max`; region ids are positive; `envs` keys
are environment variable names.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import facts

NAME_PATTERN = r"^[a-z][a-z0-9-]{2,28}[a-z0-9]$"
NAME_RE = re.compile(NAME_PATTERN)
ANNOTATION_PREFIX = "reconciler/"
# every annotation this reconciler reads, with the values it accepts
ANNOTATIONS: dict[str, tuple[str, ...]] = {"reconciler/prune": ("true", "false")}
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
API_VERSION = "reconciler/v1"
KIND = "InferenceDeployment"

Port = Annotated[int, Field(ge=1, le=65535)]
Percent = Annotated[
    int, Field(ge=facts.THRESHOLD_MIN, le=facts.THRESHOLD_MAX, description="percent, 1-100")
]
NonNegative = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]


def _not_null(value: Any) -> Any:
    """A `mode="before"` check: the field may be left out, but not set to `null`."""
    if value is None:
        raise ValueError("may not be null: leave the field out to get the API's default")
    return value


class SpecModel(BaseModel):
    """Base of every spec model: strict, closed, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    def body(self) -> dict[str, Any]:
        """The request shape: only the fields set, with API field names."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class ThresholdTrigger(SpecModel):
    threshold: Percent


class HttpTrigger(SpecModel):
    rate: int = Field(
        ge=1,
        le=facts.HTTP_RATE_MAX,
        description="requests per `window` seconds that trigger scaling",
    )
    window: int = Field(ge=1, le=facts.HTTP_WINDOW_MAX, description="seconds")


class SqsTrigger(SpecModel):
    activation_queue_length: int = Field(ge=facts.SQS_ACTIVATION_QUEUE_LENGTH_MIN)
    aws_region: str
    queue_length: Positive
    queue_url: str
    secret_name: str = Field(description="name of an `aws-iam` inference secret")
    aws_endpoint: str | None = None
    scale_on_delayed: bool = False
    scale_on_flight: bool = False


class Triggers(SpecModel):
    cpu: ThresholdTrigger | None = None
    memory: ThresholdTrigger | None = None
    gpu_memory: ThresholdTrigger | None = None
    gpu_utilization: ThresholdTrigger | None = None
    http: HttpTrigger | None = None
    sqs: SqsTrigger | None = None


class Scale(SpecModel):
    min: NonNegative
    max: int = Field(ge=0, le=facts.SCALE_MAX)
    cooldown_period: int | None = Field(
        None, ge=facts.COOLDOWN_MIN, le=facts.COOLDOWN_MAX, description="seconds (API default 60)"
    )
    polling_interval: int | None = Field(
        None, ge=facts.POLLING_MIN, le=facts.POLLING_MAX, description="seconds (API default 30)"
    )
    triggers: Triggers | None = None

    _triggers_not_null = field_validator("triggers", mode="before")(_not_null)

    @model_validator(mode="after")
    def _min_le_max(self) -> Scale:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not be greater than max ({self.max})")
        return self


class Container(SpecModel):
    region_id: Positive
    scale: Scale


class ExecAction(SpecModel):
    command: list[str] = Field(min_length=1)


class HttpGetAction(SpecModel):
    port: Port
    headers: dict[str, str] | None = None
    host: str | None = None
    path: str | None = None
    schema_: str | None = Field(None, alias="schema", description="HTTP or HTTPS")

    _path_not_null = field_validator("path", "schema_", mode="before")(_not_null)


class TcpSocketAction(SpecModel):
    port: Port


class Probe(SpecModel):
    exec: ExecAction | None = None
    http_get: HttpGetAction | None = None
    tcp_socket: TcpSocketAction | None = None
    failure_threshold: Positive | None = None
    initial_delay_seconds: NonNegative | None = None
    period_seconds: Positive | None = None
    success_threshold: Positive | None = None
    timeout_seconds: Positive | None = Field(None, description="API default 3")

    _timings_not_null = field_validator(*facts.PROBE_TIMINGS, mode="before")(_not_null)

    @model_validator(mode="after")
    def _one_action(self) -> Probe:
        actions = [k for k in ("exec", "http_get", "tcp_socket") if getattr(self, k) is not None]
        if len(actions) > 1:
            raise ValueError(
                f"a probe has at most one of exec, http_get, tcp_socket; got {', '.join(actions)}"
            )
        return self


class ProbeConfig(SpecModel):
    enabled: bool
    probe: Probe | None = None

    _probe_not_null = field_validator("probe", mode="before")(_not_null)


class Probes(SpecModel):
    liveness_probe: ProbeConfig | None = None
    readiness_probe: ProbeConfig | None = None
    startup_probe: ProbeConfig | None = None


class RetentionPolicy(SpecModel):
    period: int | None = Field(ge=0, le=facts.RETENTION_PERIOD_MAX, description="days (required)")


class Logging(SpecModel):
    enabled: bool | None = Field(None, description="API default false")
    destination_region_id: Positive | None = None
    topic_name: str | None = None
    retention_policy: RetentionPolicy | None = None

    _enabled_not_null = field_validator("enabled", mode="before")(_not_null)


class IngressOpts(SpecModel):
    disable_response_buffering: bool | None = Field(None, description="API default false")

    _buffering_not_null = field_validator("disable_response_buffering", mode="before")(_not_null)


class DeploymentSpec(SpecModel):
    """The API's create body without `name`."""

    image: str = Field(min_length=1, description="image `name:tag`, Docker Hub by default")
    flavor_name: str = Field(min_length=1)
    listening_port: Port
    containers: list[Container] = Field(min_length=1)
    api_keys: list[str] | None = Field(None, description="names of inference API keys")
    auth_enabled: bool | None = Field(None, description="deprecated: use api_keys")
    command: list[str] | None = None
    credentials_name: str | None = Field(None, description="registry credentials name")
    description: str | None = None
    envs: dict[str, str] | None = None
    ingress_opts: IngressOpts | None = None
    logging: Logging | None = None
    probes: Probes | None = None
    timeout: NonNegative | None = Field(
        None, description="idle seconds before scaling down to scale.min (API default 120)"
    )
    stopped: bool | None = Field(
        None,
        description="reconciler field, never sent: true keeps the deployment stopped, "
        "false or absent keeps it running",
    )

    def body(self) -> dict[str, Any]:
        """The request shape; `stopped` is ours, not the API's, and never part of it."""
        body = super().body()
        body.pop("stopped", None)
        return body

    @property
    def wants_stopped(self) -> bool:
        return bool(self.stopped)

    _fields_not_null = field_validator("envs", "api_keys", "auth_enabled", mode="before")(_not_null)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name == "envs" and value:
                value = {key: "(sensitive)" for key in value}
            yield name, value

    @field_validator("envs")
    @classmethod
    def _env_names(cls, envs: dict[str, str] | None) -> dict[str, str] | None:
        for key in envs or {}:
            if not ENV_NAME_RE.match(key):
                raise ValueError(
                    f"envs key {key!r} is not a valid environment variable name "
                    "(letters, digits and _, not starting with a digit)"
                )
        return envs

    @field_validator("containers")
    @classmethod
    def _regions_once(cls, containers: list[Container]) -> list[Container]:
        regions = [c.region_id for c in containers]
        twice = sorted({r for r in regions if regions.count(r) > 1})
        if twice:
            raise ValueError(
                f"each region may appear once in containers; region {twice[0]} appears twice"
            )
        return containers

    @model_validator(mode="after")
    def _auth_once(self) -> DeploymentSpec:
        if "api_keys" in self.model_fields_set and "auth_enabled" in self.model_fields_set:
            raise ValueError("api_keys and auth_enabled are mutually exclusive: set one of them")
        return self


class Metadata(SpecModel):
    name: str = Field(
        pattern=NAME_PATTERN,
        description="4-30 lowercase letters, digits and '-', starting with a letter, "
        "not ending with '-'",
    )
    project_id: int | None = Field(None, description="defaults to GCORE_CLOUD_PROJECT_ID")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("project_id")
    @classmethod
    def _positive_project(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"project_id must be a positive integer, got {value}")
        return value

    @field_validator("annotations")
    @classmethod
    def _known_annotations(cls, annotations: dict[str, str]) -> dict[str, str]:
        """`reconciler/…` keys are ours: a typo there would silently drop a safety policy."""
        for key, value in annotations.items():
            if not key.startswith(ANNOTATION_PREFIX):
                continue  # other tools' annotations are theirs
            allowed = ANNOTATIONS.get(key)
            if allowed is None:
                close = difflib.get_close_matches(key, list(ANNOTATIONS), n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]}?" if close else ""
                known = ", ".join(sorted(ANNOTATIONS))
                raise ValueError(f"unknown annotation {key}{hint} (known: {known})")
            if value not in allowed:
                choices = " or ".join(f'"{v}"' for v in allowed)
                raise ValueError(f"annotation {key} must be {choices}, got {value!r}")
        return annotations


class Manifest(SpecModel):
    """One `InferenceDeployment` document."""

    model_config = ConfigDict(title="InferenceDeployment")

    apiVersion: Literal["reconciler/v1"]
    kind: Literal["InferenceDeployment"]
    metadata: Metadata
    spec: DeploymentSpec


class ManifestList(SpecModel):
    """A `kind: List` document holding several manifests."""

    model_config = ConfigDict(title="List")

    apiVersion: Literal["reconciler/v1"]
    kind: Literal["List"]
    items: list[Manifest]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a manifest document, for editors (yaml-language-server)."""
    from pydantic import TypeAdapter

    from .kinds import ApiKeyManifest, RegistryCredentialManifest, SecretManifest

    adapter: TypeAdapter[Any] = TypeAdapter(
        Manifest | RegistryCredentialManifest | SecretManifest | ApiKeyManifest | ManifestList
    )
    schema = adapter.json_schema(ref_template="#/$defs/{model}")
    kinds = [
        {"$ref": f"#/$defs/{m.__name__}"}
        for m in (Manifest, RegistryCredentialManifest, SecretManifest, ApiKeyManifest)
    ]
    schema["$defs"]["ManifestList"]["properties"]["items"]["items"] = {"anyOf": kinds}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "reconciler manifest",
        "description": "An InferenceDeployment, InferenceRegistryCredential, InferenceSecret or "
        "InferenceApiKey, or a List of them (apiVersion reconciler/v1).",
        **schema,
    }
