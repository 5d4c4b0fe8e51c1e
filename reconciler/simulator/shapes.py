"""How the API answers: the response shape, which differs from the request shape.

The differences are the point of the simulator: the client side must cope with them without
seeing a change. A deployment comes back with `command` as one space-joined string,
`credentials_name` and `description` as `""` when unset, server defaults filled in for `envs`,
`ingress_opts`, `logging`, `probes`, `timeout`, `cooldown_period` and `polling_interval`, all six
trigger keys (null when unset), probes with every numeric field filled, and response-only fields
(`status`, `address`, `created_at`, `project_id`, `object_references`, per-container
`address` / `deploy_status` / `error_message`). Server defaults come from `reconciler.facts`, the
numbers the diff uses. With `sparse` (`--sparse-answers`), unset fields come back `null` instead,
wherever the SDK allows it, and `command` as a list.
"""

from __future__ import annotations

from typing import Any

from .. import facts

DEFAULT_TIMEOUT = facts.DEFAULT_TIMEOUT
DEFAULT_COOLDOWN_PERIOD = facts.DEFAULT_COOLDOWN_PERIOD
DEFAULT_POLLING_INTERVAL = facts.DEFAULT_POLLING_INTERVAL
TRIGGER_KEYS = facts.TRIGGER_KEYS
PROBE_KEYS = facts.PROBE_KEYS
PROBE_DEFAULTS = dict(facts.PROBE_TIMINGS)


def _sqs(trigger: dict[str, Any]) -> dict[str, Any]:
    return {"aws_endpoint": None, "scale_on_delayed": False, "scale_on_flight": False, **trigger}


def scale_view(scale: dict[str, Any], sparse: bool = False) -> dict[str, Any]:
    triggers = scale.get("triggers") or {}
    filled = {key: triggers.get(key) for key in TRIGGER_KEYS}
    if filled["sqs"] is not None:
        filled["sqs"] = _sqs(filled["sqs"])
    cooldown = scale.get("cooldown_period")
    polling = scale.get("polling_interval")
    if sparse:  # unset stays null, unset triggers are left out
        return {
            "min": scale["min"],
            "max": scale["max"],
            "cooldown_period": cooldown,
            "polling_interval": polling,
            "triggers": {k: v for k, v in filled.items() if v is not None},
        }
    return {
        "min": scale["min"],
        "max": scale["max"],
        "cooldown_period": DEFAULT_COOLDOWN_PERIOD if cooldown is None else cooldown,
        "polling_interval": DEFAULT_POLLING_INTERVAL if polling is None else polling,
        "triggers": filled,
    }


def _probe_view(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if config is None:
        return None
    probe = config.get("probe")
    if probe is None:
        return {"enabled": config["enabled"], "probe": None}
    http_get = probe.get("http_get")
    if http_get is not None:
        http_get = {**facts.HTTP_GET_DEFAULTS, **http_get}
    return {
        "enabled": config["enabled"],
        "probe": {
            **PROBE_DEFAULTS,
            **{k: v for k, v in probe.items() if k in PROBE_DEFAULTS},
            "exec": probe.get("exec"),
            "http_get": http_get,
            "tcp_socket": probe.get("tcp_socket"),
        },
    }


def probes_view(probes: dict[str, Any] | None) -> dict[str, Any]:
    probes = probes or {}
    return {key: _probe_view(probes.get(key)) for key in PROBE_KEYS}


def logging_view(logging: dict[str, Any] | None) -> dict[str, Any]:
    logging = logging or {}
    return {
        "enabled": logging.get("enabled", False),
        "destination_region_id": logging.get("destination_region_id"),
        "topic_name": logging.get("topic_name"),
        "retention_policy": logging.get("retention_policy"),
    }


def _spec_view(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec part of the answer, every server default filled in."""
    command = spec.get("command")
    api_keys = list(spec.get("api_keys") or [])
    timeout = spec.get("timeout")
    return {
        "command": " ".join(command) if command else None,
        "credentials_name": spec.get("credentials_name") or "",
        "description": spec.get("description") or "",
        "envs": dict(spec.get("envs") or {}),
        "ingress_opts": {
            "disable_response_buffering": False,
            **(spec.get("ingress_opts") or {}),
        },
        "logging": logging_view(spec.get("logging")),
        "probes": probes_view(spec.get("probes")),
        "timeout": DEFAULT_TIMEOUT if timeout is None else timeout,
        "api_keys": api_keys,
        "auth_enabled": bool(api_keys) or bool(spec.get("auth_enabled", False)),
    }


def _sparse_spec_view(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec part of the answer with `null` wherever the SDK allows one for an unset field,
    and `command` as a list (as a docs example shows it)."""
    api_keys = list(spec.get("api_keys") or [])
    auth = bool(api_keys) or bool(spec.get("auth_enabled", False))
    probes = spec.get("probes")
    return {
        "command": list(spec["command"]) if spec.get("command") else None,
        "credentials_name": spec.get("credentials_name") or None,
        "description": spec.get("description") or None,
        "envs": dict(spec["envs"]) if spec.get("envs") else None,
        "ingress_opts": dict(spec["ingress_opts"]) if spec.get("ingress_opts") else None,
        "logging": logging_view(spec["logging"]) if spec.get("logging") else None,
        "probes": probes_view(probes) if probes and any(probes.values()) else None,
        "timeout": spec.get("timeout"),
        "api_keys": api_keys or None,
        "auth_enabled": True if auth else None,
    }


def deployment_view(
    project_id: int,
    name: str,
    spec: dict[str, Any],
    *,
    status: str,
    created_at: str,
    address: str | None,
    containers: list[dict[str, Any]],
    object_references: list[dict[str, str]] | None = None,
    sparse: bool = False,
) -> dict[str, Any]:
    """The API's answer for one deployment. `containers` carries the per-container runtime part
    (`address`, `deploy_status`, `error_message`) in the order of `spec["containers"]`.
    `object_references` names the parent that manages it (`[]` for a standalone deployment);
    `sparse` answers `null` wherever the SDK allows (the `--sparse-answers` mode)."""
    view = _sparse_spec_view(spec) if sparse else _spec_view(spec)
    references = list(object_references or [])
    return {
        "name": name,
        "project_id": project_id,
        "image": spec["image"],
        "listening_port": spec["listening_port"],
        "flavor_name": spec["flavor_name"],
        **view,
        "containers": [
            {
                "region_id": c["region_id"],
                "scale": scale_view(c["scale"], sparse),
                **runtime,
                **({"address": None} if sparse else {}),
            }
            for c, runtime in zip(spec["containers"], containers, strict=True)
        ],
        "status": status,
        "address": None if sparse else address,
        "created_at": created_at,
        "object_references": None if sparse and not references else references,
    }


def error_body(
    exception_class: str,
    message: str,
    request_id: str,
    invalid_fields: dict[str, list[str]] | None = None,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Gcore's error body."""
    body: dict[str, Any] = {
        "exception_class": exception_class,
        "message": message,
        "request_id": request_id,
    }
    if invalid_fields:
        body["invalid_fields"] = invalid_fields
    if info:
        body["info"] = info
    return body
