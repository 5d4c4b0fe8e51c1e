"""The async client of Gcore's inference deployments and tasks API.

One `httpx.AsyncClient` for the whole run (connection reuse matters when a hundred deployments are
polled together). Every request goes through `_request`, which classifies failures into the
`reconciler.errors` tree and retries what is safe to retry:

- idempotent requests (GET) on transport errors, 429 and 5xx;
- mutating requests (POST, PATCH, DELETE) only when the server provably did nothing: a 429 (the
  request was refused before it was handled) or a connect error (it never left). A 5xx or a lost
  answer may hide a change that happened, so it is raised for the caller to check (DESIGN.md §5).

Backoff is capped exponential with jitter; a `Retry-After` (or `retry-after-ms`) hint is honoured
when it is sane (`answers.py` holds the retry policy, the error of a failed answer and
listings). The sleep function is injectable so tests run on fake time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from .. import __version__
from ..config import ApiSettings
from ..errors import ApiError, ApiTransportError, RateLimitedError
from ..redact import Redactor
from .answers import (
    Listing,
    M,
    RetryPolicy,
    Unreadable,
    first_error,
    status_error,
    unreadable,
)
from .models import Deployment, Flavor, RegionCapacity, Task, TaskState
from .network import use_asyncio_network

log = logging.getLogger("reconciler.api")

Sleep = Callable[[float], Awaitable[None]]
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class ApiClient:
    """Async client for `/cloud/v3/inference/{project_id}/deployments` and `/cloud/v1/tasks`.

    Use as an async context manager. `requests` counts the HTTP requests sent, by method and
    status (status 0 for transport errors), for metrics and benchmarks.
    """

    def __init__(
        self,
        settings: ApiSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | None = None,
        sleep: Sleep = asyncio.sleep,
        page_size: int = 1000,
        max_connections: int = 64,
        seed: int | None = None,
        on_request: Callable[[str, int], None] | None = None,
    ) -> None:
        key = settings.require_key()
        self.base_url = settings.base_url
        # where a connection error happened, for its message (no userinfo, no path)
        self._host = httpx.URL(settings.base_url).netloc.decode(errors="replace").rpartition("@")[2]
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.requests: Counter[tuple[str, int]] = Counter()
        self._on_request = on_request
        # values never to show in an API message; engine.apply adds the manifests' secrets
        self.redact = Redactor([key.reveal()])
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            headers={
                "Authorization": f"APIKey {key.reveal()}",
                "User-Agent": f"reconciler/{__version__}",
                "Accept": "application/json",
            },
            timeout=timeout or httpx.Timeout(30.0, connect=5.0),
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections),
        )
        if transport is None:
            use_asyncio_network(self._http)  # less CPU per request than httpx's default layer

    def __repr__(self) -> str:
        return f"ApiClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the one request path --------------------------------------------------------------

    def _count(self, method: str, status: int) -> None:
        self.requests[(method, status)] += 1
        if self._on_request is not None:
            self._on_request(method, status)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str | int]] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        idempotent = method in ("GET", "HEAD")
        attempts = max(1, self.retry.attempts)
        for attempt in range(attempts):
            started = time.monotonic()
            error: ApiError
            try:
                response = await self._http.request(
                    method, path, params=list(params or []), json=json
                )
            except httpx.TransportError as exc:
                self._count(method, 0)
                never_sent = isinstance(exc, NEVER_SENT)
                what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                error = ApiTransportError(
                    f"{what} ({self._host})",
                    method=method,
                    path=path,
                    maybe_applied=not idempotent and not never_sent,
                )
                resendable = idempotent or never_sent
            else:
                self._count(method, response.status_code)
                log.debug(
                    "%s %s -> %s in %.0f ms",
                    method,
                    path,
                    response.status_code,
                    (time.monotonic() - started) * 1000,
                )
                if response.is_success:
                    return response
                error = status_error(method, path, response, self.redact)
                resendable = idempotent or isinstance(error, RateLimitedError)
            if not (error.temporary and resendable) or attempt == attempts - 1:
                raise error
            hint = error.retry_after if isinstance(error, RateLimitedError) else None
            delay = self.retry.delay(attempt, hint, self._rng)
            log.info(
                "retrying %s %s in %.2fs (attempt %d of %d): %s",
                method,
                path,
                delay,
                attempt + 2,
                attempts,
                error,
            )
            await self._sleep(delay)
        raise AssertionError("unreachable")

    async def _get_model(self, path: str, model: type[M]) -> M:
        response = await self._request("GET", path)
        return self._parse(model, response.json(), path)

    @staticmethod
    def _parse(model: type[M], data: Any, path: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ApiError(
                f"GET {path}: unexpected answer from the API: {first_error(exc)}",
                method="GET",
                path=path,
            ) from None

    async def _paginate(
        self, path: str, model: type[M], params: Sequence[tuple[str, str | int]] = ()
    ) -> Listing[M]:
        """Every item of a `{count, results}` listing, whatever page size the server imposes.
        An item that does not parse lands in `unreadable` instead of failing the listing."""
        items: Listing[M] = Listing()
        items.unreadable = await self._pages(path, model, params, items.append)
        return items

    async def _pages(
        self,
        path: str,
        model: type[M],
        params: Sequence[tuple[str, str | int]],
        take: Callable[[M], object],
    ) -> list[Unreadable]:
        """Hand every parsed item of a listing to `take` as its page arrives; the unreadable."""
        unreadable_items: list[Unreadable] = []
        offset = 0
        while True:
            query: list[tuple[str, str | int]] = [
                *params,
                ("limit", self.page_size),
                ("offset", offset),
            ]
            page = (await self._request("GET", path, params=query)).json()
            if not isinstance(page, dict):
                raise ApiError(
                    f"GET {path}: unexpected answer from the API: not a listing",
                    method="GET",
                    path=path,
                )
            results = page.get("results") or []
            for item in results:
                try:
                    parsed = model.model_validate(item)
                except ValidationError as exc:
                    unreadable_items.append(unreadable(item, exc))
                    log.warning("GET %s: skipped an unreadable item: %s", path, first_error(exc))
                    continue
                take(parsed)
            offset += len(results)
            if not results or offset >= int(page.get("count", 0)):
                return unreadable_items

    async def answers(
        self, path: str, params: Sequence[tuple[str, str | int]] = ()
    ) -> tuple[list[Any], int]:
        """Every item of a listing as the API sent it (not parsed into models), and how many
        pages that took."""
        items: list[Any] = []
        pages = await self.each_answer(path, items.append, params)
        return items, pages

    async def each_answer(
        self, path: str, take: Callable[[Any], object], params: Sequence[tuple[str, str | int]] = ()
    ) -> int:
        """Hand every item of a listing, as the API sent it, to `take` as its page arrives;
        return how many pages that took. For polling: the caller keeps only the items someone
        waits on, so a long listing is never held whole."""
        seen = pages = 0
        while True:
            query: list[tuple[str, str | int]] = [
                *params,
                ("limit", self.page_size),
                ("offset", seen),
            ]
            page = (await self._request("GET", path, params=query)).json()
            pages += 1
            if not isinstance(page, dict):
                raise ApiError(
                    f"GET {path}: unexpected answer from the API: not a listing",
                    method="GET",
                    path=path,
                )
            results = page.get("results") or []
            for item in results:
                take(item)
            seen += len(results)
            if not results or seen >= int(page.get("count", 0)):
                return pages

    def task_query(
        self,
        *,
        project_ids: Iterable[int] = (),
        states: Iterable[TaskState | str] = (),
        task_type: str | None = None,
        from_timestamp: str | None = None,
    ) -> list[tuple[str, str | int]]:
        """The query of `list_tasks` (for `answers("/cloud/v1/tasks", ...)`)."""
        params: list[tuple[str, str | int]] = [("project_id", int(p)) for p in project_ids]
        params += [("state", str(s)) for s in states]
        if task_type:
            params.append(("task_type", task_type))
        if from_timestamp:
            params.append(("from_timestamp", from_timestamp))
        return params

    @staticmethod
    def _tasks(response: httpx.Response) -> list[str]:
        if not response.content:
            return []
        return [str(t) for t in (response.json().get("tasks") or [])]

    # -- deployments -----------------------------------------------------------------------

    @staticmethod
    def deployments_path(project_id: int, name: str | None = None) -> str:
        path = f"/cloud/v3/inference/{int(project_id)}/deployments"
        return path if name is None else f"{path}/{quote(name, safe='')}"

    async def list_deployments(self, project_id: int) -> Listing[Deployment]:
        return await self._paginate(self.deployments_path(project_id), Deployment)

    async def each_deployment(
        self, project_id: int, take: Callable[[Deployment], object]
    ) -> list[Unreadable]:
        """Like `list_deployments`, but each deployment goes to `take` as its page arrives, so
        a caller that keeps something smaller never holds the whole project's models at once;
        returns the items that do not parse."""
        return await self._pages(self.deployments_path(project_id), Deployment, (), take)

    async def each_deployment_answer(self, project_id: int, take: Callable[[Any], object]) -> int:
        """The project's deployments as the API sent them, each handed to `take` as its page
        arrives (`each_answer`); the pages that took."""
        return await self.each_answer(self.deployments_path(project_id), take)

    async def get_deployment(self, project_id: int, name: str) -> Deployment:
        return await self._get_model(self.deployments_path(project_id, name), Deployment)

    async def create_deployment(self, project_id: int, body: Mapping[str, Any]) -> list[str]:
        """POST a create body (with `name`); returns the task IDs. Never retried blindly."""
        response = await self._request("POST", self.deployments_path(project_id), json=body)
        return self._tasks(response)

    async def update_deployment(
        self, project_id: int, name: str, changes: Mapping[str, Any]
    ) -> list[str]:
        """PATCH only the fields in `changes`; returns the task IDs."""
        path = self.deployments_path(project_id, name)
        return self._tasks(await self._request("PATCH", path, json=changes))

    async def delete_deployment(self, project_id: int, name: str) -> list[str]:
        path = self.deployments_path(project_id, name)
        return self._tasks(await self._request("DELETE", path))

    async def start_deployment(self, project_id: int, name: str) -> None:
        await self._request("POST", self.deployments_path(project_id, name) + "/start")

    async def stop_deployment(self, project_id: int, name: str) -> None:
        await self._request("POST", self.deployments_path(project_id, name) + "/stop")

    # -- tasks and flavors -----------------------------------------------------------------

    async def get_task(self, task_id: str) -> Task:
        task = await self._get_model(f"/cloud/v1/tasks/{quote(task_id, safe='')}", Task)
        if task.error:
            task = task.model_copy(update={"error": self.redact(task.error)})
        return task

    async def list_tasks(
        self,
        *,
        project_ids: Iterable[int] = (),
        states: Iterable[TaskState | str] = (),
        task_type: str | None = None,
        from_timestamp: str | None = None,
    ) -> Listing[Task]:
        """Tasks matching every filter given (several projects or states: any of them)."""
        params = self.task_query(
            project_ids=project_ids,
            states=states,
            task_type=task_type,
            from_timestamp=from_timestamp,
        )
        return await self._paginate("/cloud/v1/tasks", Task, params)

    async def each_task_answer(
        self, take: Callable[[Any], object], *, from_timestamp: str | None = None
    ) -> int:
        """Tasks as the API sent them (see `list_tasks`), each handed to `take` as its page
        arrives (`each_answer`); the pages that took."""
        query = self.task_query(from_timestamp=from_timestamp)
        return await self.each_answer("/cloud/v1/tasks", take, query)

    async def list_flavors(self) -> Listing[Flavor]:
        return await self._paginate("/cloud/v3/inference/flavors", Flavor)

    async def list_capacity(self) -> Listing[RegionCapacity]:
        """Free capacity per region and flavor (one request: the answer is not paged)."""
        return await self._paginate("/cloud/v3/inference/capacity", RegionCapacity)
