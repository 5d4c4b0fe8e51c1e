"""What an update sends: ordered PATCH bodies that are right whether the server merges nested
objects or replaces them (API.md: unknown, so a client must be correct under both).

Rules:
- nested objects are sent whole and explicit: every probe (one the manifest does not set goes
  as `{"enabled": false}`, never left out), a probe's unused actions as `null` and its timings
  filled in, every trigger key (`null` for off), every `logging` key, `cooldown_period` and
  `polling_interval` filled in (the update schema does not take `null` for them);
- a field the manifest dropped goes back to the API's default explicitly;
- `api_keys` and `auth_enabled` never travel in one body (the API answers 422). Keys attached
  and `auth_enabled: true` wanted takes two PATCHes in order: `api_keys: []`, then
  `auth_enabled: true`.

`steps()` decides which fields go in which PATCH (no values: plans never carry secrets);
`body()` builds one PATCH from the desired body. Pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import facts

Steps = tuple[tuple[str, ...], ...]

# A field the manifest dropped, as the PATCH that resets it says it.
RESETS: Mapping[str, Any] = {
    "api_keys": [],
    "auth_enabled": False,
    "envs": {},
    "ingress_opts": {"disable_response_buffering": False},
    "logging": {"enabled": False},
    "probes": {},
}


def steps(fields: Sequence[str], desired: Mapping[str, Any], live: Mapping[str, Any]) -> Steps:
    """The fields of each PATCH, in the order they must be sent."""
    first = set(fields)
    second: set[str] = set()
    if "api_keys" in desired:
        if "auth_enabled" in first:  # sending the keys decides auth by itself
            first.discard("auth_enabled")
            first.add("api_keys")
    else:
        if "auth_enabled" in first and live.get("api_keys"):
            first.add("api_keys")  # the flag alone cannot turn auth off while keys are on
        if "api_keys" in first:  # `api_keys: []` clears the keys and turns auth off
            first.discard("auth_enabled")
            if desired.get("auth_enabled") is True:
                second.add("auth_enabled")
    return tuple(tuple(sorted(group)) for group in (first, second) if group)


def body(desired: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """One PATCH body: each field from the desired body in explicit form, or its reset."""
    out: dict[str, Any] = {}
    for field in fields:
        if field in desired:
            out[field] = _explicit(field, desired[field])
        elif field in RESETS:
            out[field] = _explicit(field, RESETS[field])
        else:
            out[field] = None  # `null` resets the rest (command, description, timeout, ...)
    return out


def _explicit(field: str, value: Any) -> Any:
    if value is None:
        return RESETS.get(field)
    if field == "probes":
        return {key: _probe_config(value.get(key)) for key in facts.PROBE_KEYS}
    if field == "logging":
        return {**dict.fromkeys(facts.LOGGING_KEYS), "enabled": False, **_set(value)}
    if field == "ingress_opts":
        return {"disable_response_buffering": False, **_set(value)}
    if field == "containers":
        return [_container(c) for c in value]
    return value


def _set(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}


def _probe_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {"enabled": False}
    out: dict[str, Any] = {"enabled": config["enabled"]}
    probe = config.get("probe")
    if probe is not None:
        out["probe"] = {
            **dict.fromkeys(facts.PROBE_ACTIONS),
            **facts.PROBE_TIMINGS,
            **_set(probe),
        }
        http_get = probe.get("http_get")
        if http_get is not None:
            defaults = {k: v for k, v in facts.HTTP_GET_DEFAULTS.items() if v is not None}
            out["probe"]["http_get"] = {**defaults, **_set(http_get)}
    return out


def _container(container: Mapping[str, Any]) -> dict[str, Any]:
    scale = dict(container["scale"])
    if scale.get("cooldown_period") is None:
        scale["cooldown_period"] = facts.DEFAULT_COOLDOWN_PERIOD
    if scale.get("polling_interval") is None:
        scale["polling_interval"] = facts.DEFAULT_POLLING_INTERVAL
    scale["triggers"] = {**dict.fromkeys(facts.TRIGGER_KEYS), **(scale.get("triggers") or {})}
    return {**container, "scale": scale}
