"""The long-lived service: triggers in, one reconcile at a time, status and metrics out.

Triggers (file events, the git interval, the webhook, the periodic resync, retries) only set a
flag; one loop runs a reconcile whenever the flag is set, so a burst of triggers during a run
coalesces into exactly one more run. File events are debounced (`debounce`, 300 ms of quiet).

Each reconcile: sync the source (git fetch, or nothing for a directory), load the manifests, and
apply. A revision with any invalid manifest applies nothing from it: the last good revision
stays in force (drift is still corrected against it) and the errors are reported in status,
logs and metrics. Self-heal and each failing deployment's backoff are `healing`'s; when the API
is down, readiness goes false and the loop retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from . import engine
from .clock import REAL, Clock
from .engine import ApplyHooks, Target
from .errors import ApiError, ReconcilerError
from .execute import ApplyOptions, Event, Phase
from .healing import Healing
from .manifests import ManifestError
from .manifests.offloop import load_off_loop
from .metrics import Metrics
from .model import DeploymentKey, DesiredState
from .objects_engine import ObjectStatusRow
from .plan import PlanOptions
from .runs import LastReconcile, Run, failures, status_document
from .sources import Source, SourceError
from .state import LockHeld
from .status import StatusRow

if TYPE_CHECKING:
    from .replicas import ProjectLeases

log = logging.getLogger("reconciler.service")


@dataclass(frozen=True)
class ServeOptions:
    interval: float = 60.0
    prune: bool = False
    allow_empty: bool = False
    self_heal: bool = True
    max_deletes: int | None = 10  # deletion budget per reconcile (serve --max-deletes)
    selector: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    debounce: float = 0.3
    apply: ApplyOptions = field(default_factory=ApplyOptions)
    backoff_initial: float = 5.0
    backoff_cap: float = 300.0
    shutdown_grace: float = 10.0
    lock_timeout: float = 10.0  # how long a reconcile waits for another apply's lock
    secrets_from: tuple[str, ...] = ()  # folders valueFrom.file may read besides the manifests
    secrets_dir: Path | None = None  # API key secrets; default: secrets/ beside the state


class Service:
    def __init__(
        self,
        source: Source,
        target: Target,
        options: ServeOptions | None = None,
        *,
        metrics: Metrics | None = None,
        webhook_secret: str | None = None,
        clock: Clock = REAL,
        leases: ProjectLeases | None = None,
    ) -> None:
        self.source = source
        self.leases = leases  # replicas on PostgreSQL: the projects this one reconciles
        self.projects: frozenset[int] | None = None
        self.clock = clock
        self.target = target
        self.options = options or ServeOptions()
        self.metrics = metrics or Metrics()
        self.webhook_secret = webhook_secret
        self.runs = 0
        self.triggers: Counter[str] = Counter()
        self.last: LastReconcile | None = None
        self.manifest_errors: list[ManifestError] = []
        self.good: tuple[DesiredState, str | None] | None = None
        self.rows: list[StatusRow] = []
        self.object_rows: list[ObjectStatusRow] = []  # credentials, secrets, API keys
        self.api_ok = False
        self.reconciled_once = False
        self.not_ready: str | None = "first reconcile not done"  # why /readyz says 503
        self.running_since: float | None = None
        self.healing = Healing(
            clock,
            self.metrics,
            self.options.self_heal,
            self.options.backoff_initial,
            self.options.backoff_cap,
        )
        self._wanted: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._debounce: asyncio.TimerHandle | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._error_streak = 0
        self._stop_watching: Callable[[], None] = lambda: None
        self.last_report: engine.ApplyReport | None = None  # the last reconcile's apply, if any
        self.listeners: list[Callable[[Service], None]] = []  # told after every reconcile
        self._known_projects: frozenset[int] = frozenset()

    # -- triggers --------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.reconciled_once and self.not_ready is None

    def trigger(self, reason: str) -> None:
        """Ask for a reconcile; triggers during a run coalesce into one more run.

        As a replica, a change that arrives here (a webhook, a file event) is also marked due
        for the projects other replicas hold, so their holders reconcile it promptly."""
        self.triggers[reason] += 1
        if self._wanted is not None:
            self._wanted.set()
        if self.leases is not None and reason in ("webhook", "files") and self._loop is not None:
            others = self._known_projects - (self.projects or frozenset())
            if others:
                self._loop.run_in_executor(None, self.leases.mark_due, others)

    def file_event(self) -> None:
        """Called from the watchdog thread: debounce, then trigger on the loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._debounced)

    def _debounced(self) -> None:
        assert self._loop is not None
        if self._debounce is not None:
            self._debounce.cancel()
        self._debounce = self._loop.call_later(self.options.debounce, self.trigger, "files")

    def _retry_in(self, seconds: float, reason: str) -> None:
        if self._loop is None:
            return  # a reconcile outside `run()` (a test, a one-shot): nobody to retry it
        if self._retry is not None:
            self._retry.cancel()
        self._retry = self._loop.call_later(max(0.0, seconds), self.trigger, reason)

    # -- the loop --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile on every trigger until `stop` is set; then let the run in flight reach a
        journaled point (or cancel it after `shutdown_grace`; the journal makes that safe)."""
        self._loop = asyncio.get_running_loop()
        self._wanted = asyncio.Event()
        self.trigger("start")
        self._stop_watching = self.source.watch(self.file_event)
        ticker = asyncio.create_task(self._tick(stop), name="resync")
        due = asyncio.create_task(self._poll_due(stop), name="due")
        stopping = asyncio.create_task(stop.wait(), name="stop")
        try:
            while not stop.is_set():
                wanted = asyncio.create_task(self._wanted.wait())
                await asyncio.wait({wanted, stopping}, return_when=asyncio.FIRST_COMPLETED)
                wanted.cancel()
                if stop.is_set():
                    break
                self._wanted.clear()
                run = asyncio.create_task(self.reconcile_once(), name="reconcile")
                await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not run.done():
                    log.info("stopping: waiting for the reconcile in flight")
                    done, _ = await asyncio.wait({run}, timeout=self.options.shutdown_grace)
                    if not done:
                        run.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await run
                        log.info("stopping: in-flight work is journaled; a restart resumes it")
                        break
                if run.done() and not run.cancelled() and run.exception():
                    log.error("reconcile crashed: %s", run.exception())
        finally:
            ticker.cancel()
            due.cancel()
            stopping.cancel()
            self._stop_watching()
            for handle in (self._debounce, self._retry):
                if handle is not None:
                    handle.cancel()

    async def _poll_due(self, stop: asyncio.Event, every: float = 0.5) -> None:
        """As a replica: reconcile soon when another replica marked one of our projects due."""
        if self.leases is None:
            return
        while not stop.is_set():
            await self.clock.sleep(every)
            try:
                if await asyncio.to_thread(self.leases.take_due):
                    self.trigger("due")
            except ReconcilerError as exc:
                log.warning("cannot read due projects: %s", exc)

    async def _tick(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.clock.sleep(self.options.interval)
            self.trigger("interval")

    # -- one reconcile ---------------------------------------------------------------------

    @property
    def backoff(self) -> dict[DeploymentKey, tuple[int, float]]:
        """Deployments backing off after failures: (failures, monotonic time of the retry)."""
        return self.healing.backoff

    @property
    def drifted(self) -> dict[DeploymentKey, str]:
        """What the last plan found edited out of band, and which fields."""
        return self.healing.drifted

    def _log_event(self, event: Event) -> None:
        if event.phase.is_final or event.phase is Phase.SUBMITTED:
            log.info(
                "%s %s %s%s",
                event.key,
                event.action.value,
                event.phase,
                f": {event.message}" if event.message else "",
            )

    async def reconcile_once(self) -> LastReconcile:
        """Load the manifests, apply the last good ones, read status; report how it went."""
        run = Run(self.clock.monotonic())
        self.running_since = run.started
        self.runs += 1
        try:
            await self._load(run)
            await self._apply(run)
            self.rows = await engine.status(self.target, on_request=self.metrics.request)
            self.object_rows = await engine.status_objects(self.target, self.metrics.request)
            self.metrics.observe_status(self.rows)
            self.api_ok = True
            self._error_streak = 0
        except LockHeld as exc:
            run.end("locked", [str(exc)])  # another apply is running on this state: not an outage
            log.warning("reconcile skipped: %s", exc)
            self._retry_in(self.options.backoff_initial, "retry")
        except ReconcilerError as exc:
            run.end("error", [str(exc)])
            if isinstance(exc, SourceError):
                run.cause = f"cannot fetch the manifests: {exc}"
            elif isinstance(exc, ApiError):
                run.cause = f"API unreachable: {exc}"
                self.api_ok = False
            else:
                run.cause = str(exc)
            self._error_streak += 1
            delay = min(self.options.backoff_initial * 2 ** (self._error_streak - 1), 60.0)
            log.error("reconcile failed: %s; retrying in %.0fs", exc, delay)
            self._retry_in(delay, "retry")
        finally:
            self.running_since = None
        return self._finish(run)

    async def _load(self, run: Run) -> None:
        """Sync the source and load its manifests; only a valid, non-empty set becomes good."""
        snapshot = await self.source.sync()
        run.revision = revision = snapshot.revision
        state, manifest_errors = await load_off_loop(
            list(snapshot.paths),
            self.target.settings.project_id,
            secrets_from=self.options.secrets_from,
        )
        manifest_errors = [replace(e, file=snapshot.shown(e.file)) for e in manifest_errors]
        self.manifest_errors = manifest_errors
        self.metrics.manifest_errors.set(len(manifest_errors))
        if manifest_errors:
            run.end("invalid", [str(e) for e in manifest_errors])
            for error in manifest_errors:
                log.error("invalid manifest at revision %s: %s", revision or "-", error)
            count = len(manifest_errors)
            run.cause = (
                f"{count} manifest error{'s' if count != 1 else ''} at revision "
                f"{revision or '(directory)'}; the last good revision stays in force"
            )
        elif not len(state) and not self.options.allow_empty:
            run.cause = (
                f"no manifest in {self.source.describe()}; applying nothing "
                "(serve --allow-empty accepts an empty set)"
            )
            run.end("empty", [run.cause])
            log.error("%s", run.cause)
        else:
            self.good = (state, revision)

    async def _apply(self, run: Run) -> None:
        """Apply the last good manifests (the current ones, unless they are invalid)."""
        self.last_report = None
        if self.good is None:
            return
        desired, good_revision = self.good
        if self.leases is not None:
            desired = await self._share(desired)
        report = await engine.apply(
            desired,
            self.target,
            PlanOptions(
                prune=self.options.prune,
                allow_empty=self.options.allow_empty,
                selector=self.options.selector,
                max_deletes=self.options.max_deletes,
            ),
            self.options.apply,
            ApplyHooks(
                report=self._log_event,
                choose=self.healing.choose,
                on_request=self.metrics.request,
            ),
            revision=good_revision,
            lock_timeout=self.options.lock_timeout,
            secrets_dir=self.options.secrets_dir,
            projects=self.projects if self.leases is not None else None,
        )
        self.last_report = report
        for found in report.object_outcomes:  # an API key's secret: only its file's path
            level = logging.INFO if found.ok else logging.WARNING
            log.log(level, "%s %s: %s", found.key, found.action.value, found.message)
        retry = self.healing.note(report)
        if retry is not None:
            self._retry_in(retry + 0.01, "retry")
        run.outcomes.update(o.result.value for o in report.outcomes)
        if not report.ok and run.result == "ok":
            run.end("failed", failures(report))
        if good_revision:
            self.metrics.revision.info({"revision": good_revision})

    async def _share(self, desired: DesiredState) -> DesiredState:
        """Take this replica's share of the projects; the manifests of those projects only."""
        assert self.leases is not None
        recorded = await asyncio.to_thread(engine.recorded_projects, self.target)
        known = recorded | {d.key.project_id for d in desired}
        known |= {o.key.project_id for o in desired.objects}
        self._known_projects = known
        held = frozenset(await asyncio.to_thread(self.leases.rebalance, known))
        if held != self.projects:
            log.info("reconciling projects %s", ", ".join(map(str, sorted(held))) or "(none)")
        self.projects = held
        self.metrics.projects_held.set(len(held))
        return DesiredState(
            tuple(d for d in desired if d.key.project_id in held),
            desired.files,
            tuple(o for o in desired.objects if o.key.project_id in held),
        )

    def _finish(self, run: Run) -> LastReconcile:
        """Readiness, metrics, the summary for /api/status, the log line, the listeners."""
        seconds = self.clock.monotonic() - run.started
        self.reconciled_once = True
        if run.result != "locked":
            self.not_ready = run.cause
        self.metrics.reconciles.labels(run.result).inc()
        self.metrics.duration.observe(seconds)
        self.metrics.ready.set(1 if self.ready else 0)
        shown_revision = run.revision or (self.good[1] if self.good else None)
        self.last = LastReconcile(
            self.clock.wall(), seconds, run.result, shown_revision, run.errors, dict(run.outcomes)
        )
        log.info(
            "reconcile %d: %s in %.2fs (revision %s)",
            self.runs,
            run.result,
            seconds,
            shown_revision or "-",
        )
        self._tell_listeners()
        return self.last

    def _tell_listeners(self) -> None:
        """The web page and notifications read the result; none of them may break the loop."""
        for listener in self.listeners:
            try:
                listener(self)
            except Exception:
                log.exception("a reconcile listener failed")

    # -- what /api/status shows ------------------------------------------------------------

    def status_json(self) -> dict[str, Any]:
        """The /api/status document (`runs.status_document`)."""
        return status_document(self)
