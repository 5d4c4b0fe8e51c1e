"""Preflight: check what manifests reference against the API before anything is sent.

A flavor that does not exist, a region that does not exist, or a region with no capacity at all
for the flavor would each be a 422 (or a 403) at apply time, after other deployments were
already changed. Here they are errors at the manifest's place, found by `plan`. Less capacity
than the plan asks for (the total `scale.min` of what it creates or updates, per flavor and
region) is only a warning: capacity moves, and the API has the last word.

Two requests per run, whatever the number of manifests: `GET /cloud/v3/inference/flavors` and
`GET /cloud/v3/inference/capacity` (neither is per project), fetched once into a `Catalog`.
`check` is pure. A flavor interpolated from `${VAR}` is never echoed.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .api import ApiClient
from .manifests import ManifestError
from .model import DesiredDeployment, SpecPath

HIDDEN = "(sensitive)"


@dataclass(frozen=True)
class Catalog:
    """What the API offers: flavor names, and free replicas per region and flavor."""

    flavors: frozenset[str]
    capacity: Mapping[int, Mapping[str, int]]


async def fetch_catalog(api: ApiClient) -> Catalog:
    flavors, regions = await asyncio.gather(api.list_flavors(), api.list_capacity())
    return Catalog(
        frozenset(f.name for f in flavors),
        {r.region_id: {c.flavor_name: c.capacity for c in r.capacity} for r in regions},
    )


def _shown(value: str, path: SpecPath, sensitive: frozenset[SpecPath]) -> str:
    hidden = any(p[: len(path)] == path or path[: len(p)] == p for p in sensitive)
    return HIDDEN if hidden else repr(value)


def check(
    desired: Iterable[DesiredDeployment],
    catalog: Catalog,
    acting: frozenset[object] = frozenset(),
) -> tuple[list[ManifestError], list[str]]:
    """(errors at each manifest's place, warnings). `acting` holds the keys the plan creates or
    updates: their `scale.min` is what the plan asks of each region's capacity."""
    errors: list[ManifestError] = []
    demand: defaultdict[tuple[str, int], int] = defaultdict(int)
    shown: dict[str, str] = {}
    for d in desired:
        body = d.body()  # required fields: always there
        flavor: str = body["flavor_name"]
        name = _shown(flavor, ("flavor_name",), d.sensitive_paths)
        shown.setdefault(flavor, name)

        def error(path: str, message: str, d: DesiredDeployment = d) -> None:
            errors.append(
                ManifestError(d.source.file, d.source.line, d.source.column, path, message)
            )

        if flavor not in catalog.flavors:
            error("spec.flavor_name", f"flavor {name} does not exist (GET inference/flavors)")
        for i, container in enumerate(body["containers"]):
            path = f"spec.containers[{i}].region_id"
            region: int = container["region_id"]
            free = catalog.capacity.get(region)
            if free is None:
                error(path, f"region {region} does not exist for inference")
            elif flavor in catalog.flavors and free.get(flavor, 0) <= 0:
                error(path, f"region {region} has no capacity for flavor {name}")
            elif d.key in acting:
                demand[(flavor, region)] += container["scale"]["min"]
    warnings = [
        f"region {region} has capacity for {catalog.capacity[region].get(flavor, 0)} more "
        f"replica(s) of flavor {shown[flavor]}; the plan asks for {wanted} (total scale.min)"
        for (flavor, region), wanted in sorted(demand.items())
        if wanted > catalog.capacity[region].get(flavor, 0)
    ]
    return errors, warnings
