"""The simulator's HTTP face: Gcore's inference and task endpoints as an ASGI app.

Every endpoint goes through `_endpoint`, which does what the real API does around a handler:
authenticate (`Authorization: APIKey <key>`, scheme case-insensitive), settle the cloud's
lifecycle, answer errors with Gcore's body, and inject the configured faults (latency, 503, 429
with `Retry-After`, lost responses).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .cloud import Cloud, CloudError, Task, parse_iso
from .config import SimulatorConfig
from .objects import routes as object_routes
from .podlogs import get_logs
from .schema import BodyInvalid, validate_create, validate_update
from .shapes import error_body

log = logging.getLogger("reconciler.simulator")

Handler = Callable[[Request, Cloud], Awaitable[Response]]
MUTATING = frozenset({"POST", "PATCH", "DELETE"})


class LostResponse(Exception):
    """Raised after a change took effect and the response had started: the connection drops."""


class _LostResponse(Response):
    """Starts the answer, then breaks off: the client sees the connection drop mid-response."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise LostResponse("simulated lost response")


class _LostResponseFilter(logging.Filter):
    """Keep uvicorn from printing a traceback for each deliberately dropped connection."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, LostResponse)


logging.getLogger("uvicorn.error").addFilter(_LostResponseFilter())


def _error(
    status: int,
    exception_class: str,
    message: str,
    request_id: str,
    invalid_fields: dict[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(exception_class, message, request_id, invalid_fields),
        status_code=status,
        headers={"x-request-id": request_id, **(headers or {})},
    )


class Simulator:
    """One simulated cloud and the ASGI app that serves it."""

    def __init__(self, config: SimulatorConfig | None = None, cloud: Cloud | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.cloud = cloud or Cloud(self.config)
        self.faults = self.config.faults
        self.rng = random.Random(self.faults.seed)
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) of each request
        self.creates: Counter[tuple[int, str]] = Counter()  # successful creates per deployment
        # called with (method, path) as each request arrives: a hook for tests and tools
        self.on_request: Callable[[str, str], None] | None = None
        self.app = Starlette(
            routes=self._routes(),
            exception_handlers={404: _no_route, 405: _no_route},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    # -- plumbing --------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "apikey" or not token:
            return False
        expected = self.config.api_key
        return expected is None or hmac.compare_digest(token.encode(), expected.encode())

    def _endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            response = await self._respond(request, handler)
            self.requests.append((request.method, request.url.path, response.status_code))
            return response

        return endpoint

    async def _respond(self, request: Request, handler: Handler) -> Response:
        if self.on_request is not None:
            self.on_request(request.method, request.url.path)
        request_id = str(uuid.uuid4())
        if self.faults.latency > 0:
            await asyncio.sleep(self.faults.latency)
        if not self._authorized(request):
            return _error(401, "NotAuthenticated", "Invalid or missing API key", request_id)
        draw = self.rng.random()
        if draw < self.faults.error_rate:
            return _error(503, "ServiceUnavailable", "Service temporarily unavailable", request_id)
        if draw < self.faults.error_rate + self.faults.rate_limit_rate:
            seconds = self.faults.retry_after
            headers = {
                "Retry-After": str(max(0, round(seconds))),
                "retry-after-ms": str(int(seconds * 1000)),
            }
            return _error(
                429, "TooManyRequests", "Rate limit exceeded", request_id, headers=headers
            )
        try:
            with self.cloud.lock:
                self.cloud.settle()
                request.state.request_id = request_id
                response = await handler(request, self.cloud)
                created = getattr(request.state, "created", None)
                if created is not None:
                    self.creates[created] += 1
        except CloudError as exc:
            return _error(exc.status, exc.exception_class, exc.message, request_id)
        except BodyInvalid as exc:
            return _error(422, "ValidationError", exc.message, request_id, exc.invalid_fields)
        if (
            request.method in MUTATING
            and response.status_code < 300
            and self.faults.lost_response_rate > 0
            and self.rng.random() < self.faults.lost_response_rate
        ):
            log.info("dropping the response to %s %s", request.method, request.url.path)
            return _LostResponse()
        response.headers["x-request-id"] = request_id
        return response

    def _routes(self) -> list[Route]:
        e = self._endpoint
        base = "/cloud/v3/inference/{project_id:int}/deployments"
        return [
            Route(base, e(_list_deployments), methods=["GET"]),
            Route(base, e(_create_deployment), methods=["POST"]),
            Route(base + "/{name}", e(_get_deployment), methods=["GET"]),
            Route(base + "/{name}", e(_update_deployment), methods=["PATCH"]),
            Route(base + "/{name}", e(_delete_deployment), methods=["DELETE"]),
            Route(base + "/{name}/start", e(_start_deployment), methods=["POST"]),
            Route(base + "/{name}/stop", e(_stop_deployment), methods=["POST"]),
            Route(base + "/{name}/logs", e(get_logs), methods=["GET"]),
            *object_routes(e),
            Route("/cloud/v3/inference/flavors", e(self._list_flavors), methods=["GET"]),
            Route("/cloud/v3/inference/flavors/{name}", e(self._get_flavor), methods=["GET"]),
            Route("/cloud/v3/inference/capacity", e(self._capacity), methods=["GET"]),
            Route("/cloud/v1/tasks", e(_list_tasks), methods=["GET"]),
            Route("/cloud/v1/tasks/{task_id}", e(_get_task), methods=["GET"]),
        ]

    async def _list_flavors(self, request: Request, cloud: Cloud) -> Response:
        flavors = list(self.config.flavors)
        return JSONResponse(_page(request, flavors, self.config.page_cap))

    async def _capacity(self, request: Request, cloud: Cloud) -> Response:
        results = [
            {
                "region_id": region,
                "capacity": [{"flavor_name": f, "capacity": n} for f, n in sorted(free.items())],
            }
            for region, free in sorted(self.config.capacity_of().items())
        ]
        return JSONResponse({"count": len(results), "results": results})

    async def _get_flavor(self, request: Request, cloud: Cloud) -> Response:
        name = request.path_params["name"]
        for flavor in self.config.flavors:
            if flavor["name"] == name:
                return JSONResponse(flavor)
        raise CloudError(404, "NotFoundError", f"Flavor {name!r} not found")


async def _no_route(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    text = "Method not allowed" if status == 405 else f"No such endpoint: {request.url.path}"
    return _error(
        status, "NotFoundError" if status == 404 else "MethodNotAllowed", text, str(uuid.uuid4())
    )


# -- handlers ----------------------------------------------------------------------------------


def _int_param(request: Request, key: str, default: int, *, low: int, high: int | None) -> int:
    raw = request.query_params.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BodyInvalid(f"{key} must be an integer", {key: ["must be an integer"]}) from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise BodyInvalid(f"{key} must be {bound}", {key: [f"must be {bound}"]})
    return value


def _page(request: Request, items: list[Any], cap: int) -> dict[str, Any]:
    limit = _int_param(request, "limit", cap, low=1, high=None)
    offset = _int_param(request, "offset", 0, low=0, high=None)
    limit = min(limit, cap)
    return {"count": len(items), "results": items[offset : offset + limit]}


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        raise BodyInvalid(
            "Request body is not valid JSON", {"__root__": ["invalid JSON"]}
        ) from None


def _tasks_answer(task: Task) -> Response:
    return JSONResponse({"tasks": [task.id]}, status_code=201)


def _key(request: Request) -> tuple[int, str]:
    return request.path_params["project_id"], request.path_params["name"]


async def _list_deployments(request: Request, cloud: Cloud) -> Response:
    project_id = request.path_params["project_id"]
    page = _page(request, cloud.in_project(project_id), cloud.config.page_cap)
    page["results"] = [cloud.view(d) for d in page["results"]]  # only the page's views
    return JSONResponse(page)


async def _create_deployment(request: Request, cloud: Cloud) -> Response:
    flavors = {f["name"] for f in cloud.config.flavors}
    spec = validate_create(await _json_body(request), flavors, set(cloud.config.regions))
    project_id = request.path_params["project_id"]
    task = cloud.create(project_id, spec, request.state.request_id)
    request.state.created = (project_id, task.name)
    return _tasks_answer(task)


async def _get_deployment(request: Request, cloud: Cloud) -> Response:
    return JSONResponse(cloud.view(cloud.get(*_key(request))))


async def _update_deployment(request: Request, cloud: Cloud) -> Response:
    cloud.get(*_key(request))  # 404 before 422, as a missing deployment is the bigger news
    flavors = {f["name"] for f in cloud.config.flavors}
    changes = validate_update(await _json_body(request), flavors, set(cloud.config.regions))
    task = cloud.update(*_key(request), changes, request.state.request_id)
    return JSONResponse({"tasks": [task.id]})


async def _delete_deployment(request: Request, cloud: Cloud) -> Response:
    task = cloud.delete(*_key(request), request.state.request_id)
    return JSONResponse({"tasks": [task.id]})


async def _start_deployment(request: Request, cloud: Cloud) -> Response:
    cloud.start(*_key(request))
    return Response(status_code=204)


async def _stop_deployment(request: Request, cloud: Cloud) -> Response:
    cloud.stop(*_key(request))
    return Response(status_code=204)


async def _get_task(request: Request, cloud: Cloud) -> Response:
    task = cloud.tasks.get(request.path_params["task_id"])
    if task is None:
        raise CloudError(404, "NotFoundError", f"Task {request.path_params['task_id']!r} not found")
    return JSONResponse(task.view(cloud.clock(), cloud.config.sparse_answers))


def _timestamp(request: Request, key: str) -> float | None:
    raw = request.query_params.get(key)
    if raw is None:
        return None
    try:
        if datetime.fromisoformat(raw.replace("Z", "+00:00")).tzinfo is None:
            # a time without an offset means nothing certain: refuse it (README "Fidelity")
            raise BodyInvalid(
                f"{key} must carry a timezone (e.g. +00:00)", {key: ["timezone required"]}
            )
        return parse_iso(raw)
    except ValueError:
        raise BodyInvalid(
            f"{key} must be an ISO 8601 timestamp", {key: ["invalid timestamp"]}
        ) from None


async def _list_tasks(request: Request, cloud: Cloud) -> Response:
    q = request.query_params
    try:
        project_ids = {int(v) for v in q.getlist("project_id")}
    except ValueError:
        raise BodyInvalid(
            "project_id must be an integer", {"project_id": ["must be an integer"]}
        ) from None
    states = set(q.getlist("state"))
    bad = states - {"NEW", "RUNNING", "FINISHED", "ERROR"}
    if bad:
        raise BodyInvalid(f"unknown task state {sorted(bad)[0]!r}", {"state": ["unknown state"]})
    order = q.get("order_by") or q.get("sorting") or "asc"
    views = cloud.list_tasks(
        project_ids=project_ids,
        states=states,
        task_type=q.get("task_type"),
        since=_timestamp(request, "from_timestamp"),
        until=_timestamp(request, "to_timestamp"),
        descending=order == "desc",
    )
    limit = _int_param(request, "limit", 10, low=1, high=1000)
    offset = _int_param(request, "offset", 0, low=0, high=None)
    return JSONResponse({"count": len(views), "results": views[offset : offset + limit]})
