"""From a snapshot to what a template shows: plain values, secrets already masked. Pure.

Templates get strings and numbers only, never a spec or a live answer: every value that could be
secret goes through `masked` here (every `envs` value, every path the manifest interpolated, the
whole `command` when part of it was), so no template can leak one by accident. Each state carries
a word and a tone; the stylesheet colours the tone and the word is always printed beside it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from ..diff import SENSITIVE
from ..health import Health, Sync
from ..model import SpecPath
from ..render import field_line
from ..service import Service
from ..sources import GitSource
from ..urls import commit_url, redact_url
from .snapshot import DeploymentView, Snapshot

TONES = {
    "Synced": "ok",
    "OutOfSync": "warn",
    "Unknown": "unknown",
    "Healthy": "ok",
    "Progressing": "progress",
    "Degraded": "bad",
    "Suspended": "idle",
    "Missing": "bad",
    "ok": "ok",
    "converged": "ok",
    "failed": "bad",
    "timed_out": "bad",
    "error": "bad",
    "invalid": "bad",
    "locked": "warn",
    "skipped": "idle",
    "create": "progress",
    "update": "warn",
    "delete": "bad",
    "adopt": "progress",
    "noop": "idle",
    "FINISHED": "ok",
    "ERROR": "bad",
    "RUNNING": "progress",
    "NEW": "progress",
    "backing off": "warn",
    "reconciling now": "progress",
}
WORDS = {"OutOfSync": "OutOfSync", "timed_out": "timed out", "noop": "no change"}


def tone(value: str) -> str:
    return TONES.get(value, "unknown")


def word(value: str) -> str:
    return WORDS.get(value, value) or "unknown"


def when(at: float | None, now: float) -> str:
    if not at:
        return ""
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at))
    ago = max(0, int(now - at))
    if ago < 60:
        rel = f"{ago}s ago"
    elif ago < 3600:
        rel = f"{ago // 60}m ago"
    elif ago < 86400:
        rel = f"{ago // 3600}h ago"
    else:
        rel = f"{ago // 86400}d ago"
    return f"{stamp} ({rel})"


def masked(body: Mapping[str, Any], sensitive: Iterable[SpecPath]) -> dict[str, Any]:
    """`body` with every secret value replaced by `(sensitive)`."""
    paths = {tuple(p) for p in sensitive}
    paths |= {("envs", k) for k in (body.get("envs") or {})}

    def walk(value: Any, path: SpecPath) -> Any:
        if path in paths:
            return SENSITIVE
        if isinstance(value, Mapping):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        return value

    result: dict[str, Any] = walk(dict(body), ())
    if any(p[:1] == ("command",) for p in paths) and body.get("command") is not None:
        result["command"] = SENSITIVE  # the API answers it as one string: mask it whole
    return result


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _sensitive_paths(view: DeploymentView) -> set[SpecPath]:
    paths: set[SpecPath] = set()
    if view.desired is not None:
        paths |= view.desired.sensitive_paths
    if view.record is not None:
        paths |= view.record.sensitive_paths
    return paths


def row(view: DeploymentView, now: float) -> dict[str, Any]:
    r = view.row
    regions = [
        {
            "region": c.region_id,
            "ready": c.ready,
            "total": c.total,
            "error": c.error_message or "",
        }
        for c in (view.live.containers_status if view.live else ())
    ]
    labels = " ".join(f"{k}={v}" for k, v in sorted(view.labels.items()))
    return {
        "key": str(view.key),
        "project": view.key.project_id,
        "name": view.key.name,
        "href": f"/deployments/{view.key.project_id}/{view.key.name}",
        "kind": view.kind,
        "sync": r.sync.value,
        "health": r.health.value,
        "status": r.status or "",
        "regions": regions,
        "ready": sum(c["ready"] for c in regions),
        "revision": r.revision or "",
        "revision_short": (r.revision or "")[:10],
        "applied_at": r.last_applied_at or 0,
        "applied": when(r.last_applied_at, now),
        "message": r.message,
        "labels": labels,
        "owned": view.owned,
        "source": str(view.desired.source) if view.desired else "",
    }


def _counts(values: Iterable[str], order: Iterable[str]) -> list[tuple[str, int]]:
    counted = Counter(values)
    return [(value, counted.get(value, 0)) for value in order]


def source_text(service: Service) -> str:
    if isinstance(service.source, GitSource):
        return f"{redact_url(service.source.url, keep_path=True)}#{service.source.branch}"
    return service.source.describe()


def overview(service: Service, snap: Snapshot, now: float) -> dict[str, Any]:
    rows = [row(v, now) for v in snap.deployments]
    revision = service.good[1] if service.good else None
    link = None
    if revision and isinstance(service.source, GitSource):
        link = commit_url(service.source.url, revision)
    last = service.last
    summary = snap.plan.summary() if snap.plan else None
    return {
        "rows": rows,
        "sync_counts": _counts((r["sync"] for r in rows), (s.value for s in Sync)),
        "health_counts": _counts((r["health"] for r in rows), (h.value for h in Health)),
        "label_names": sorted({k for v in snap.deployments for k in v.labels}),
        "source": source_text(service),
        "revision": revision or "",
        "revision_link": link,
        "last": None
        if last is None
        else {
            "result": last.result,
            "at": when(last.at, now),
            "seconds": f"{last.seconds:.2f}",
            "errors": last.errors,
            "outcomes": sorted(last.outcomes.items()),
        },
        "reconciling": service.running_since is not None,
        "reconciles": service.runs,
        "ready": service.ready,
        "manifest_errors": [
            {"where": f"{e.file}:{e.line}", "path": e.path, "message": e.message}
            for e in service.manifest_errors
        ],
        "backoff": [
            (str(k), failures, max(0, round(until - time.monotonic())))
            for k, (failures, until) in sorted(service.backoff.items())
        ],
        "projects": None if service.projects is None else sorted(service.projects),
        "plan_summary": summary,
        "plan_error": snap.plan_error,
        "api_error": snap.api_error,
        "taken": when(snap.taken_at, now),
        "objects": [
            {
                "kind": o.key.kind.value,
                "project": o.key.project_id,
                "name": o.key.name,
                "sync": o.sync,
                "applied": when(o.last_applied_at, now),
                "message": o.message,
            }
            for o in snap.objects
        ],
    }


def field_changes(view: DeploymentView) -> list[dict[str, str]]:
    if view.change is None:
        return []
    out = []
    for change in view.change.changes:
        mark, text = field_line(change)
        out.append({"mark": mark, "text": text, "path": change.path})
    return out


def detail(view: DeploymentView, now: float) -> dict[str, Any]:
    sensitive = _sensitive_paths(view)
    desired = masked(view.desired.body(), sensitive) if view.desired else None
    live = None
    if view.live is not None:
        live = masked(view.live.spec_view, sensitive)
        live["status"] = view.live.status
        live["containers_status"] = [
            {
                "region_id": c.region_id,
                "ready": c.ready,
                "total": c.total,
                "error_message": c.error_message,
                "address": c.address,
            }
            for c in view.live.containers_status
        ]
    change = view.change
    return {
        "row": row(view, now),
        "annotations": sorted((view.desired.annotations if view.desired else {}).items()),
        "action": change.action.value if change else "",
        "reason": change.reason if change else "",
        "changes": field_changes(view),
        "desired": pretty(desired) if desired is not None else None,
        "live": pretty(live) if live is not None else None,
        "record_outcome": view.record.outcome if view.record else "",
        "record_message": view.record.message if view.record else "",
    }
