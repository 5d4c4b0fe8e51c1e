"""The diff's shortcut: an answer that already shows, as is, every value a manifest sets.

Most deployments are in sync most of the time, and the API's answer then holds each value the
manifest sets exactly as the manifest wrote it (plus the server's defaults for the rest). That is
checked here on the raw values, without building either normal form (`reconciler.normal`).

The check only ever says "in sync" when the full diff would find nothing; anything it does not
vouch for goes to the full diff, which decides:

- a `null` in the manifest, a value that looks like a recorded hash, `api_keys` and
  `auth_enabled` (compared by the auth rule), a region answered twice;
- a record with a field the manifest no longer sets (that field goes back to its default);
- an answer that leaves out a field the manifest sets, or answers `null` for it.

Mappings compare key by key over the manifest's keys (the answer may hold more), except the
user's own maps (`envs`, probe headers), which compare whole; containers match by region, and
the answer may hold no other region; `command` compares as the joined string the API answers;
any other list compares whole. `tests/test_diff.py` checks that this never disagrees with the
full diff.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

HASH_PREFIX = "hmac-sha256:"
_BY_RULE = frozenset({"api_keys", "auth_enabled"})

# Where the shape matters (the rest compares plainly): the user's own maps compare whole
# (`reconciler.normal.ATOMIC_MAPS`), containers match by region, `command` is joined.
_WHOLE, _REGIONS, _COMMAND = "whole", "regions", "command"
Node = Mapping[str, Any] | str | None
_SCHEMA: Mapping[str, Any] = {
    "envs": _WHOLE,
    "command": _COMMAND,
    "containers": _REGIONS,
    "probes": {"*": {"probe": {"http_get": {"headers": _WHOLE}}}},
}


_NEVER_MAPS = frozenset({str, int, bool, float, list, type(None)})


def is_mapping(value: Any) -> TypeGuard[Mapping[Any, Any]]:
    """`isinstance(value, Mapping)`, without the ABC's check for the JSON types it walks."""
    kind = type(value)
    return kind is dict or (kind not in _NEVER_MAPS and isinstance(value, Mapping))


def _below(node: Node, key: str) -> Node:
    if not is_mapping(node):
        return None
    return node.get("*", node.get(key)) if "*" in node else node.get(key)


def _regions(containers: Any) -> dict[Any, Mapping[str, Any]] | None:
    if type(containers) is not list:
        return None
    found = {c.get("region_id"): c for c in containers if is_mapping(c)}
    return found if len(found) == len(containers) and None not in found else None


def _is_hash(value: Any) -> bool:
    return type(value) is str and value.startswith(HASH_PREFIX)


def _shows(live: Any, want: Any, node: Node) -> bool:
    """Whether the answer's value `live` shows the manifest's value `want` as is."""
    kind = type(want)
    if kind is dict:
        if not is_mapping(live):
            return False
        if node == _WHOLE:
            return bool(dict(live) == want)
        if isinstance(node, str):
            return False  # containers or command as a mapping: not a shape a manifest has
        for key, value in want.items():
            if key not in live or not _shows(live[key], value, _below(node, key)):
                return False
        return True
    if want is None:
        return False  # the API's default: the normal form knows it
    if node == _REGIONS:
        wanted, found = _regions(want), _regions(live)
        if wanted is None or found is None or wanted.keys() != found.keys():
            return False
        return all(_shows(found[r], c, None) for r, c in wanted.items())
    if node == _COMMAND:
        joined = " ".join(want) if kind is list else want
        return type(live) is str and bool(live) and live == joined
    if kind is list:
        return type(live) is list and live == want and not any(map(_is_hash, want))
    if kind is str and want.startswith(HASH_PREFIX):
        return False  # compared through the hasher by the full diff
    return bool(live == want) and not is_mapping(want)


def _keeps(last: Any, want: Any, node: Node) -> bool:
    """Whether `want` still sets every field `last` set (so no field goes back to a default)."""
    if node == _REGIONS:
        last_regions, wanted = _regions(last), _regions(want)
        if last_regions is None or wanted is None:
            return False
        return all(r not in wanted or _keeps(c, wanted[r], None) for r, c in last_regions.items())
    if not is_mapping(last) or node == _WHOLE:
        return True
    if not is_mapping(want):
        return False
    for key, value in last.items():
        if key not in want or not _keeps(value, want[key], _below(node, key)):
            return False
    return True


def in_sync(
    desired: Mapping[str, Any], live: Mapping[str, Any], last_applied: Mapping[str, Any] | None
) -> bool:
    """True only when the full diff of these three finds nothing (see the module's notes)."""
    if any(k in desired for k in _BY_RULE):
        return False
    if last_applied is not None and not _keeps(last_applied, desired, _SCHEMA):
        return False
    return is_mapping(live) and _shows(live, dict(desired), _SCHEMA)
