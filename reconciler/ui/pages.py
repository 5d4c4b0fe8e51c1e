"""The web page's routes: server-rendered HTML, one stylesheet, one script, and (only with
`--ui-actions`) a few POST routes.

Safe by construction: Jinja2 escapes every value (autoescape on for every template), every page
carries a Content-Security-Policy that allows scripts and styles from this origin only (so an
injected `<script>` could not run even if it got through), and the view layer hands templates
masked values only. The page refreshes itself by fetching its own URL and swapping the parts
marked `data-live`, so there is one rendering path, no JSON-to-HTML code in the browser.

Actions: without `UiOptions.actions` no POST route is even registered. With it, each POST needs
the bearer token (`RECONCILER_UI_TOKEN`, compared in constant time) and the anti-CSRF header
`X-CSRF-Token` holding the per-process value the page carries in a meta tag, which a page of
another origin cannot read.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..config import Secret
from ..health import Health
from ..model import DeploymentKey
from ..render import render_markdown
from ..service import Service
from . import view
from .snapshot import DeploymentView, SnapshotCache, journal_of, recent_logs, task_states

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
CSRF_HEADER = "x-csrf-token"
LOG_LINES = 40  # the newest log lines a deployment's page shows


@dataclass(frozen=True)
class UiOptions:
    actions: bool = False
    token: Secret | None = None
    refresh: float = 2.0  # seconds between the page's refreshes
    snapshot_ttl: float = 2.0  # seconds a snapshot of live state is reused


class Ui:
    """The page's state: the snapshot cache, recent outcomes, the anti-CSRF value."""

    def __init__(self, service: Service, options: UiOptions) -> None:
        if options.actions and not options.token:
            raise ValueError("--ui-actions needs RECONCILER_UI_TOKEN")
        self.service = service
        self.options = options
        self.cache = SnapshotCache(service, ttl=options.snapshot_ttl)
        self.csrf = secrets.token_urlsafe(24)
        self._extras_cache: dict[DeploymentKey, tuple[float, dict[str, Any]]] = {}
        service.listeners.append(lambda _service: self.cache.invalidate())
        self.env = Environment(
            loader=PackageLoader("reconciler.ui", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["tone"] = view.tone
        self.env.filters["word"] = view.word
        self.static_dir = Path(str(resources.files("reconciler.ui") / "static"))
        self.version = self._static_version()

    def _static_version(self) -> str:
        digest = hashlib.sha256()
        for path in sorted(self.static_dir.iterdir()):
            digest.update(path.read_bytes())
        return digest.hexdigest()[:12]

    # -- rendering -------------------------------------------------------------------------

    def page(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(
            actions=self.options.actions,
            csrf=self.csrf if self.options.actions else "",
            refresh_ms=int(self.options.refresh * 1000),
            version=self.version,
            service_source=view.source_text(self.service),
            **context,
        )
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)

    async def overview(self, request: Request) -> Response:
        snap = await self.cache.get()
        return self.page(
            "overview.html", title="Overview", **view.overview(self.service, snap, time.time())
        )

    async def deployment(self, request: Request) -> Response:
        key = DeploymentKey(request.path_params["project_id"], request.path_params["name"])
        snap = await self.cache.get()
        found = snap.find(key)
        if found is None:
            return self.page("missing.html", 404, title="Not found", key=str(key))
        entries = await asyncio.to_thread(journal_of, self.service, key)
        latest = next((e for e in entries if e.task_ids), None)
        now = time.time()
        return self.page(
            "deployment.html",
            title=str(key),
            d=view.detail(found, now),
            history=[
                {
                    "at": view.when(e.started_at, now),
                    "action": e.action,
                    "result": e.result or "in progress",
                    "error": e.message,
                    "tasks": ", ".join(e.task_ids),
                    "revision": str(e.intent.get("revision") or "")[:10],
                }
                for e in entries
            ],
            backoff=key in self.service.backoff,
            api_error=snap.api_error,
            **await self._extras(found, latest.task_ids[:5] if latest else ()),
        )

    async def _extras(self, found: DeploymentView, task_ids: tuple[str, ...]) -> dict[str, Any]:
        """Log lines and task states: read at most once per snapshot period per deployment."""
        if found.row.health is Health.UNKNOWN and found.live is None:  # the API is not answering
            return {"tasks": [(t, "Unknown", "") for t in task_ids], "logs": None}
        now = time.monotonic()
        cached = self._extras_cache.get(found.key)
        if cached is not None and now - cached[0] < self.options.snapshot_ttl:
            return cached[1]
        tasks, logs = await asyncio.gather(
            task_states(self.service, task_ids), recent_logs(self.service, found, LOG_LINES)
        )
        extras = {"tasks": tasks, "logs": logs}
        self._extras_cache[found.key] = (now, extras)
        return extras

    async def plan(self, request: Request) -> Response:
        snap = await self.cache.get()
        plan = snap.plan
        changes = []
        if plan is not None:
            for change in plan.changes:
                found = snap.find(change.key)
                changes.append(
                    {
                        "key": str(change.key),
                        "href": f"/deployments/{change.key.project_id}/{change.key.name}",
                        "action": change.action.value,
                        "reason": change.reason,
                        "source": change.source or "",
                        "fields": view.field_changes(found) if found else [],
                    }
                )
        return self.page(
            "plan.html",
            title="Pending plan",
            summary=plan.summary() if plan else None,
            revision=plan.revision if plan else None,
            changes=changes,
            markdown=render_markdown(plan) if plan else "",
            plan_error=snap.plan_error,
            api_error=snap.api_error,
            has_changes=bool(plan and plan.has_changes),
        )

    # -- actions ---------------------------------------------------------------------------

    def refused(self, request: Request) -> Response | None:
        """Why this POST is refused (a response), or None when token and CSRF header match."""
        token = self.options.token.reveal() if self.options.token else ""
        sent = request.headers.get("authorization", "")
        bearer = sent.removeprefix("Bearer ") if sent.startswith("Bearer ") else ""
        if not token or not hmac.compare_digest(bearer.encode(), token.encode()):
            return JSONResponse(
                {"error": "missing or wrong token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        csrf = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(csrf.encode(), self.csrf.encode()):
            return JSONResponse({"error": "missing or wrong X-CSRF-Token"}, status_code=403)
        return None

    async def login(self, request: Request) -> Response:
        return self.refused(request) or Response(status_code=204)

    async def sync(self, request: Request) -> Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        if "name" in request.path_params:
            key = DeploymentKey(request.path_params["project_id"], request.path_params["name"])
            self.service.backoff.pop(key, None)  # "now" means now, not after its backoff
            self.service.trigger("ui")
            return JSONResponse({"queued": True, "deployment": str(key)}, status_code=202)
        self.service.backoff.clear()
        self.service.trigger("ui")
        return JSONResponse({"queued": True}, status_code=202)

    async def refresh(self, request: Request) -> Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        self.cache.invalidate()
        await self.cache.get()
        return JSONResponse({"refreshed": True})

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/", self.overview, methods=["GET"]),
            Route("/deployments/{project_id:int}/{name}", self.deployment, methods=["GET"]),
            Route("/plan", self.plan, methods=["GET"]),
            Mount("/static", StaticFiles(directory=self.static_dir), name="static"),
        ]
        if self.options.actions:
            routes += [
                Route("/ui/actions/login", self.login, methods=["POST"]),
                Route("/ui/actions/sync", self.sync, methods=["POST"]),
                Route("/ui/actions/sync/{project_id:int}/{name}", self.sync, methods=["POST"]),
                Route("/ui/actions/refresh", self.refresh, methods=["POST"]),
            ]
        return routes


def ui_routes(service: Service, options: UiOptions | None = None) -> list[BaseRoute]:
    return Ui(service, options or UiOptions()).routes()
