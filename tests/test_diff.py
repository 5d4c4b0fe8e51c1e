"""The three-way diff: no noise from the API's answers, exact paths, removals, secrets."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reconciler import patch
from reconciler.diff import (
    SENSITIVE,
    FieldChange,
    creation,
    diff,
    full_diff,
    hashed,
    patch_fields,
)
from reconciler.insync import in_sync
from reconciler.model import LiveDeployment
from reconciler.simulator import Cloud, SimulatorConfig
from reconciler.simulator.objects import StoredObject, references
from reconciler.simulator.shapes import deployment_view
from reconciler.spec import DeploymentSpec

from .strategies import specs


def hasher(value: Any) -> str:
    return "hmac-sha256:" + hashlib.sha256(json.dumps(value).encode()).hexdigest()


def live_of(body: dict[str, Any], status: str = "ACTIVE") -> dict[str, Any]:
    """What the API answers for a deployment created with `body`: its spec view."""
    view = deployment_view(
        1,
        "some-name",
        body,
        status=status,
        created_at="2026-01-01T00:00:00Z",
        address="https://x",
        containers=[
            {
                "address": "https://c",
                "deploy_status": {"ready": 1, "total": 1},
                "error_message": None,
            }
            for _ in body["containers"]
        ],
    )
    return dict(LiveDeployment.from_answer(1, view).spec_view)


BASE: dict[str, Any] = {
    "image": "nginx:latest",
    "flavor_name": "f",
    "listening_port": 80,
    "containers": [{"region_id": 1, "scale": {"min": 1, "max": 3, "cooldown_period": 60}}],
    "command": ["nginx", "-g", "daemon off;"],
    "envs": {"TOKEN": "s3cret"},
}


def paths(changes: list[FieldChange]) -> list[str]:
    return [c.path for c in changes]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=specs())
def test_the_apis_answer_for_any_spec_is_no_diff(body: dict[str, Any]) -> None:
    spec = DeploymentSpec.model_validate(body)
    desired = spec.body()
    assert diff(desired, live_of(desired)) == []
    # and with itself as the last-applied record, still nothing
    assert diff(desired, live_of(desired), last_applied=desired, hasher=hasher) == []


def test_a_plain_value_that_only_starts_like_a_hash_is_compared_as_itself() -> None:
    # found by the property above: a recorded hash is the prefix and 64 hex digits; a value
    # that merely starts with the prefix is a value, not a hash to check the live one against
    desired = DeploymentSpec.model_validate({**BASE, "description": "hmac-sha256:"}).body()
    assert diff(desired, live_of(desired), last_applied=desired, hasher=hasher) == []


@settings(max_examples=100, deadline=None)
@given(body=specs(), port=st.integers(1, 65535), image=st.text(min_size=1, max_size=5))
def test_any_changed_field_is_found_exactly(body: dict[str, Any], port: int, image: str) -> None:
    desired = DeploymentSpec.model_validate(body).body()
    live = live_of(desired)
    assume(port != desired["listening_port"] and image != desired["image"])
    changed = {**desired, "listening_port": port, "image": image}
    assert diff(changed, live) == [
        FieldChange("image", desired["image"], image),
        FieldChange("listening_port", desired["listening_port"], port),
    ]


def test_a_changed_field_has_its_path_and_values() -> None:
    live = live_of(BASE)
    wanted = {**BASE, "image": "nginx:1.27", "listening_port": 8080}
    changes = diff(wanted, live)
    assert changes == [
        FieldChange("image", "nginx:latest", "nginx:1.27"),
        FieldChange("listening_port", 80, 8080),
    ]
    assert patch_fields(changes) == ("image", "listening_port")


def test_containers_are_matched_by_region() -> None:
    live = live_of(
        {
            **BASE,
            "containers": [
                {"region_id": 2, "scale": {"min": 1, "max": 1}},
                {"region_id": 1, "scale": {"min": 1, "max": 3}},
            ],
        }
    )
    wanted = {
        **BASE,
        "containers": [
            {"region_id": 1, "scale": {"min": 1, "max": 5}},
            {"region_id": 3, "scale": {"min": 0, "max": 1}},
        ],
    }
    changes = diff(wanted, live)
    assert paths(changes) == [
        "containers[region_id=1].scale.max",
        "containers[region_id=2]",
        "containers[region_id=3]",
    ]
    assert changes[0].before == 3 and changes[0].after == 5
    assert changes[1].after is None and changes[2].before is None
    assert patch_fields(changes) == ("containers",)


def test_command_compares_as_the_joined_string() -> None:
    live = live_of(BASE)
    assert live["command"] == "nginx -g daemon off;"
    changes = diff({**BASE, "command": ["nginx", "-g", "daemon on;"]}, live)
    assert changes == [FieldChange("command", "nginx -g daemon off;", "nginx -g daemon on;")]


def test_null_means_the_apis_default() -> None:
    live = live_of(BASE)
    assert diff({**BASE, "description": None, "timeout": None}, live) == []
    drifted = {**live, "description": "edited by hand", "timeout": 30}
    changes = diff({**BASE, "description": None, "timeout": None}, drifted)
    assert changes == [
        FieldChange("description", "edited by hand", ""),
        FieldChange("timeout", 30, 120),
    ]


def test_an_unknown_server_default_never_shows() -> None:
    body = {**BASE, "containers": [{"region_id": 1, "scale": {"min": 1, "max": 3}}]}
    live = live_of(body)
    live["containers"][0]["scale"]["cooldown_period"] = 777  # whatever the server picked
    assert diff(body, live) == []


def test_sensitive_values_compare_but_never_show() -> None:
    live = live_of(BASE)
    changes = diff({**BASE, "envs": {"TOKEN": "n3w"}}, live)
    assert changes == [FieldChange("envs.TOKEN", SENSITIVE, SENSITIVE, True)]
    added = diff({**BASE, "envs": {"TOKEN": "s3cret", "MORE": "x"}}, live)
    assert added == [FieldChange("envs.MORE", None, SENSITIVE, True)]
    interpolated = diff({**BASE, "image": "private/img:2"}, live, sensitive=frozenset({("image",)}))
    assert interpolated == [FieldChange("image", SENSITIVE, SENSITIVE, True)]


def test_a_field_dropped_from_the_manifest_goes_back_to_its_default() -> None:
    last = {**BASE, "timeout": 300, "description": "old"}
    live = live_of(last)
    changes = diff(BASE, live, last_applied=last, hasher=hasher)
    assert changes == [
        FieldChange("timeout", 300, 120),
        FieldChange("description", "old", ""),
    ]


def test_a_dropped_field_goes_back_to_the_known_server_default() -> None:
    body = {**BASE, "containers": [{"region_id": 1, "scale": {"min": 1, "max": 3}}]}
    live = live_of(
        {
            **BASE,
            "containers": [{"region_id": 1, "scale": {"min": 1, "max": 3, "cooldown_period": 300}}],
        }
    )
    changes = diff(
        body, live, last_applied={**BASE, "containers": live["containers"]}, hasher=hasher
    )
    assert changes == [FieldChange("containers[region_id=1].scale.cooldown_period", 300, 60)]
    # already at the default (60, as in BASE): nothing to do
    assert diff(body, live_of(BASE), last_applied=BASE, hasher=hasher) == []


def test_a_dropped_secret_is_compared_by_hash() -> None:
    last = hashed({**BASE, "description": "s3cret"}, [("description",)], hasher)
    live = live_of({**BASE, "description": "s3cret"})
    changes = diff(
        BASE, live, last_applied=last, record_sensitive=frozenset({("description",)}), hasher=hasher
    )
    assert changes == [FieldChange("description", SENSITIVE, SENSITIVE, True)]
    # the recorded hash also matches the answer: a record against live is in sync
    assert diff(last, live, sensitive=frozenset({("description",)}), hasher=hasher) == []


def test_creation_lists_every_field_set() -> None:
    changes = creation(BASE)
    assert paths(changes) == [
        "image",
        "flavor_name",
        "listening_port",
        "containers[region_id=1].scale.min",
        "containers[region_id=1].scale.max",
        "containers[region_id=1].scale.cooldown_period",
        "command",
        "envs.TOKEN",
    ]
    assert changes[-1] == FieldChange("envs.TOKEN", None, SENSITIVE, True)


def test_hashed_replaces_only_sensitive_leaves() -> None:
    result = hashed(BASE, [("command", 2)], hasher)
    assert result["image"] == "nginx:latest"
    assert result["envs"]["TOKEN"].startswith("hmac-sha256:")
    # a sensitive command element: the whole command is hashed, as the API's joined string
    assert result["command"] == hasher("nginx -g daemon off;")
    assert hashed(BASE, [], hasher)["command"] == BASE["command"]
    assert "s3cret" not in json.dumps(result)


# -- fidelity: every answer shape the SDK allows, both PATCH semantics ---------------------------


def cloud_view(cloud: Cloud) -> dict[str, Any]:
    return dict(LiveDeployment.from_answer(1, cloud.view(cloud.get(1, "some-name"))).spec_view)


def apply_update(
    cloud: Cloud, desired: dict[str, Any], last: dict[str, Any]
) -> list[dict[str, Any]]:
    """What the executor sends to bring `cloud` from `last` to `desired`: ordered PATCHes."""
    live = cloud_view(cloud)
    fields = patch_fields(diff(desired, live, last_applied=last))
    bodies = [patch.body(desired, step) for step in patch.steps(fields, desired, live)]
    for body in bodies:
        cloud.update(1, "some-name", json.loads(json.dumps(body)), "req")
    return bodies


def with_references(cloud: Cloud, *bodies: dict[str, Any]) -> None:
    """Store the credentials, secrets and API keys the bodies name (the cloud checks them)."""
    for body in bodies:
        for collection, name, _ in references(body):
            cloud.objects.put(StoredObject(collection, 1, name, {"name": name}))


def new_cloud(body: dict[str, Any], *others: dict[str, Any], **config: Any) -> Cloud:
    cloud = Cloud(SimulatorConfig(**config), clock=lambda: 0.0)
    with_references(cloud, body, *others)
    cloud.create(1, {"name": "some-name", **json.loads(json.dumps(body))}, "req")
    return cloud


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=specs(), command_as_list=st.booleans())
def test_any_answer_shape_the_sdk_allows_is_no_diff(
    body: dict[str, Any], command_as_list: bool
) -> None:
    desired = DeploymentSpec.model_validate(body).body()
    for sparse in (False, True):
        view = cloud_view(new_cloud(desired, sparse_answers=sparse))
        if command_as_list and isinstance(view.get("command"), str):
            view["command"] = desired["command"]  # the list a docs example shows
        assert diff(desired, view) == [], (sparse, view)
        assert diff(desired, view, last_applied=desired, hasher=hasher) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=specs(), after=specs(), merge=st.booleans())
def test_an_update_converges_under_both_patch_semantics(
    before: dict[str, Any], after: dict[str, Any], merge: bool
) -> None:
    last = DeploymentSpec.model_validate(before).body()
    desired = DeploymentSpec.model_validate(after).body()
    cloud = new_cloud(last, desired, patch_merge=merge)
    bodies = apply_update(cloud, desired, last)
    assert all(not ("api_keys" in b and "auth_enabled" in b) for b in bodies)
    live = cloud_view(cloud)
    assert diff(desired, live, last_applied=last) == []
    assert diff(desired, live) == []
    assert diff(desired, live, last_applied=desired) == []  # the plan after the apply: empty


def test_null_answers_equal_the_known_defaults() -> None:
    live = live_of(BASE)
    nulls = {**live, "timeout": None, "description": None, "credentials_name": None}
    nulls |= {"logging": None, "ingress_opts": None, "api_keys": None, "probes": None}
    wanted = {
        **BASE,
        "timeout": 120,
        "description": "",
        "logging": {"enabled": False},
        "ingress_opts": {"disable_response_buffering": False},
        "api_keys": [],
    }
    assert diff(wanted, nulls) == []
    assert diff({**wanted, "timeout": 30}, nulls) == [FieldChange("timeout", 120, 30)]


def test_api_keys_compare_as_a_set() -> None:
    live = live_of({**BASE, "api_keys": ["b", "a"]})
    assert diff({**BASE, "api_keys": ["a", "b"]}, live) == []
    assert diff({**BASE, "api_keys": ["a", "c"]}, live) == [
        FieldChange("api_keys", ["a", "b"], ["a", "c"])
    ]


def test_auth_enabled_is_not_compared_while_keys_are_attached() -> None:
    live = live_of({**BASE, "api_keys": ["k"]})  # the server reports auth_enabled true
    assert live["auth_enabled"] is True
    # keys -> auth_enabled: true: the keys go; auth is not a change (it reads true already)
    changes = diff({**BASE, "auth_enabled": True}, live, last_applied={**BASE, "api_keys": ["k"]})
    assert changes == [FieldChange("api_keys", ["k"], [])]
    # auth_enabled -> keys: only the keys change, the old flag is not reset beside them
    flagged = live_of({**BASE, "auth_enabled": True})
    changes = diff(
        {**BASE, "api_keys": ["k"]}, flagged, last_applied={**BASE, "auth_enabled": True}
    )
    assert changes == [FieldChange("api_keys", [], ["k"])]
    # an explicit empty list turns auth off
    assert paths(diff({**BASE, "api_keys": []}, flagged)) == ["auth_enabled"]


def test_a_disabled_probe_is_no_probe() -> None:
    probe = {"enabled": True, "probe": {"tcp_socket": {"port": 80}}}
    live = live_of({**BASE, "probes": {"liveness_probe": {**probe, "enabled": False}}})
    assert diff({**BASE, "probes": {"liveness_probe": {"enabled": False}}}, live) == []
    last = {**BASE, "probes": {"liveness_probe": probe}}
    assert diff(BASE, live, last_applied=last) == []  # removed, and disabled: done
    assert paths(diff(BASE, live_of(last), last_applied=last)) == ["probes.liveness_probe"]


# -- the shortcut (reconciler.insync) never disagrees with the full diff ------------------------


# 100 examples: each checks 15 (live, record) pairs, and the answers the shortcut must leave to
# the full diff are listed one by one below (300 took 9 s of CPU, an eighth of the quick suite)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=specs(), after=specs(), merge=st.booleans(), sparse=st.booleans())
def test_the_shortcut_agrees_with_the_full_diff(
    before: dict[str, Any], after: dict[str, Any], merge: bool, sparse: bool
) -> None:
    last = DeploymentSpec.model_validate(before).body()
    desired = DeploymentSpec.model_validate(after).body()
    cloud = new_cloud(last, desired, patch_merge=merge, sparse_answers=sparse)
    as_is = hashed(desired, [], hasher)  # the record of applying this very manifest
    for live in (cloud_view(cloud), live_of(desired), live_of(last)):
        for record in (None, last, desired, as_is):
            if in_sync(desired, live, record):
                assert full_diff(desired, live, last_applied=record, hasher=hasher) == []
            assert diff(desired, live, last_applied=record, hasher=hasher) == full_diff(
                desired, live, last_applied=record, hasher=hasher
            )
        assert diff(
            desired, live, last_applied=as_is, hasher=hasher, recorded_as_is=True
        ) == full_diff(desired, live, last_applied=as_is, hasher=hasher)


def test_the_shortcut_takes_the_usual_in_sync_answer() -> None:
    live = live_of(BASE)
    assert in_sync(BASE, live, BASE)
    assert in_sync(BASE, live, None)


@pytest.mark.parametrize(
    ("desired", "live", "last"),
    [
        ({**BASE, "timeout": 120}, {**live_of(BASE), "timeout": None}, None),  # null: default
        ({**BASE, "api_keys": ["k"]}, live_of({**BASE, "api_keys": ["k"]}), None),  # auth rule
        (BASE, live_of(BASE), {**BASE, "timeout": 30}),  # dropped: goes back to its default
        ({**BASE, "command": ["a"]}, {**live_of(BASE), "command": ["a"]}, None),  # a list answer
        ({**BASE, "command": []}, {**live_of(BASE), "command": ""}, None),  # "" is no command
        (  # a region the manifest no longer names
            BASE,
            live_of(
                {
                    **BASE,
                    "containers": [
                        *BASE["containers"],
                        {"region_id": 2, "scale": {"min": 0, "max": 1}},
                    ],
                }
            ),
            None,
        ),
        ({**BASE, "envs": {"A": "1"}}, live_of({**BASE, "envs": {"A": "1", "B": "2"}}), None),
        (
            {**BASE, "image": "hmac-sha256:" + "0" * 64},
            {**live_of(BASE), "image": "hmac-sha256:" + "0" * 64},
            None,
        ),
    ],
)
def test_the_shortcut_leaves_these_to_the_full_diff(
    desired: dict[str, Any], live: dict[str, Any], last: dict[str, Any] | None
) -> None:
    assert not in_sync(desired, live, last)
    assert diff(desired, live, last_applied=last, hasher=hasher) == full_diff(
        desired, live, last_applied=last, hasher=hasher
    )


def _hashed_by_walking_everything(
    body: dict[str, Any], sensitive: list[tuple[str | int, ...]]
) -> dict[str, Any]:
    """The plain definition of `hashed`: every path visited, each sensitive one hashed."""
    paths = {tuple(p) for p in sensitive} | {("envs", k) for k in (body.get("envs") or {})}

    def walk(value: Any, path: tuple[str | int, ...]) -> Any:
        if path in paths:
            return hasher(value)
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        return value

    result: dict[str, Any] = walk(body, ())
    if isinstance(body.get("command"), list) and any(p[:1] == ("command",) for p in paths):
        result["command"] = hasher(" ".join(body["command"]))
    return result


def _paths_of(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [path] if path else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths_of(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths_of(v, (*path, i))
    return found


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=specs(), data=st.data())
def test_hashed_is_the_walk_over_every_path(body: dict[str, Any], data: st.DataObject) -> None:
    desired = DeploymentSpec.model_validate(body).body()
    every = _paths_of(desired)
    sensitive = data.draw(st.lists(st.sampled_from(every), max_size=4)) if every else []
    result = hashed(desired, sensitive, hasher)
    assert result == _hashed_by_walking_everything(desired, sensitive)
    assert result is not desired  # a copy: changing it leaves the body alone
    if isinstance(desired.get("containers"), list):
        assert result["containers"] is not desired["containers"]


def test_is_mapping_is_isinstance_mapping() -> None:
    """The shortcut and `hashed` skip the ABC check for plain JSON types only."""
    from collections import OrderedDict, UserDict
    from collections.abc import Mapping
    from types import MappingProxyType

    from reconciler.insync import is_mapping

    class Text(str):
        pass

    class Table(dict):  # type: ignore[type-arg]
        pass

    values: list[object] = [
        {},
        {"a": 1},
        MappingProxyType({"a": 1}),
        OrderedDict(a=1),
        UserDict(a=1),
        Table(a=1),
        "a",
        Text("a"),
        1,
        True,
        1.5,
        None,
        [],
        (),
        [{"a": 1}],
        frozenset(),
    ]
    for value in values:
        assert is_mapping(value) is isinstance(value, Mapping), value


def test_hashed_leaves_nothing_for_the_garbage_collector() -> None:
    """A plan hashes every desired body: a reference cycle per call would pile up (10,000 per
    plan of 10,000) until a collection walks them."""
    import gc

    from reconciler.diff import hashed

    body = {"envs": {"TOKEN": "x"}, "image": "a", "containers": [{"region_id": 1}]}
    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            hashed(body, frozenset({("image",)}), lambda v: f"h:{v}")
        assert gc.collect() == 0
    finally:
        gc.enable()
