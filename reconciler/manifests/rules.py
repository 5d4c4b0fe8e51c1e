"""Rules across fields, checked on the raw document too, so they show with every field error.

pydantic runs a model's own `after` validators only once all its fields are valid: a manifest
with a typo elsewhere would hide "api_keys and auth_enabled are mutually exclusive" until the
typo is fixed, and the README promises every error at once. These functions read the plain
values (whatever their other faults) and word each rule exactly as `spec.py` does, so an error
that both report is shown once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..model import SpecPath
from ..spec import Manifest

PROBE_ACTIONS = ("exec", "http_get", "tcp_socket")


def _scale(path: SpecPath, scale: Any) -> list[tuple[SpecPath, str]]:
    if not isinstance(scale, dict):
        return []
    low, high = scale.get("min"), scale.get("max")
    if type(low) is int and type(high) is int and low > high:
        return [(path, f"min ({low}) must not be greater than max ({high})")]
    return []


def _containers(spec: dict[str, Any]) -> list[tuple[SpecPath, str]]:
    containers = spec.get("containers")
    if not isinstance(containers, list):
        return []
    found: list[tuple[SpecPath, str]] = []
    regions = []
    for i, container in enumerate(containers):
        if isinstance(container, dict):
            found += _scale(("spec", "containers", i, "scale"), container.get("scale"))
            if type(container.get("region_id")) is int:
                regions.append(container["region_id"])
    twice = sorted({r for r in regions if regions.count(r) > 1})
    if twice:
        found.append(
            (
                ("spec", "containers"),
                f"each region may appear once in containers; region {twice[0]} appears twice",
            )
        )
    return found


def _probes(spec: dict[str, Any]) -> list[tuple[SpecPath, str]]:
    probes = spec.get("probes")
    if not isinstance(probes, dict):
        return []
    found: list[tuple[SpecPath, str]] = []
    for name, config in probes.items():
        probe = config.get("probe") if isinstance(config, dict) else None
        if not isinstance(probe, dict):
            continue
        actions = [k for k in PROBE_ACTIONS if probe.get(k) is not None]
        if len(actions) > 1:
            found.append(
                (
                    ("spec", "probes", name, "probe"),
                    "a probe has at most one of exec, http_get, tcp_socket; "
                    f"got {', '.join(actions)}",
                )
            )
    return found


def rule_errors(model: type[BaseModel], body: Any) -> list[tuple[SpecPath, str]]:
    """The cross-field rules a deployment manifest breaks, as (path, message)."""
    if model is not Manifest or not isinstance(body, dict):
        return []
    spec = body.get("spec")
    if not isinstance(spec, dict):
        return []
    found = _containers(spec) + _probes(spec)
    if "api_keys" in spec and "auth_enabled" in spec:
        found.append(
            (("spec",), "api_keys and auth_enabled are mutually exclusive: set one of them")
        )
    return found
