"""The normal form of a deployment spec: what the diff compares.

A manifest's body and an API answer say the same thing in different shapes. Both are brought to
one form here, so that equal means equal:

- `null` (or a missing key the API fills in) becomes the API's default (`reconciler.facts`):
  `""` for `description` and `credentials_name`, 120 for `timeout`, `[]` for `api_keys`, all six
  trigger keys, every probe timing, every `logging` key, ...;
- `command` is one space-joined string (answers give a string, or a list as a docs example does);
- a probe that is disabled is no probe (its settings no longer matter);
- `api_keys` are a set (sorted);
- containers become a mapping by `region_id`, so they match by region, not by list position.

Only what the input holds is normalised: a key a manifest leaves out stays out (the diff compares
only what a manifest sets). No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import facts

Schema = tuple[str, ...]

# Maps whose keys are the user's (compared whole, key by key), not fields of a schema.
ATOMIC_MAPS = frozenset({("envs",), ("probes", "*", "probe", "http_get", "headers")})


def _logging_default() -> dict[str, Any]:
    return dict.fromkeys(facts.LOGGING_KEYS) | {"enabled": False}


# The API's default at each schematic path (`*`: any probe key, any region).
DEFAULTS: Mapping[Schema, Any] = {
    ("command",): None,
    ("description",): "",
    ("credentials_name",): "",
    ("envs",): {},
    ("timeout",): facts.DEFAULT_TIMEOUT,
    ("api_keys",): [],
    ("auth_enabled",): False,
    ("ingress_opts",): {"disable_response_buffering": False},
    ("ingress_opts", "disable_response_buffering"): False,
    ("logging",): _logging_default(),
    **{("logging", key): value for key, value in _logging_default().items()},
    ("logging", "retention_policy", "period"): None,
    ("probes",): dict.fromkeys(facts.PROBE_KEYS),
    ("probes", "*"): None,
    ("probes", "*", "enabled"): False,
    ("probes", "*", "probe"): None,
    **{("probes", "*", "probe", action): None for action in facts.PROBE_ACTIONS},
    **{("probes", "*", "probe", key): value for key, value in facts.PROBE_TIMINGS.items()},
    **{
        ("probes", "*", "probe", "http_get", key): value
        for key, value in facts.HTTP_GET_DEFAULTS.items()
    },
    ("containers", "*", "scale", "cooldown_period"): facts.DEFAULT_COOLDOWN_PERIOD,
    ("containers", "*", "scale", "polling_interval"): facts.DEFAULT_POLLING_INTERVAL,
    ("containers", "*", "scale", "triggers"): dict.fromkeys(facts.TRIGGER_KEYS),
    **{("containers", "*", "scale", "triggers", key): None for key in facts.TRIGGER_KEYS},
    ("containers", "*", "scale", "triggers", "sqs", "aws_endpoint"): None,
    ("containers", "*", "scale", "triggers", "sqs", "scale_on_delayed"): False,
    ("containers", "*", "scale", "triggers", "sqs", "scale_on_flight"): False,
}

# Objects an answer may leave partly filled: the keys it omits take their defaults.
_FILLED: Mapping[Schema, tuple[str, ...]] = {
    ("ingress_opts",): ("disable_response_buffering",),
    ("logging",): facts.LOGGING_KEYS,
    ("probes",): facts.PROBE_KEYS,
    ("probes", "*", "probe"): (*facts.PROBE_ACTIONS, *facts.PROBE_TIMINGS),
    ("probes", "*", "probe", "http_get"): tuple(facts.HTTP_GET_DEFAULTS),
    ("containers", "*", "scale"): ("cooldown_period", "polling_interval", "triggers"),
    ("containers", "*", "scale", "triggers"): facts.TRIGGER_KEYS,
    ("containers", "*", "scale", "triggers", "sqs"): (
        "aws_endpoint",
        "scale_on_delayed",
        "scale_on_flight",
    ),
}

UNKNOWN: Any = type("Unknown", (), {"__repr__": lambda self: "UNKNOWN"})()


def child(schema: Schema, key: str | int) -> Schema:
    """The schematic path of `key` under `schema` (probe names and regions become `*`)."""
    if schema in (("probes",), ("containers",)):
        return (*schema, "*")
    return (*schema, str(key))


def default_at(schema: Schema) -> Any:
    """The API's default at a schematic path, normalised; UNKNOWN where there is none."""
    value = DEFAULTS.get(schema, UNKNOWN)
    return value if value is UNKNOWN else normal(value, schema)


def normal(value: Any, schema: Schema = (), *, fill: bool = False) -> Any:
    """`value` (found at `schema`) in normal form. With `fill` (an API answer), keys an object
    leaves out take their defaults; without it (a manifest), only what is there is normalised."""
    if value is None:
        value = DEFAULTS.get(schema)
        if value is None:
            return None
    if schema == ("command",):
        return " ".join(value) if isinstance(value, list) else (value or None)
    if schema == ("api_keys",):
        return sorted(value) if isinstance(value, list) else value
    if schema == ("containers",):
        return _containers(value, fill=fill)
    if not isinstance(value, Mapping):
        return value
    if schema in ATOMIC_MAPS:
        return dict(value)
    if len(schema) == 2 and schema[0] == "probes" and value.get("enabled") is False:
        return None  # a disabled probe is no probe
    out = {k: normal(v, child(schema, k), fill=fill) for k, v in value.items()}
    if fill:
        for key in _FILLED.get(schema, ()):
            if out.get(key) is None:
                out[key] = default_at(child(schema, key))
    return out


def _containers(value: Any, *, fill: bool) -> Any:
    if not isinstance(value, list):
        return value
    by_region: dict[int, Any] = {}
    for item in value:
        if isinstance(item, Mapping) and "region_id" in item:
            rest = {k: v for k, v in item.items() if k != "region_id"}
            by_region[item["region_id"]] = normal(rest, ("containers", "*"), fill=fill)
    return dict(sorted(by_region.items()))


def normal_answer(view: Mapping[str, Any]) -> dict[str, Any]:
    """An answer's spec view in normal form, every default filled in."""
    out: dict[str, Any] = {k: normal(v, (k,), fill=True) for k, v in view.items()}
    for key in ("command", "description", "credentials_name", "envs", "timeout", "api_keys"):
        if key not in out:
            out[key] = default_at((key,))
    for key in ("ingress_opts", "logging", "probes"):
        if out.get(key) is None:
            out[key] = default_at((key,))
    if out.get("auth_enabled") is None:
        out["auth_enabled"] = bool(out.get("api_keys"))
    return out


def normal_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """A request body (a manifest's spec, or a record of one) in normal form."""
    return {k: normal(v, (k,)) for k, v in body.items()}
