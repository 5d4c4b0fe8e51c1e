"""The simulator's own models of the API's request bodies.

Deliberately separate from `reconciler.spec`: the simulator plays the server, so a mistake in the
client's models must not be mirrored (and hidden) here. Validation failures are turned into Gcore's
error body, with `invalid_fields` keyed by dotted paths (`containers.0.scale.max`).

Limits are Gcore's OpenAPI limits (`reconciler.facts`): `scale.max` <= 300, `cooldown_period`
1-3600, `polling_interval` 5-3600, thresholds 1-100, `http.rate` <= 1000, `http.window` <= 3600,
`sqs.activation_queue_length` >= 1, `retention_policy.period` required and <= 1825. A create
refuses an explicit `null` where the create schema does (`facts.NOT_NULL_ON_CREATE`); an update
refuses it for `flavor_name`, `auth_enabled`, `cooldown_period` and `polling_interval`.

Choices where upstream is silent (documented in the README's simulator section):
names are 4-30 characters of lowercase letters, digits and `-`, starting with a letter;
`scale.min <= scale.max`; region ids are unique per deployment.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .. import facts

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{2,28}[a-z0-9]$")

Port = Annotated[int, Field(ge=1, le=65535)]
Percent = Annotated[int, Field(ge=facts.THRESHOLD_MIN, le=facts.THRESHOLD_MAX)]
NonNegative = Annotated[int, Field(ge=0)]
Cooldown = Annotated[int, Field(ge=facts.COOLDOWN_MIN, le=facts.COOLDOWN_MAX)]
Polling = Annotated[int, Field(ge=facts.POLLING_MIN, le=facts.POLLING_MAX)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Threshold(_Strict):
    threshold: Percent


class HttpTrigger(_Strict):
    rate: Annotated[int, Field(ge=1, le=facts.HTTP_RATE_MAX)]
    window: Annotated[int, Field(ge=1, le=facts.HTTP_WINDOW_MAX)]


class SqsTrigger(_Strict):
    activation_queue_length: Annotated[int, Field(ge=facts.SQS_ACTIVATION_QUEUE_LENGTH_MIN)]
    aws_region: str
    queue_length: Annotated[int, Field(ge=1)]
    queue_url: str
    secret_name: str
    aws_endpoint: str | None = None
    scale_on_delayed: bool = False
    scale_on_flight: bool = False


class Triggers(_Strict):
    cpu: Threshold | None = None
    memory: Threshold | None = None
    gpu_memory: Threshold | None = None
    gpu_utilization: Threshold | None = None
    http: HttpTrigger | None = None
    sqs: SqsTrigger | None = None


class Scale(_Strict):
    min: NonNegative
    max: Annotated[int, Field(ge=0, le=facts.SCALE_MAX)]
    cooldown_period: Cooldown | None = None
    polling_interval: Polling | None = None
    triggers: Triggers = Field(default_factory=Triggers)

    @model_validator(mode="after")
    def _min_le_max(self) -> Scale:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class Container(_Strict):
    region_id: int
    scale: Scale


class ExecAction(_Strict):
    command: list[str] = Field(min_length=1)


class HttpGetAction(_Strict):
    port: Port
    headers: dict[str, str] = Field(default_factory=dict)
    host: str | None = None
    path: str = "/"
    schema_: str = Field("HTTP", alias="schema")


class TcpSocketAction(_Strict):
    port: Port


class Probe(_Strict):
    exec: ExecAction | None = None
    http_get: HttpGetAction | None = None
    tcp_socket: TcpSocketAction | None = None
    failure_threshold: Annotated[int, Field(ge=1)] = facts.PROBE_TIMINGS["failure_threshold"]
    initial_delay_seconds: NonNegative = facts.PROBE_TIMINGS["initial_delay_seconds"]
    period_seconds: Annotated[int, Field(ge=1)] = facts.PROBE_TIMINGS["period_seconds"]
    success_threshold: Annotated[int, Field(ge=1)] = facts.PROBE_TIMINGS["success_threshold"]
    timeout_seconds: Annotated[int, Field(ge=1)] = facts.PROBE_TIMINGS["timeout_seconds"]

    @model_validator(mode="after")
    def _one_action(self) -> Probe:
        kinds = [k for k in ("exec", "http_get", "tcp_socket") if getattr(self, k) is not None]
        if len(kinds) > 1:
            raise ValueError(f"only one of exec, http_get, tcp_socket may be set, got {kinds}")
        return self


class ProbeConfig(_Strict):
    enabled: bool
    probe: Probe | None = None


class Probes(_Strict):
    liveness_probe: ProbeConfig | None = None
    readiness_probe: ProbeConfig | None = None
    startup_probe: ProbeConfig | None = None


class RetentionPolicy(_Strict):
    period: Annotated[int, Field(ge=0, le=facts.RETENTION_PERIOD_MAX)] | None  # required


class Logging(_Strict):
    enabled: bool = False
    destination_region_id: int | None = None
    topic_name: str | None = None
    retention_policy: RetentionPolicy | None = None


class IngressOpts(_Strict):
    disable_response_buffering: bool = False


class _Body(_Strict):
    api_keys: list[str] | None = None
    auth_enabled: bool | None = None
    command: list[str] | None = None
    credentials_name: str | None = None
    description: str | None = None
    envs: dict[str, str] | None = None
    ingress_opts: IngressOpts | None = None
    logging: Logging | None = None
    probes: Probes | None = None
    timeout: NonNegative | None = None

    @model_validator(mode="after")
    def _checks(self) -> _Body:
        sent = self.model_fields_set
        if "api_keys" in sent and "auth_enabled" in sent:
            raise ValueError("auth_enabled and api_keys are mutually exclusive: send one of them")
        return self


def null_paths(body: Any, paths: frozenset[tuple[str, ...]]) -> list[str]:
    """Dotted paths of the explicit `null`s in `body` at the schematic `paths` (`*`: any key)."""
    found: list[str] = []

    def walk(value: Any, at: tuple[str, ...], dotted: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            items: list[tuple[str, Any]] = list(value.items())
        elif isinstance(value, list):
            items = [(str(i), v) for i, v in enumerate(value)]
        else:
            return
        for key, item in items:
            for step in (key, "*"):
                path = (*at, step)
                if item is None and path in paths:
                    found.append(".".join((*dotted, key)))
                elif any(p[: len(path)] == path for p in paths):
                    walk(item, path, (*dotted, key))

    walk(body, (), ())
    return sorted(set(found))


UPDATE_NOT_NULL = frozenset(
    {
        ("flavor_name",),
        ("auth_enabled",),
        ("containers", "*", "scale", "cooldown_period"),
        ("containers", "*", "scale", "polling_interval"),
    }
)


def _refuse_nulls(body: Any, paths: frozenset[tuple[str, ...]]) -> None:
    nulls = null_paths(body, paths)
    if nulls:
        raise BodyInvalid(
            f"Validation error: {nulls[0]}: may not be null",
            {path: ["may not be null"] for path in nulls},
        )


class CreateBody(_Body):
    name: str
    image: Annotated[str, Field(min_length=1)]
    listening_port: Port
    flavor_name: Annotated[str, Field(min_length=1)]
    containers: list[Container] = Field(min_length=1)


class UpdateBody(_Body):
    image: Annotated[str, Field(min_length=1)] | None = None
    listening_port: Port | None = None
    flavor_name: Annotated[str, Field(min_length=1)] | None = None
    containers: list[Container] | None = Field(None, min_length=1)


class BodyInvalid(Exception):
    """A request body failed validation; carries Gcore's `invalid_fields`."""

    def __init__(self, message: str, invalid_fields: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.message = message
        self.invalid_fields = invalid_fields


def _from_pydantic(exc: ValidationError) -> BodyInvalid:
    fields: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "__root__"
        msg = err["msg"].removeprefix("Value error, ")
        fields.setdefault(loc, []).append(msg)
    first = next(iter(fields.items()))
    return BodyInvalid(f"Validation error: {first[0]}: {first[1][0]}", fields)


def _check_common(
    body: _Body, flavors: set[str], regions: set[int], fields: dict[str, list[str]]
) -> None:
    flavor = getattr(body, "flavor_name", None)
    if flavor is not None and flavor not in flavors:
        fields.setdefault("flavor_name", []).append(f"Flavor {flavor!r} does not exist")
    containers = getattr(body, "containers", None) or []
    seen: set[int] = set()
    for i, c in enumerate(containers):
        if c.region_id not in regions:
            fields.setdefault(f"containers.{i}.region_id", []).append(
                f"Region {c.region_id} is not available for inference"
            )
        if c.region_id in seen:
            fields.setdefault(f"containers.{i}.region_id", []).append(
                f"Region {c.region_id} is listed twice"
            )
        seen.add(c.region_id)


def _raise_if(fields: dict[str, list[str]]) -> None:
    if fields:
        first = next(iter(fields.items()))
        raise BodyInvalid(f"Validation error: {first[0]}: {first[1][0]}", fields)


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


def validate_create(body: Any, flavors: set[str], regions: set[int]) -> dict[str, Any]:
    """Validate a create body; return it as sent (only the fields set), or raise BodyInvalid."""
    if not isinstance(body, dict):
        raise BodyInvalid("Request body must be a JSON object", {"__root__": ["not an object"]})
    _refuse_nulls(body, facts.NOT_NULL_ON_CREATE)
    try:
        model = CreateBody.model_validate(body)
    except ValidationError as exc:
        raise _from_pydantic(exc) from None
    fields: dict[str, list[str]] = {}
    if not NAME_RE.match(model.name):
        fields["name"] = [
            "must be 4-30 characters of lowercase letters, digits and '-', starting with a letter"
        ]
    _check_common(model, flavors, regions, fields)
    _raise_if(fields)
    return _dump(model)


def validate_update(body: Any, flavors: set[str], regions: set[int]) -> dict[str, Any]:
    """Validate a PATCH body; return only the fields sent, or raise BodyInvalid."""
    if not isinstance(body, dict):
        raise BodyInvalid("Request body must be a JSON object", {"__root__": ["not an object"]})
    _refuse_nulls(body, UPDATE_NOT_NULL)
    try:
        model = UpdateBody.model_validate(body)
    except ValidationError as exc:
        raise _from_pydantic(exc) from None
    fields: dict[str, list[str]] = {}
    _check_common(model, flavors, regions, fields)
    _raise_if(fields)
    return _dump(model)
