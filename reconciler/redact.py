"""Sensitive values taken out of text that came back from the API.

An API error may echo what it was sent (`Flavor 'x' does not exist`), and what it was sent may be
a secret: an interpolated `${VAR}`, an `envs` value, a write-only field of a secret kind. Every
message from the API (error bodies, task errors) passes through a `Redactor` holding those
values before it is logged, shown, journaled or recorded; each becomes `(sensitive)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .kinds import DesiredObject
from .model import DesiredDeployment, DesiredState, SpecPath

SENSITIVE = "(sensitive)"
MIN_LENGTH = 4  # shorter values (`1`, `on`) would blank out ordinary words, and guess easily


class Redactor:
    """Replaces every known sensitive value in a text; starts empty, learns with `add`."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        new = {v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH}
        if new - self._values:
            self._values |= new
            ordered = sorted(self._values, key=len, reverse=True)  # longest first
            self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(SENSITIVE, text)

    def __len__(self) -> int:
        return len(self._values)


def _at(value: Any, path: SpecPath) -> Any:
    for part in path:
        if isinstance(value, dict) and part in value:  # noqa: SIM114 (mypy needs two)
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            value = value[part]
        else:
            return None
    return value


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)


def _body(spec: Any) -> Any:
    if hasattr(spec, "body"):
        return spec.body()
    if hasattr(spec, "model_dump"):
        return spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return spec


def sensitive_values(desired: DesiredState) -> set[str]:
    """Every sensitive string of the desired state (deployments and the other kinds)."""
    found: set[str] = set()
    items: list[DesiredDeployment | DesiredObject] = [*desired.deployments, *desired.objects]
    for item in items:
        body = item.body() if isinstance(item, DesiredDeployment) else _body(item.spec)
        for path in item.sensitive_paths:
            found.update(_leaves(_at(body, path)))
        raw = (
            body.get("envs")
            if isinstance(item, DesiredDeployment)
            else getattr(item.spec, "envs", None)
        )
        if isinstance(raw, dict):  # envs values are sensitive as a whole map
            found.update(v for v in raw.values() if isinstance(v, str))
    return found


def _plain(value: Any) -> Any:
    """`value` as plain dicts, lists and scalars (a live view may hold read-only mappings)."""
    return json.loads(
        json.dumps(value, default=lambda o: dict(o) if isinstance(o, Mapping) else str(o))
    )


def _mapped(value: Any, redact: Redactor) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _mapped(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_mapped(v, redact) for v in value]
    return value


def live_redactor(view: Any, sensitive_paths: Iterable[SpecPath]) -> Redactor:
    """What the API holds of the secrets it was sent (the live values at a record's sensitive
    paths, and every `envs` value), to take out of whatever it says about that deployment."""
    view = _plain(view)  # plain dicts and lists, read-only or not
    found: set[str] = set()
    for path in sensitive_paths:
        found.update(_leaves(_at(view, path)))
    envs = view.get("envs") if isinstance(view, dict) else None
    if isinstance(envs, dict):
        found.update(v for v in envs.values() if isinstance(v, str))
    return Redactor(found)


def shown_live(view: Any, redact: Redactor) -> Any:
    """A live spec view fit to print: every `envs` value and every secret it holds hidden."""
    shown = _mapped(_plain(view), redact)
    if isinstance(shown, dict) and isinstance(shown.get("envs"), dict):
        shown["envs"] = dict.fromkeys(shown["envs"], SENSITIVE)
    return shown
