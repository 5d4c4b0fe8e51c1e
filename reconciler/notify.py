"""Notifications: a JSON POST to each `--notify-url` when something changes state.

What is tracked, after every reconcile: each deployment's failure (its last real outcome failed
or timed out, until one converges), each deployment's drift (the plan found it edited out of
band, or status shows it out of sync), and whether the manifests are valid. An event is sent on
every change of one of these states, its recovery included, never once per reconcile: the
tracker remembers what it last reported. A reconcile that could not look (API down, lock held)
changes nothing.

Delivery never holds up the loop: the service's listener only queues. Each URL has its own
bounded queue (the oldest event is dropped when full, and counted) and its own worker, so a dead
receiver delays only itself. A failed POST (connection error, timeout, 429, 5xx) is retried with
doubling waits, a few times, then dropped with a log line. URLs are logged with their secret
parts (userinfo, path, query) hidden: a Slack-style webhook's path is its credential.

The body is the event as JSON with a Slack-compatible `text` field.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from .execute import Result
from .health import Sync
from .service import Service
from .urls import redact_url

log = logging.getLogger("reconciler.notify")
MANIFESTS = "manifests"


class Kind(StrEnum):
    FAILED = "deployment_failed"
    TIMED_OUT = "deployment_timed_out"
    RECOVERED = "deployment_recovered"
    DRIFT = "drift_detected"
    DRIFT_RESOLVED = "drift_resolved"
    MANIFEST_ERROR = "manifest_error"
    MANIFEST_FIXED = "manifest_fixed"

    @property
    def is_problem(self) -> bool:
        return self in (Kind.FAILED, Kind.TIMED_OUT, Kind.DRIFT, Kind.MANIFEST_ERROR)


ICONS = {True: ":red_circle:", False: ":large_green_circle:"}


@dataclass(frozen=True)
class Event:
    kind: Kind
    subject: str  # "project/name", or "manifests"
    message: str
    revision: str | None
    at: float

    def to_json(self) -> dict[str, Any]:
        words = self.kind.value.replace("_", " ")
        text = f"{ICONS[self.kind.is_problem]} reconciler: {self.subject}: {words}"
        if self.message:
            text += f": {self.message}"
        return {
            "event": self.kind.value,
            "subject": self.subject,
            "problem": self.kind.is_problem,
            "message": self.message,
            "revision": self.revision,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)),
            "text": text,
        }


class Tracker:
    """What was last reported for each subject; `observe` returns the changes since."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.failed: dict[str, Kind] = {}
        self.drifted: set[str] = set()
        self.invalid = False

    def observe(self, service: Service) -> list[Event]:
        last = service.last
        if last is None or last.result in ("error", "locked"):
            return []  # nothing was looked at: no state changed
        revision = last.revision
        events: list[Event] = []

        def emit(kind: Kind, subject: str, message: str = "") -> None:
            events.append(Event(kind, subject, message, revision, self.clock()))

        if service.manifest_errors and not self.invalid:
            errors = [str(e) for e in service.manifest_errors]
            more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            emit(Kind.MANIFEST_ERROR, MANIFESTS, "; ".join(errors[:3]) + more)
        elif not service.manifest_errors and self.invalid:
            emit(Kind.MANIFEST_FIXED, MANIFESTS)
        self.invalid = bool(service.manifest_errors)

        report = service.last_report
        failing_before = set(self.failed)
        for outcome in report.outcomes if report else ():
            subject = str(outcome.key)
            if outcome.result is Result.SKIPPED:
                continue
            if outcome.result.ok:
                if self.failed.pop(subject, None) is not None:
                    emit(Kind.RECOVERED, subject, f"{outcome.action.value} converged")
                continue
            kind = Kind.TIMED_OUT if outcome.result is Result.TIMED_OUT else Kind.FAILED
            if self.failed.get(subject) is not kind:
                emit(kind, subject, outcome.error)
            self.failed[subject] = kind

        if report is not None:
            drifted = {str(k): why for k, why in service.drifted.items()}
            drifted.update(
                {str(r.key): r.message for r in service.rows if r.sync is Sync.OUT_OF_SYNC}
            )
            # retrying a failed deployment is not drift, even when the plan calls it that
            busy = failing_before | set(self.failed)
            drifted = {k: v for k, v in drifted.items() if k not in busy}
            for subject in sorted(set(drifted) - self.drifted):
                emit(Kind.DRIFT, subject, drifted[subject])
            for subject in sorted(self.drifted - set(drifted)):
                emit(Kind.DRIFT_RESOLVED, subject)
            self.drifted = set(drifted)
        return events


@dataclass(frozen=True)
class NotifyOptions:
    queue: int = 100  # events kept per URL while its receiver is slow; the oldest go first
    attempts: int = 4
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    timeout: float = 5.0  # seconds for one POST


class _Receiver:
    def __init__(self, url: str, options: NotifyOptions) -> None:
        self.url = url
        self.shown = redact_url(url)
        self.pending: deque[Event] = deque(maxlen=options.queue)
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.busy = False
        self.sent = 0
        self.dropped = 0
        self.failed = 0


class _HideUrls(logging.Filter):
    """Drop httpx's own request lines for our URLs: it logs them whole, secrets and all."""

    def __init__(self, urls: Sequence[str]) -> None:
        super().__init__()
        self.forms = {form for url in urls for form in (url, str(httpx.URL(url)))}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(form in message for form in self.forms)


class Notifier:
    """The service listener that turns state changes into POSTs, off the loop's path."""

    def __init__(
        self,
        urls: Sequence[str],
        options: NotifyOptions | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options or NotifyOptions()
        self.tracker = Tracker(clock)
        self.receivers = [_Receiver(url, self.options) for url in urls]
        self.sleep = sleep
        self._client = httpx.AsyncClient(timeout=self.options.timeout, transport=transport)
        self._hide = _HideUrls(urls)
        logging.getLogger("httpx").addFilter(self._hide)

    def __call__(self, service: Service) -> None:
        for event in self.tracker.observe(service):
            self.send(event)

    def send(self, event: Event) -> None:
        """Queue `event` for every URL; returns at once (must be called on the loop)."""
        log.info("notify: %s %s", event.kind.value, event.subject)
        for receiver in self.receivers:
            self._queue(receiver, event)

    def _queue(self, receiver: _Receiver, event: Event) -> None:
        if len(receiver.pending) == receiver.pending.maxlen:
            receiver.dropped += 1
            log.warning("notify %s: queue full, dropping the oldest event", receiver.shown)
        receiver.pending.append(event)
        if receiver.task is None or receiver.task.done():
            receiver.task = asyncio.get_running_loop().create_task(
                self._work(receiver), name=f"notify {receiver.shown}"
            )
        receiver.wake.set()

    async def _work(self, receiver: _Receiver) -> None:
        while True:
            await receiver.wake.wait()
            receiver.wake.clear()
            while receiver.pending:
                receiver.busy = True
                try:
                    await self._deliver(receiver, receiver.pending.popleft())
                finally:
                    receiver.busy = False

    async def _deliver(self, receiver: _Receiver, event: Event) -> None:
        body = event.to_json()
        wait = self.options.backoff
        for attempt in range(1, self.options.attempts + 1):
            why = await self._post(receiver.url, body)
            if why is None:
                receiver.sent += 1
                return
            if attempt == self.options.attempts or why.startswith("refused"):
                break
            log.warning("notify %s: %s; retry %d in %.1fs", receiver.shown, why, attempt, wait)
            await self.sleep(wait)
            wait *= 2
        receiver.failed += 1
        log.error("notify %s: gave up on %s %s: %s", receiver.shown, event.kind, event.subject, why)

    async def _post(self, url: str, body: dict[str, Any]) -> str | None:
        """None when delivered, else why not (never the URL: httpx errors may print it)."""
        try:
            response = await self._client.post(url, json=body)
        except httpx.TimeoutException:
            return "timed out"
        except httpx.HTTPError as exc:
            return f"connection failed ({type(exc).__name__})"
        if response.status_code < 300:
            return None
        if response.status_code == 429 or response.status_code >= 500:
            return f"answered {response.status_code}"
        return f"refused: answered {response.status_code}"

    async def drain(self, timeout: float) -> None:
        """Let queued events go out for up to `timeout` seconds, then stop the workers."""
        deadline = asyncio.get_running_loop().time() + timeout
        while any(r.pending or r.busy for r in self.receivers):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        await self.aclose()

    async def aclose(self) -> None:
        for receiver in self.receivers:
            if receiver.task is not None:
                receiver.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiver.task
        await self._client.aclose()
        logging.getLogger("httpx").removeFilter(self._hide)
