"""The three-way diff of one deployment: desired (manifest), recorded (last applied), live (API).

Like `kubectl apply`, a field is compared only if the manifest sets it, or if the last-applied
record set it and the manifest no longer does (then it goes back to the API's default). Fields
the server fills in by itself never show up.

First a shortcut (`reconciler.insync`): when the answer already shows every value the manifest
sets, as is, and the record sets nothing the manifest dropped, there is no change. Otherwise, in
three steps:
1. normal form (`reconciler.normal`): both sides in one shape, `null` as the API's default,
   `command` joined, containers keyed by `region_id`, `api_keys` as a set, a disabled probe as
   none; fields the record set and the manifest dropped are added at their defaults;
2. projection: the answer cut down to what the manifest sets (maps like `envs` stay whole);
   a recorded secret is a salted hash, so the answer's value is hashed to compare;
3. a fast equality check; only what is still unequal goes to deepdiff, whose report becomes
   `FieldChange`s with paths like `containers[region_id=1].scale.max` (lists change whole).

The auth rule: when the manifest sets `api_keys`, auth is on exactly when it lists keys; when
it does not, `auth_enabled` is not compared while keys are attached (the server reports it
true). A sensitive value (every `envs` value, anything interpolated) compares by value but shows
as `(sensitive)`. No I/O here: values in, values out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .insync import in_sync, is_mapping
from .model import SpecPath
from .normal import ATOMIC_MAPS, UNKNOWN, Schema, child, default_at, normal_answer, normal_body

SENSITIVE = "(sensitive)"
HASH_PREFIX = "hmac-sha256:"
_HASH = re.compile(re.escape(HASH_PREFIX) + "[0-9a-f]{64}")  # what statekey records
# Fields whose reset is not `null` in a PATCH.
RESET_VALUES: Mapping[str, Any] = {"api_keys": [], "auth_enabled": False}

# A probe's settings cannot be cleared by an update (not nullable there): dropping them from the
# manifest leaves whatever the server holds, so the diff does not ask for it.
UNRESETTABLE = frozenset({("probes", "*", "probe")})

Hasher = Callable[[Any], str]
Path = tuple[str | int, ...]
_MISSING: Any = object()


@dataclass(frozen=True)
class FieldChange:
    """One field that differs. Sensitive values are already replaced by `(sensitive)`."""

    path: str
    before: Any
    after: Any
    sensitive: bool = False


def _is_hash(value: Any) -> bool:
    """A recorded secret's hash (prefix and 64 hex digits), not a value that starts like one."""
    return isinstance(value, str) and _HASH.fullmatch(value) is not None


def _overlaps(path: SpecPath, paths: Iterable[SpecPath]) -> bool:
    return any(p[: len(path)] == path or path[: len(p)] == p for p in paths)


def _schema_of(path: Path) -> Schema:
    schema: Schema = ()
    for key in path:
        schema = child(schema, key)
    return schema


# -- normal form with the three-way resets --------------------------------------------------------


def _add_resets(want: dict[str, Any], last: Mapping[str, Any], schema: Schema) -> None:
    """Put every field `last` set and `want` lacks back at its default, in place."""
    for key, last_value in last.items():
        here = (*schema, "*") if schema == ("containers",) else child(schema, key)
        if key not in want:
            if schema == ("containers",):
                continue  # a region the manifest dropped is a removal already
            default = UNKNOWN if here in UNRESETTABLE else default_at(here)
            if default is not UNKNOWN:
                want[key] = default
        elif (
            isinstance(last_value, Mapping)
            and isinstance(want[key], dict)
            and here not in ATOMIC_MAPS
        ):
            _add_resets(want[key], last_value, here)


def _wanted(
    desired: Mapping[str, Any], last_applied: Mapping[str, Any] | None, live: Mapping[str, Any]
) -> dict[str, Any]:
    want = normal_body(desired)
    if last_applied:
        _add_resets(want, normal_body(last_applied), ())
    if "api_keys" in desired:
        # keys decide: the server reports auth on exactly when keys are attached
        want["auth_enabled"] = bool(desired["api_keys"])
    elif live.get("api_keys"):
        want.pop("auth_enabled", None)  # keys attached that the manifest does not manage
    return want


# -- projection ----------------------------------------------------------------------------------


def _leaf(want: Any, live: Any, schema: Schema, hasher: Hasher | None) -> Any:
    if hasher is None:
        return live
    if _is_hash(want):
        return hasher(live)
    if isinstance(want, list) and isinstance(live, list) and any(map(_is_hash, want)):
        hashed_items = [hasher(item) for item in live]
        return sorted(hashed_items) if schema == ("api_keys",) else hashed_items
    return live


def _project(want: Any, live: Any, schema: Schema, hasher: Hasher | None) -> Any:
    """`live` cut down to the shape of `want`."""
    if not isinstance(want, Mapping) or not isinstance(live, Mapping):
        return _leaf(want, live, schema, hasher)
    if schema in ATOMIC_MAPS:
        return {k: _leaf(want.get(k), v, (*schema, k), hasher) for k, v in live.items()}
    if schema == ("containers",):
        here = (*schema, "*")
        return {r: _project(want[r], v, here, hasher) if r in want else v for r, v in live.items()}
    return {
        k: _project(v, live.get(k), child(schema, k), hasher) for k, v in want.items() if k in live
    } | {k: None for k in want if k not in live and want[k] is None}


# -- from deepdiff's report to field changes ------------------------------------------------------


def _get(value: Any, path: Path) -> Any:
    for key in path:
        if isinstance(value, Mapping) and key in value:
            value = value[key]
        else:
            return _MISSING
    return value


def _whole_lists(path: Path, seen: Any, want: Any) -> Path:
    """`path` cut at the first list: a list changes as a whole."""
    out: list[str | int] = []
    for key in path:
        if isinstance(seen, list) or isinstance(want, list):
            break
        out.append(key)
        seen = seen.get(key) if isinstance(seen, Mapping) else None
        want = want.get(key) if isinstance(want, Mapping) else None
    return tuple(out)


def _text(path: Path) -> str:
    out = ""
    for i, key in enumerate(path):
        if i and path[i - 1] == "containers":
            out += f"[region_id={key}]"
        else:
            out += f".{key}" if out else str(key)
    return out


def _order(path: Path, want: Any) -> tuple[tuple[int, str], ...]:
    """Sort key: the manifest's own order, regions by number, map keys by name."""
    key: list[tuple[int, str]] = []
    schema: Schema = ()
    for part in path:
        if schema == ("containers",):
            key.append((int(part), ""))
        elif schema in ATOMIC_MAPS:
            key.append((0, str(part)))
        elif isinstance(want, Mapping) and part in want:
            key.append((list(want).index(part), ""))
        else:
            key.append((1 << 30, str(part)))
        want = want.get(part) if isinstance(want, Mapping) else None
        schema = child(schema, part)
    return tuple(key)


class _Sensitivity:
    """Which changed paths are sensitive: container paths are mapped back to list indices."""

    def __init__(
        self,
        desired: Mapping[str, Any],
        last: Mapping[str, Any] | None,
        sensitive: frozenset[SpecPath],
        record_sensitive: frozenset[SpecPath],
    ) -> None:
        self.sensitive = sensitive
        self.record_sensitive = record_sensitive
        self.desired_index = _region_index(desired.get("containers"))
        self.record_index = _region_index((last or {}).get("containers"))

    def __call__(self, path: Path) -> bool:
        if path[:1] == ("envs",):
            return True
        body, record = list(path), list(path)
        if len(path) > 1 and path[0] == "containers":
            body[1] = self.desired_index.get(path[1], -1)
            record[1] = self.record_index.get(path[1], -1)
        return _overlaps(tuple(body), self.sensitive) or _overlaps(
            tuple(record), self.record_sensitive
        )


def _region_index(containers: Any) -> dict[Any, int]:
    if not isinstance(containers, list):
        return {}
    return {c.get("region_id"): i for i, c in enumerate(containers) if isinstance(c, Mapping)}


def _shown(path: Path, value: Any) -> Any:
    if value is _MISSING:
        return None
    if len(path) == 2 and path[0] == "containers" and isinstance(value, Mapping):
        return {"region_id": path[1], **value}
    return value


def _change(path: Path, before: Any, after: Any, sensitive: bool) -> FieldChange:
    before, after = _shown(path, before), _shown(path, after)
    if sensitive:
        before = None if before is None else SENSITIVE
        after = None if after is None else SENSITIVE
    return FieldChange(_text(path), before, after, sensitive)


def _changes(seen: Any, want: Any, is_sensitive: _Sensitivity) -> list[FieldChange]:
    from deepdiff import DeepDiff  # only a deployment that differs needs it

    report = DeepDiff(seen, want, view="tree", verbose_level=2, threshold_to_diff_deeper=0)
    paths = set()
    for levels in report.values():
        for level in levels:
            paths.add(_whole_lists(tuple(level.path(output_format="list")), seen, want))
    changes = []
    for path in sorted(paths, key=lambda p: _order(p, want)):
        changes.append(_change(path, _get(seen, path), _get(want, path), is_sensitive(path)))
    return changes


def diff(
    desired: Mapping[str, Any],
    live: Mapping[str, Any],
    *,
    sensitive: frozenset[SpecPath] = frozenset(),
    last_applied: Mapping[str, Any] | None = None,
    record_sensitive: frozenset[SpecPath] = frozenset(),
    hasher: Hasher | None = None,
    recorded_as_is: bool = False,
) -> list[FieldChange]:
    """The fields in which `live` (an answer's spec view) differs from `desired` (a request body).

    `last_applied` (with its own sensitive paths, hashed with `hasher`) adds the fields the
    manifest used to set and no longer does. `recorded_as_is` says that `last_applied` is this
    very manifest, hashed (so it sets no field the manifest dropped): the caller knows it.
    """
    if in_sync(desired, live, None if recorded_as_is else last_applied):
        return []  # the answer shows every value the manifest sets, as is (`reconciler.insync`)
    return full_diff(
        desired,
        live,
        sensitive=sensitive,
        last_applied=last_applied,
        record_sensitive=record_sensitive,
        hasher=hasher,
    )


def full_diff(
    desired: Mapping[str, Any],
    live: Mapping[str, Any],
    *,
    sensitive: frozenset[SpecPath] = frozenset(),
    last_applied: Mapping[str, Any] | None = None,
    record_sensitive: frozenset[SpecPath] = frozenset(),
    hasher: Hasher | None = None,
) -> list[FieldChange]:
    """`diff` without the shortcut: both sides in normal form, projected, compared."""
    found = normal_answer(live)
    want = _wanted(desired, last_applied, found)
    seen = _project(want, found, (), hasher)
    if seen == want:
        return []
    return _changes(seen, want, _Sensitivity(desired, last_applied, sensitive, record_sensitive))


def creation(
    desired: Mapping[str, Any], *, sensitive: frozenset[SpecPath] = frozenset()
) -> list[FieldChange]:
    """Every field a create sets, as changes from nothing."""
    is_sensitive = _Sensitivity(desired, None, sensitive, frozenset())
    changes: list[FieldChange] = []

    def visit(value: Any, path: Path) -> None:
        schema = _schema_of(path)
        if isinstance(value, Mapping) and value and schema in ATOMIC_MAPS:
            for key, item in sorted(value.items()):
                visit(item, (*path, key))
        elif isinstance(value, Mapping) and value and schema not in ATOMIC_MAPS:
            for key, item in value.items():
                visit(item, (*path, key))
        else:
            changes.append(_change(path, None, value, is_sensitive(path)))

    visit(normal_body(desired), ())
    return changes


def _copy(value: Any) -> Any:
    """A JSON-like value copied: mappings as dicts, lists as lists, the rest as is."""
    if is_mapping(value):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


@dataclass(frozen=True)
class _Hashing:
    paths: set[SpecPath]  # hashed here
    above: set[SpecPath]  # a sensitive path goes on below
    hasher: Hasher


def _walk(value: Any, path: SpecPath, how: _Hashing) -> Any:
    """`hashed`'s walk. A module function, not a closure calling itself: such a closure is a
    reference cycle, left for the garbage collector by every call (one per deployment planned)."""
    if path in how.paths:
        return how.hasher(value)
    if path not in how.above:
        return _copy(value)  # nothing sensitive below: a plain copy, no paths to track
    if is_mapping(value):
        return {k: _walk(v, (*path, k), how) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, (*path, i), how) for i, v in enumerate(value)]
    return value


def hashed(
    body: Mapping[str, Any], sensitive: Iterable[SpecPath], hasher: Hasher
) -> dict[str, Any]:
    """`body` with every value at a sensitive path (and every `envs` value) replaced by its hash."""
    paths = {tuple(p) for p in sensitive}
    paths |= {("envs", k) for k in (body.get("envs") or {})}
    above = {p[:i] for p in paths for i in range(len(p))}  # where a sensitive path goes on
    result: dict[str, Any] = _walk(dict(body), (), _Hashing(paths, above, hasher))
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
