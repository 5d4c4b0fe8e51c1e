"""The saved plan (`plan --out FILE`, `apply --plan FILE`): the plan's JSON and its inputs.

The inputs are what `apply --plan` plans again from: the manifest paths (relative to the working
directory, so a plan made in one checkout applies from another), the flags that shape a plan,
and the fingerprint the new plan must match (DESIGN.md §7).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..errors import ReconcilerError
from .common import write_atomic

if TYPE_CHECKING:
    from ..plan import Plan, PlanOptions


def save(out: str, plan: Plan, paths: Sequence[str], options: PlanOptions) -> None:
    saved = plan.to_json()
    saved["inputs"] = {
        # relative to the working directory, so the plan applies from another checkout
        "paths": [os.path.relpath(os.path.abspath(p)) for p in paths],
        "prune": options.prune,
        "allow_empty": options.allow_empty,
        "adopt": options.adopt,
        "selector": dict(options.selector),
        "max_deletes": options.max_deletes,
        "targets": sorted(options.targets),
    }
    write_atomic(out, json.dumps(saved, indent=2) + "\n")


def read(path: str) -> tuple[list[str], PlanOptions, str]:
    """The inputs a saved plan was made from; any defect is named, never a raw KeyError."""
    from ..plan import PlanOptions

    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ReconcilerError(f"{path}: cannot read the plan ({exc.strerror})") from None
    except ValueError as exc:
        raise ReconcilerError(f"{path}: not a saved plan: not JSON ({exc})") from None

    def bad(what: str) -> ReconcilerError:
        return ReconcilerError(f"{path}: not a saved plan (made by plan --out): {what}")

    if not isinstance(data, dict):
        raise bad("expected a JSON object")
    if data.get("format_version") != 1:
        raise bad(f"unsupported format_version {data.get('format_version')!r}; expected 1")
    inputs = data.get("inputs")
    if not isinstance(inputs, dict):
        raise bad("it has no `inputs` (a `plan --format json` output is not a saved plan)")
    fingerprint = data.get("fingerprint")
    if not isinstance(fingerprint, str) or not fingerprint.startswith("sha256:"):
        raise bad("`fingerprint` is missing or not sha256:…")
    paths = inputs.get("paths")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths) or not paths:
        raise bad("`inputs.paths` must be a non-empty list of paths")
    flags = {}
    for name in ("prune", "allow_empty", "adopt"):
        value = inputs.get(name)
        if not isinstance(value, bool):
            raise bad(f"`inputs.{name}` must be true or false")
        flags[name] = value
    chosen = inputs.get("selector", {})
    if not isinstance(chosen, dict) or not all(isinstance(v, str) for v in chosen.values()):
        raise bad("`inputs.selector` must map labels to strings")
    budget = inputs.get("max_deletes")
    if budget is not None and (not isinstance(budget, int) or budget < 0):
        raise bad("`inputs.max_deletes` must be a count")
    targets = inputs.get("targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise bad("`inputs.targets` must be a list of names")
    options = PlanOptions(
        selector=MappingProxyType(dict(chosen)),
        max_deletes=budget,
        targets=frozenset(targets),
        **flags,
    )
    return list(paths), options, fingerprint
