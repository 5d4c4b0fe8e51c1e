"""The three-way diff of one deployment: desired (manifest), recorded (last applied), live (API).

Like `kubectl apply`, a field is compared only if the manifest sets it, or if the last-applied
record set it and the manifest no longer does (then it goes back to the API's default). Fields
the server fills in by itself never show up. Plain recursion was chosen over deepdiff: the rules
are per field (defaults, `command` as one string in answers, containers matched by `region_id`,
maps like `envs` compared whole), and a hand-written walk states them more plainly than deepdiff
options and post-processing would.

Rules the walk applies:
- the answer gives `command` as one space-joined string: a manifest's list is joined to compare;
- a `null` in a manifest means "the API's default": compared against that default where it is
  known (`""` for `description`, 120 for `timeout`, all-null `triggers`, ...), not compared where
  it is not (`cooldown_period`, probe timings), so an unknown server default never shows a diff;
- containers are matched by `region_id`; paths read `containers[region_id=1].scale.max`;
- `envs` and http headers are compared as whole maps, reported key by key;
- a sensitive value (every `envs` value, anything interpolated) compares by value but is shown as
  `(sensitive)`; in a record it is a salted hash, compared by hashing the other side.

No I/O here: values in, values out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .model import SpecPath

SENSITIVE = "(sensitive)"
HASH_PREFIX = "hmac-sha256:"
_HASH = re.compile(re.escape(HASH_PREFIX) + "[0-9a-f]{64}")  # what statekey records


PROBES = ("liveness_probe", "readiness_probe", "startup_probe")
TRIGGERS = ("cpu", "memory", "gpu_memory", "gpu_utilization", "http", "sqs")
ATOMIC_MAPS = frozenset({("envs",), ("probes", "*", "probe", "http_get", "headers")})
# Fields whose reset is not `null` in a PATCH.
RESET_VALUES: Mapping[str, Any] = {"api_keys": [], "auth_enabled": False}


def _is_hash(value: Any) -> bool:
    """A recorded secret's hash (prefix and 64 hex digits), not a value that starts like one."""
    return isinstance(value, str) and _HASH.fullmatch(value) is not None


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()
Hasher = Callable[[Any], str]


def _defaults() -> dict[tuple[str, ...], Any]:
    """The API's default for each field where it is known (schematic paths, `*` for indices)."""
    known: dict[tuple[str, ...], Any] = {
        ("command",): None,
        ("description",): "",
        ("credentials_name",): "",
        ("envs",): {},
        ("timeout",): 120,
        ("api_keys",): [],
        ("auth_enabled",): False,
        ("ingress_opts",): {"disable_response_buffering": False},
        ("ingress_opts", "disable_response_buffering"): False,
        ("logging",): {"enabled": False},
        ("logging", "enabled"): False,
        ("logging", "destination_region_id"): None,
        ("logging", "topic_name"): None,
        ("logging", "retention_policy"): None,
        ("logging", "retention_policy", "period"): None,
        ("probes",): dict.fromkeys(PROBES),
        ("containers", "*", "scale", "triggers"): dict.fromkeys(TRIGGERS),
        ("containers", "*", "scale", "triggers", "sqs", "aws_endpoint"): None,
        ("containers", "*", "scale", "triggers", "sqs", "scale_on_delayed"): False,
        ("containers", "*", "scale", "triggers", "sqs", "scale_on_flight"): False,
        ("probes", "*", "probe", "http_get", "host"): None,
        ("probes", "*", "probe", "http_get", "headers"): {},
    }
    for trigger in TRIGGERS:
        known[("containers", "*", "scale", "triggers", trigger)] = None
    known[("probes", "*")] = None
    known[("probes", "*", "probe")] = None
    for action in ("exec", "http_get", "tcp_socket"):
        known[("probes", "*", "probe", action)] = None
    return known


DEFAULTS = _defaults()


@dataclass(frozen=True)
class FieldChange:
    """One field that differs. Sensitive values are already replaced by `(sensitive)`."""

    path: str
    before: Any
    after: Any
    sensitive: bool = False


@dataclass(frozen=True)
class _At:
    """Where the walk is: for display, in the desired body, in the record, and schematically."""

    display: tuple[str, ...]
    body: SpecPath
    record: SpecPath
    schema: tuple[str, ...]

    def child(self, key: str) -> _At:
        return _At(
            (*self.display, key),
            (*self.body, key),
            (*self.record, key),
            (
                *self.schema,
                "*" if self.schema[:1] == ("probes",) and len(self.schema) == 1 else key,
            ),
        )

    def container(self, region: int, body_index: int, record_index: int) -> _At:
        return _At(
            (*self.display, f"[region_id={region}]"),
            (*self.body, body_index),
            (*self.record, record_index),
            (*self.schema, "*"),
        )

    @property
    def text(self) -> str:
        out = ""
        for part in self.display:
            out += part if part.startswith("[") else (f".{part}" if out else part)
        return out


def _overlaps(path: SpecPath, paths: Iterable[SpecPath]) -> bool:
    return any(p[: len(path)] == path or path[: len(p)] == p for p in paths)


def _by_region(containers: Any) -> dict[int, tuple[int, Mapping[str, Any]]]:
    if not isinstance(containers, list):
        return {}
    return {
        c["region_id"]: (i, c)
        for i, c in enumerate(containers)
        if isinstance(c, Mapping) and "region_id" in c
    }


class _Diff:
    def __init__(
        self,
        sensitive: frozenset[SpecPath],
        record_sensitive: frozenset[SpecPath],
        hasher: Hasher | None,
    ) -> None:
        self.sensitive = sensitive
        self.record_sensitive = record_sensitive
        self.hasher = hasher
        self.changes: list[FieldChange] = []

    def is_sensitive(self, at: _At) -> bool:
        return (
            at.body[:1] == ("envs",)
            or _overlaps(at.body, self.sensitive)
            or _overlaps(at.record, self.record_sensitive)
        )

    def add(self, at: _At, before: Any, after: Any) -> None:
        if self.is_sensitive(at):
            before = None if before is None else SENSITIVE
            after = None if after is None else SENSITIVE
            self.changes.append(FieldChange(at.text, before, after, True))
        else:
            self.changes.append(FieldChange(at.text, before, after, False))

    # -- desired against live --------------------------------------------------------------

    def compare(self, expected: Any, live: Any, at: _At) -> None:
        if expected is None:
            expected = DEFAULTS.get(at.schema, UNKNOWN)
            if expected is UNKNOWN:
                return
        if at.schema == ("command",):
            wanted = " ".join(expected) if isinstance(expected, list) else expected
            if not self.same(wanted, live):
                self.add(at, live, wanted)
            return
        if at.schema in ATOMIC_MAPS:
            self.compare_map(expected, live, at)
        elif at.schema == ("containers",):
            self.compare_containers(expected, live, at)
        elif isinstance(expected, Mapping):
            live_map = live if isinstance(live, Mapping) else {}
            for key, value in expected.items():
                self.compare(value, live_map.get(key), at.child(key))
        elif not self.same(expected, live):
            self.add(at, live, expected)

    def compare_map(self, expected: Mapping[str, Any], live: Any, at: _At) -> None:
        live_map = live if isinstance(live, Mapping) else {}
        for key in sorted(set(expected) | set(live_map)):
            if not self.same(expected.get(key), live_map.get(key)):
                self.add(at.child(key), live_map.get(key), expected.get(key))

    def same(self, expected: Any, live: Any) -> bool:
        """Equal, where `expected` may be a recorded secret's hash."""
        if _is_hash(expected) and self.hasher:
            return bool(self.hasher(live) == expected)
        return bool(expected == live)

    def compare_containers(self, expected: list[Any], live: Any, at: _At) -> None:
        wanted = _by_region(expected)
        found = _by_region(live)
        for region in sorted(set(wanted) | set(found)):
            where = at.container(region, wanted.get(region, (-1, {}))[0], -1)
            if region not in found:
                self.add(where, None, dict(wanted[region][1]))
            elif region not in wanted:
                self.add(where, dict(found[region][1]), None)
            else:
                self.compare(
                    wanted[region][1].get("scale"),
                    found[region][1].get("scale"),
                    where.child("scale"),
                )

    # -- fields the record set and the manifest no longer does -----------------------------

    def removed(
        self, last: Mapping[str, Any], desired: Mapping[str, Any], live: Any, at: _At
    ) -> None:
        live_map = live if isinstance(live, Mapping) else {}
        for key, last_value in last.items():
            where = at.child(key)
            if key not in desired:
                self.reset(last_value, live_map.get(key), where)
            elif where.schema == ("containers",):
                self.removed_containers(last_value, desired[key], live_map.get(key), where)
            elif (
                isinstance(last_value, Mapping)
                and isinstance(desired[key], Mapping)
                and where.schema not in ATOMIC_MAPS
            ):
                self.removed(last_value, desired[key], live_map.get(key), where)

    def removed_containers(self, last: Any, desired: Any, live: Any, at: _At) -> None:
        before, wanted, found = _by_region(last), _by_region(desired), _by_region(live)
        for region in sorted(set(before) & set(wanted)):
            where = at.container(region, wanted[region][0], before[region][0])
            last_scale = before[region][1].get("scale")
            want_scale = wanted[region][1].get("scale")
            live_scale = found.get(region, (0, {}))[1].get("scale")
            if isinstance(last_scale, Mapping) and isinstance(want_scale, Mapping):
                self.removed(last_scale, want_scale, live_scale, where.child("scale"))

    def reset(self, last_value: Any, live_value: Any, at: _At) -> None:
        """The manifest dropped a field it used to set: back to the API's default."""
        default = DEFAULTS.get(at.schema, UNKNOWN)
        if default is not UNKNOWN:
            self.compare(default, live_value, at)
        elif self.record_matches(last_value, live_value, at):
            # default unknown: reset only what still holds the value we set
            self.add(at, live_value, None)

    def record_matches(self, last_value: Any, live_value: Any, at: _At) -> bool:
        if _is_hash(last_value):
            return self.hasher is not None and bool(self.hasher(live_value) == last_value)
        if at.schema == ("command",) and isinstance(last_value, list):
            return bool(" ".join(last_value) == live_value)
        return bool(last_value == live_value)


def diff(
    desired: Mapping[str, Any],
    live: Mapping[str, Any],
    *,
    sensitive: frozenset[SpecPath] = frozenset(),
    last_applied: Mapping[str, Any] | None = None,
    record_sensitive: frozenset[SpecPath] = frozenset(),
    hasher: Hasher | None = None,
) -> list[FieldChange]:
    """The fields in which `live` (an answer's spec view) differs from `desired` (a request body).

    `last_applied` (with its own sensitive paths, hashed with `hasher`) adds the fields the
    manifest used to set and no longer does.
    """
    walk = _Diff(sensitive, record_sensitive, hasher)
    root = _At((), (), (), ())
    walk.compare(dict(desired), live, root)
    if last_applied:
        walk.removed(last_applied, desired, live, root)
    return walk.changes


def creation(
    desired: Mapping[str, Any], *, sensitive: frozenset[SpecPath] = frozenset()
) -> list[FieldChange]:
    """Every field a create sets, as changes from nothing."""
    walk = _Diff(sensitive, frozenset(), None)

    def visit(value: Any, at: _At) -> None:
        if at.schema == ("containers",) and isinstance(value, list):
            for region, (index, container) in _by_region(value).items():
                visit(container.get("scale"), at.container(region, index, -1).child("scale"))
        elif isinstance(value, Mapping) and value and at.schema not in ATOMIC_MAPS:
            for key, item in value.items():
                visit(item, at.child(key))
        elif isinstance(value, Mapping) and at.schema in ATOMIC_MAPS:
            for key, item in sorted(value.items()):
                walk.add(at.child(key), None, item)
        else:
            walk.add(at, None, value)

    visit(dict(desired), _At((), (), (), ()))
    return walk.changes


def hashed(
    body: Mapping[str, Any], sensitive: Iterable[SpecPath], hasher: Hasher
) -> dict[str, Any]:
    """`body` with every value at a sensitive path (and every `envs` value) replaced by its hash."""
    paths = {tuple(p) for p in sensitive}
    paths |= {("envs", k) for k in (body.get("envs") or {})}

    def walk(value: Any, path: SpecPath) -> Any:
        if path in paths:
            return hasher(value)
        if isinstance(value, Mapping):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        return value

    result: dict[str, Any] = walk(dict(body), ())
    command = body.get("command")
    if isinstance(command, list) and any(p[:1] == ("command",) for p in paths):
        # the API answers `command` as one string: hash it whole, so it compares with that
        result["command"] = hasher(" ".join(command))
    return result


def patch_fields(changes: Iterable[FieldChange]) -> tuple[str, ...]:
    """The top-level fields a PATCH must send to make these changes."""
    fields = set()
    for change in changes:
        head = change.path.split(".", 1)[0].split("[", 1)[0]
        fields.add(head)
    return tuple(sorted(fields))
