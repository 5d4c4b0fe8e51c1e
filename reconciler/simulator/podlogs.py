"""`GET …/deployments/{name}/logs`: a few lines per pod, derived from the clock like the rest.

Nothing is stored: the lines of a deployment follow from its spec and its lifecycle instants, so
they are the same on every read and move with a fake clock. Each container (region) runs
`max(1, scale.min)` pods (at most three); each pod pulls the image, starts and listens, or, when
the image is set to fail (`task_error_image`, `stuck_image`), logs the pull error. A stopped
deployment's pods log their shutdown. Pages with `limit`/`offset`, orders with `order_by`
(`time.asc`, the default, or `time.desc`), filters with `region_id`.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .schema import BodyInvalid

if TYPE_CHECKING:
    from .cloud import Cloud, Deployment

MAX_PODS = 3


def _pod(dep: Deployment, region: int, index: int) -> str:
    digest = hashlib.sha256(f"{dep.project_id}/{dep.name}/{region}".encode()).hexdigest()
    return f"{dep.name}-{digest[:10]}-{digest[10 + index : 15 + index]}"


def log_lines(cloud: Cloud, dep: Deployment, now: float) -> list[dict[str, Any]]:
    """Every line the deployment's pods have written by `now`, oldest first."""
    from .cloud import iso

    image = dep.spec["image"]
    task = cloud.tasks.get(dep.task_id)
    failing = cloud._image_error(image) is not None or bool(
        cloud._stuck_re and cloud._stuck_re.search(image)
    )
    start = task.starts if failing and task is not None else dep.rollout_start
    lines: list[tuple[float, str, int, str]] = []
    for container in dep.spec["containers"]:
        region = container["region_id"]
        for i in range(min(MAX_PODS, max(1, container["scale"]["min"]))):
            pod = _pod(dep, region, i)
            events = [(0.0, f"Pulling image {image!r}")]
            if failing:
                events.append(
                    (
                        0.2,
                        f"Error: failed to pull image {image!r}: ErrImagePull: "
                        "manifest unknown or access denied",
                    )
                )
            else:
                port = dep.spec["listening_port"]
                events += [(0.3, "Started container"), (0.6, f"Listening on 0.0.0.0:{port}")]
            if dep.stopped:
                events.append((0.9, "Received SIGTERM: deployment stopped, shutting down"))
            for offset, message in events:
                at = start + offset + i * 0.01
                if at <= now:
                    lines.append((at, pod, region, message))
    lines.sort()
    return [
        {"message": message, "pod": pod, "region_id": region, "time": iso(at) + "Z"}
        for at, pod, region, message in lines
    ]


def _int(request: Request, key: str, default: int | None) -> int | None:
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BodyInvalid(f"{key} must be an integer", {key: ["must be an integer"]}) from None


async def get_logs(request: Request, cloud: Cloud) -> Response:
    dep = cloud.get(request.path_params["project_id"], request.path_params["name"])
    order = request.query_params.get("order_by") or "time.asc"
    if order not in ("time.asc", "time.desc"):
        raise BodyInvalid(
            f"order_by must be time.asc or time.desc, got {order!r}", {"order_by": ["invalid"]}
        )
    lines = log_lines(cloud, dep, cloud.clock())
    region = _int(request, "region_id", None)
    if region is not None:
        lines = [line for line in lines if line["region_id"] == region]
    if order == "time.desc":
        lines.reverse()
    limit = max(1, min(_int(request, "limit", 100) or 100, cloud.config.page_cap))
    offset = max(0, _int(request, "offset", 0) or 0)
    return JSONResponse({"count": len(lines), "results": lines[offset : offset + limit]})
