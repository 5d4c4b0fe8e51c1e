"""A live answer as values: the answer itself and its spec view (what the diff compares).

`model.LiveDeployment` keeps one of these, or the answer's JSON text decoded into one on use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

RESPONSE_ONLY_FIELDS = frozenset(
    {"name", "project_id", "status", "address", "created_at", "object_references"}
)
CONTAINER_RUNTIME_FIELDS = frozenset({"address", "deploy_status", "error_message"})


def spec_view(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    """The answer without its response-only fields (sharing the answer's values)."""
    view = {k: v for k, v in answer.items() if k not in RESPONSE_ONLY_FIELDS}
    containers = answer.get("containers") or []
    view["containers"] = [
        {k: v for k, v in c.items() if k not in CONTAINER_RUNTIME_FIELDS} for c in containers
    ]
    return MappingProxyType(view)


@dataclass(frozen=True)
class Decoded:
    """A live answer as values: the answer itself and its spec view."""

    raw: Mapping[str, Any]
    view: Mapping[str, Any]

    @classmethod
    def of(cls, answer: Mapping[str, Any]) -> Decoded:
        # the answer itself, not a copy: it is the caller's fresh parse, never changed after
        raw = MappingProxyType(answer if isinstance(answer, dict) else dict(answer))
        return cls(raw, spec_view(answer))


NOTHING = Decoded(MappingProxyType({}), MappingProxyType({}))


def managed_by(answer: Mapping[str, Any]) -> str | None:
    """Who manages the deployment, from `object_references` (None: nobody)."""
    references = answer.get("object_references") or []
    names = [
        f"{r.get('kind', 'object')} {r.get('name', '?')}"
        for r in references
        if isinstance(r, Mapping)
    ]
    return ", ".join(names) or None
