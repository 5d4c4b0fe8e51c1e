"""Object plans (write-only by recorded hash, PUT vs PATCH vs replace, waves, references) and the
object executor against the simulator (API key secrets in 0600 files, records without secrets)."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

from reconciler.api import ApiClient
from reconciler.config import ApiSettings, Secret
from reconciler.diff import SENSITIVE, hashed
from reconciler.kinds import DesiredObject, Kind, ObjectKey
from reconciler.manifests import load_manifests
from reconciler.model import DeploymentKey, LiveDeployment
from reconciler.objects_apply import ObjectExecutor, fetch_live_objects, users_of
from reconciler.objects_plan import (
    WRITE_ONLY_NOTE,
    LiveObject,
    ObjectAction,
    ObjectReason,
    ObjectRecord,
    check_references,
    plan_objects,
    refused_deletes,
    with_waves,
)
from reconciler.simulator import transport
from reconciler.state.objects import ObjectRecords

from .conftest import API_KEY, ManualClock, make_simulator

CANARY = "canary-N4xr8TbE"
SETTINGS = ApiSettings(base_url="http://api.test", api_key=Secret(API_KEY), project_id=1)


def hasher(value: Any) -> str:
    return "hmac-sha256:" + hashlib.sha256(repr(value).encode()).hexdigest()


def objects(tmp_path: Path, password: str, description: str = "clients") -> list[DesiredObject]:
    (tmp_path / "all.yaml").write_text(f"""\
apiVersion: reconciler/v1
kind: InferenceRegistryCredential
metadata: {{name: ghcr-bot, project_id: 1}}
spec: {{registry_url: ghcr.io, username: bot, password: "${{PW}}"}}
---
apiVersion: reconciler/v1
kind: InferenceApiKey
metadata: {{name: search-clients, project_id: 1}}
spec: {{description: {description}}}
""")
    state, errors = load_manifests([tmp_path], env={"PW": password})
    assert errors == []
    return list(state.objects)


def record_of(obj: DesiredObject) -> ObjectRecord:
    body = hashed(obj.spec.body(), obj.sensitive_paths, hasher)
    return ObjectRecord(obj.key, body, 1.0, obj.sensitive_paths)


def live_of(obj: DesiredObject) -> LiveObject:
    body = obj.spec.body()
    body.pop("password", None)
    return LiveObject(obj.key, body)


def test_a_write_only_change_is_found_through_the_recorded_hash(tmp_path: Path) -> None:
    before = objects(tmp_path, CANARY)
    after = objects(tmp_path, CANARY + "-rotated")
    records = {o.key: record_of(o) for o in before}
    live = {o.key: live_of(o) for o in before}

    same = plan_objects(before, records, live, hasher)
    changed = plan_objects(after, records, live, hasher)

    assert [c.action for c in same] == [ObjectAction.NOOP, ObjectAction.NOOP]
    key, cred = changed
    assert key.action is ObjectAction.NOOP
    assert cred.action is ObjectAction.UPDATE and cred.reason == "manifest changed"
    [field] = cred.changes
    assert (field.path, field.before, field.after) == ("password", SENSITIVE, WRITE_ONLY_NOTE)
    assert CANARY not in repr(changed)


def test_api_keys_patch_the_description_and_replace_for_anything_else(tmp_path: Path) -> None:
    base = objects(tmp_path, CANARY)
    records = {o.key: record_of(o) for o in base}
    live = {o.key: live_of(o) for o in base}
    key = ObjectKey(Kind.API_KEY, 1, "search-clients")
    live[key] = LiveObject(key, {"description": "clients", "expires_at": None})

    described = plan_objects(objects(tmp_path, CANARY, "new words"), records, live, hasher)
    objects(tmp_path, CANARY)
    (tmp_path / "all.yaml").write_text(
        (tmp_path / "all.yaml")
        .read_text()
        .replace(
            "{description: clients}", '{description: clients, expires_at: "2027-01-01T00:00:00Z"}'
        )
    )
    expiring = list(load_manifests([tmp_path], env={"PW": CANARY})[0].objects)
    replaced = plan_objects(expiring, records, live, hasher)

    assert described[0].action is ObjectAction.UPDATE
    assert replaced[0].action is ObjectAction.REPLACE and replaced[0].action.symbol == "-/+"
    assert replaced[0].reason is ObjectReason.REPLACE and not replaced[0].reason.is_drift
    assert replaced[0].why == "only description changes in place: expires_at"


def test_waves_orphans_and_refusals(tmp_path: Path) -> None:
    desired = objects(tmp_path, CANARY)
    gone = ObjectRecord(ObjectKey(Kind.SECRET, 1, "old-secret"), {"type": "aws-iam"}, 1.0)
    live = {gone.key: LiveObject(gone.key, {"type": "aws-iam", "data": {}})}

    kept = plan_objects(desired, {gone.key: gone}, live, hasher)
    pruned = with_waves(plan_objects(desired, {gone.key: gone}, live, hasher, prune=True))

    assert [c.action for c in kept] == [ObjectAction.CREATE, ObjectAction.CREATE, ObjectAction.NOOP]
    assert [(c.action, c.wave) for c in pruned] == [
        (ObjectAction.CREATE, 1),
        (ObjectAction.CREATE, 1),
        (ObjectAction.DELETE, 3),  # after the deployments' wave 2
    ]
    users = {gone.key: ["search-api"]}
    assert refused_deletes(pruned, users) == [
        "refusing to delete secret 1/old-secret: still used by deployment(s) search-api"
    ]
    assert refused_deletes(pruned, {}) == []


def test_users_come_from_live_deployment_answers() -> None:
    sqs = {"secret_name": "sqs-reader"}
    answer = {
        "name": "search-api",
        "credentials_name": "ghcr-bot",
        "api_keys": ["k-one", "k-two"],
        "containers": [{"region_id": 1, "scale": {"min": 1, "max": 1, "triggers": {"sqs": sqs}}}],
    }
    live = {DeploymentKey(1, "search-api"): LiveDeployment.from_answer(1, answer)}

    users = users_of(live)

    assert users == {
        ObjectKey(Kind.REGISTRY_CREDENTIAL, 1, "ghcr-bot"): ["search-api"],
        ObjectKey(Kind.API_KEY, 1, "k-one"): ["search-api"],
        ObjectKey(Kind.API_KEY, 1, "k-two"): ["search-api"],
        ObjectKey(Kind.SECRET, 1, "sqs-reader"): ["search-api"],
    }
    assert check_references([], [], []) == []


async def test_executor_applies_records_and_writes_key_secrets(
    tmp_path: Path, clock: ManualClock
) -> None:
    sim = make_simulator(clock)
    manifests = tmp_path / "m"
    manifests.mkdir()
    desired = {o.key: o for o in objects(manifests, CANARY)}
    store = ObjectRecords(tmp_path / "state.db")
    secrets = tmp_path / "secrets"
    async with ApiClient(SETTINGS, transport=transport(sim)) as api:
        run = ObjectExecutor(api, store, desired, hasher, secrets, clock)
        changes = with_waves(plan_objects(desired.values(), store.records(), {}, hasher))
        outcomes = await run.run(changes)
        live = await fetch_live_objects(api, [1])
        again = plan_objects(desired.values(), store.records(), live, hasher)

    assert all(o.ok for o in outcomes), outcomes
    [with_secret] = [o for o in outcomes if o.secret_file]
    path = Path(with_secret.secret_file or "")
    assert path == secrets / "1" / "search-clients"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text().startswith("sk-")
    assert [c.action for c in again] == [ObjectAction.NOOP, ObjectAction.NOOP]
    assert CANARY.encode() not in (tmp_path / "state.db").read_bytes()
    assert path.read_text().strip().encode() not in (tmp_path / "state.db").read_bytes()


def test_markdown_and_text_plans_list_objects_with_their_waves(tmp_path: Path) -> None:
    from dataclasses import replace

    from reconciler.plan import Plan
    from reconciler.render import render_markdown, render_text

    desired = objects(tmp_path, CANARY)
    changes = with_waves(plan_objects(desired, {}, {}, hasher))
    plan = replace(Plan((), "sha256:0"), objects=tuple(changes))

    text = render_text(plan)
    markdown = render_markdown(plan)

    assert "  + registry credential 1/ghcr-bot  create (new)" in text
    assert "| `+` | `registry credential 1/ghcr-bot` | create | new | 0 |" in markdown
    assert "Plan: 2 to create" in text and CANARY not in text + markdown


def test_reasons_are_named_words_with_predicates(tmp_path: Path) -> None:
    desired = objects(tmp_path, CANARY)
    records = {o.key: record_of(o) for o in desired}
    cred = ObjectKey(Kind.REGISTRY_CREDENTIAL, 1, "ghcr-bot")
    key = ObjectKey(Kind.API_KEY, 1, "search-clients")
    gone = ObjectRecord(ObjectKey(Kind.SECRET, 1, "old-secret"), {"type": "aws-iam"}, 1.0)
    live = {o.key: live_of(o) for o in desired}
    live[cred] = LiveObject(cred, {**live[cred].view, "username": "someone-else"})
    del live[key]

    planned = plan_objects(desired, {**records, gone.key: gone}, live, hasher)
    edited, missing, orphan = (
        next(c for c in planned if c.key == k) for k in (cred, key, gone.key)
    )
    new = plan_objects(desired, {}, {}, hasher)

    assert (edited.action, edited.reason) == (ObjectAction.UPDATE, ObjectReason.DRIFT)
    assert (missing.action, missing.reason) == (ObjectAction.CREATE, ObjectReason.DRIFT_MISSING)
    assert edited.reason.is_drift and missing.reason.is_drift
    assert orphan.reason is ObjectReason.ORPHAN_KEPT and orphan.reason.is_orphan
    assert not orphan.reason.is_drift
    assert [c.reason for c in new] == [ObjectReason.NEW, ObjectReason.NEW]
    assert edited.why == "drift" and str(ObjectReason.IN_SYNC) == "in sync"


async def test_a_run_cut_short_before_its_records_is_taken_up_by_the_next_plan(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Object requests are not journaled: each is one synchronous request, so the next plan's
    pairing is the recovery. Requests that took effect with no record written (the process
    died in between) are adopted; an adopted API key says its secret is not to be had."""
    sim = make_simulator(clock)
    manifests = tmp_path / "m"
    manifests.mkdir()
    desired = {o.key: o for o in objects(manifests, CANARY)}
    async with ApiClient(SETTINGS, transport=transport(sim)) as api:
        lost = ObjectRecords(tmp_path / "lost.db")  # the records of the run that died
        cut = ObjectExecutor(api, lost, desired, hasher, tmp_path / "lost-secrets", clock)
        await cut.run(with_waves(plan_objects(desired.values(), {}, {}, hasher)))
        store = ObjectRecords(tmp_path / "state.db")
        live = await fetch_live_objects(api, [1])
        resumed = with_waves(plan_objects(desired.values(), store.records(), live, hasher))
        run = ObjectExecutor(api, store, desired, hasher, tmp_path / "secrets", clock)
        outcomes = {o.key.kind: o for o in await run.run(resumed)}
        live = await fetch_live_objects(api, [1])
        again = plan_objects(desired.values(), store.records(), live, hasher)

    assert [c.action for c in resumed] == [ObjectAction.ADOPT, ObjectAction.ADOPT]
    assert all(o.ok for o in outcomes.values())
    assert outcomes[Kind.API_KEY].message == (
        "adopted; its secret is not available (reconciler rotate-key)"
    )
    assert not (tmp_path / "secrets").exists()
    assert [c.action for c in again] == [ObjectAction.NOOP, ObjectAction.NOOP]
