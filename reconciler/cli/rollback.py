"""`reconciler history NAME` and `reconciler rollback NAME --to REVISION PATH...`.

`history` lists a deployment's applies from the state store's journal, numbered; `rollback`
re-applies the spec recorded at one of them.

The history (the journal) keeps each applied spec with its secrets as keyed hashes, never their
values. So the spec is rebuilt from the record, and each secret is taken from the current
manifest (PATH...) only if it hashes to what was applied then; a secret that changed since is
an error naming its field. Then it is an apply of that one deployment: plan first, the same
confirmation and journal. A deployment applied by `serve` from git (its revisions are commit
SHAs) is rolled back by reverting the commit: the next sync would undo anything else.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from typing import TYPE_CHECKING, Any

from ..errors import ReconcilerError
from .common import (
    Subparsers,
    add_color_flag,
    add_execution_flags,
    add_target_flags,
    require_manifests,
    target_of,
)
from .inventory import (
    NotOwned,
    add_name,
    add_state_flag,
    open_inventory,
    resolve,
    table,
    when_applied,
)
from .manifests import add_secrets_from

if TYPE_CHECKING:
    from ..model import SpecPath
    from ..state import JournalEntry

SHA_LIKE = frozenset("0123456789abcdef")


def add_rollback(sub: Subparsers) -> None:
    p = sub.add_parser(
        "rollback",
        help="re-apply a spec from a deployment's history (plan first)",
        description="Re-apply the spec recorded at history number N (see `reconciler history`) "
        "or at a revision, taking secrets from the current manifests under PATH when they are "
        "unchanged. Under serve with git, revert the commit instead.",
    )
    p.add_argument("name", metavar="NAME", help="the deployment (NAME or PROJECT/NAME)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="the manifests (for its secrets)")
    p.add_argument(
        "--to", required=True, metavar="REVISION", help="a history number, or a revision"
    )
    p.add_argument("--project", type=int, metavar="P", help="its project, when NAME is not unique")
    p.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    add_color_flag(p)
    add_execution_flags(p)
    add_target_flags(p)
    add_secrets_from(p)
    p.set_defaults(func=_cmd_rollback, secrets_dir=None)


def _chosen(entries: list[JournalEntry], to: str) -> tuple[int, JournalEntry]:
    applied = [
        (n, e)
        for n, e in enumerate(entries, 1)
        if e.result in ("converged", "resumed") and "last_applied" in e.intent
    ]
    if to.isdigit() and int(to) <= len(entries):
        found = [(n, e) for n, e in applied if n == int(to)]
        if not found:
            raise ReconcilerError(f"history #{to} did not converge, or holds no spec; pick another")
        return found[0]
    found = [(n, e) for n, e in applied if str(e.intent.get("revision") or "").startswith(to)]
    if not found:
        raise ReconcilerError(f"--to {to}: no applied revision of that number or name")
    return found[-1]


def _put(body: dict[str, Any], path: SpecPath, value: Any) -> None:
    node: Any = body
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


def _get(body: Any, path: SpecPath) -> Any:
    for step in path:
        body = body[step]
    return body


def _cmd_rollback(args: argparse.Namespace) -> int:
    from types import MappingProxyType

    from .. import engine
    from ..diff import hashed
    from ..model import DesiredDeployment, DesiredState, Location
    from ..plan import PlanOptions
    from ..spec import DeploymentSpec
    from .applying import execute

    target = target_of(args)
    store = open_inventory(args.state)
    if store is None:
        raise ReconcilerError(f"{args.name}: no owned deployment of that name")
    try:
        key = resolve(args.name, args.project, list(store.records()))
        number, entry = _chosen(store.journal_history(key), args.to)
        hasher = store.hash_value
    finally:
        store.close()
    revision = str(entry.intent.get("revision") or "")
    if len(revision) >= 7 and set(revision) <= SHA_LIKE:
        raise ReconcilerError(
            f"{key} was applied from git (revision {revision[:12]}): revert the commit instead "
            f"(`git revert {revision[:12]}`); serve would undo any other change at its next sync"
        )
    current = engine.load(args.paths, target, secrets_from=args.secrets_from).by_key().get(key)
    if current is None:
        require_manifests(DesiredState((), 0), args.paths, allow_empty=False)
        raise ReconcilerError(f"{key}: no manifest under {', '.join(args.paths)} (for its secrets)")
    recorded: dict[str, Any] = copy.deepcopy(dict(entry.intent["last_applied"]))
    paths = frozenset(tuple(p) for p in entry.intent.get("sensitive_paths", []))
    now = current.spec.body()
    body = copy.deepcopy(recorded)
    missing = []
    for path in sorted(paths, key=str):
        try:
            _put(body, path, _get(now, path))
        except (KeyError, IndexError, TypeError):
            missing.append(".".join(map(str, path)))
    rebuilt = hashed(body, paths, hasher)
    changed = [
        ".".join(map(str, p))
        for p in sorted(paths, key=str)
        if ".".join(map(str, p)) not in missing and _get(rebuilt, p) != _get(recorded, p)
    ]
    if missing or changed:
        raise ReconcilerError(
            f"{key}: cannot rebuild history #{number}: its secret(s) "
            f"{', '.join(missing + changed)} differ in the manifest now (only their hashes are "
            "kept); restore the old values, or change the manifest instead"
        )
    desired = DesiredDeployment(
        key=key,
        spec=DeploymentSpec.model_validate(body),
        source=Location(f"history #{number}", 1),
        labels=MappingProxyType(dict(entry.intent.get("labels", {}))),
        annotations=MappingProxyType(dict(entry.intent.get("annotations", {}))),
        sensitive_paths=paths,
    )
    options = PlanOptions(targets=frozenset({str(key)}))
    asking = not args.auto_approve
    if asking and not sys.stdin.isatty():
        raise ReconcilerError(
            "refusing to roll back without confirmation: stdin is not a terminal; "
            "pass --auto-approve"
        )
    print(f"rolling {key} back to history #{number}", file=sys.stderr)
    return execute(args, target, DesiredState((desired,), 1), options, None, asking=asking)


# -- history -------------------------------------------------------------------------------------


def add_history(sub: Subparsers) -> None:
    p = sub.add_parser(
        "history",
        help="every recorded apply of one deployment: numbered, with outcome and time",
        description="List what was applied to one owned deployment, oldest first, numbered: "
        "the action, its result, the revision (a git SHA under serve) and when. Read from the "
        "state store's journal, which keeps every entry (one that did not apply drops its spec "
        "after 30 days).",
    )
    add_name(p)
    add_state_flag(p)
    p.add_argument("--format", choices=("text", "json"), default="text", help="(default text)")
    p.set_defaults(func=_cmd_history)


def _cmd_history(args: argparse.Namespace) -> int:
    store = open_inventory(args.state)
    if store is None:
        raise NotOwned(f"{args.name}: no owned deployment of that name (the inventory is empty)")
    try:
        key = resolve(args.name, args.project, list(store.records()))
        entries = store.journal_history(key)
    finally:
        store.close()
    rows = [
        {
            "number": number,
            "at": when_applied(entry.started_at),
            "action": entry.action,
            "result": entry.result or "in progress",
            "revision": entry.intent.get("revision"),
            "message": entry.message,
        }
        for number, entry in enumerate(entries, 1)
    ]
    if args.format == "json":
        print(json.dumps({"deployment": str(key), "history": rows}, indent=2))
        return 0
    if not rows:
        print(f"{key}: no recorded applies (imported, and not applied since)")
        return 0
    out: list[tuple[str, ...]] = [("#", "AT", "ACTION", "RESULT", "REVISION", "MESSAGE")]
    for row in rows:
        out.append(
            (
                str(row["number"]),
                str(row["at"]),
                str(row["action"]),
                str(row["result"]),
                str(row["revision"] or "-")[:12],
                str(row["message"]),
            )
        )
    print(table(out))
    return 0
