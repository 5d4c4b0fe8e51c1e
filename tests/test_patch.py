"""PATCH bodies: ordered steps for the auth switch, explicit nested objects, explicit resets."""

from __future__ import annotations

from typing import Any

from reconciler import facts, patch

BASE: dict[str, Any] = {
    "image": "nginx:latest",
    "flavor_name": "f",
    "listening_port": 80,
    "containers": [{"region_id": 1, "scale": {"min": 1, "max": 3}}],
}


def test_keys_to_auth_enabled_takes_two_patches_in_order() -> None:
    desired = {**BASE, "auth_enabled": True, "image": "nginx:2"}
    live = {"api_keys": ["k"], "auth_enabled": True}
    steps = patch.steps(["api_keys", "image"], desired, live)
    assert steps == (("api_keys", "image"), ("auth_enabled",))
    assert [patch.body(desired, s) for s in steps] == [
        {"api_keys": [], "image": "nginx:2"},
        {"auth_enabled": True},
    ]


def test_keys_to_auth_disabled_is_one_patch_clearing_the_keys() -> None:
    desired = {**BASE, "auth_enabled": False}
    steps = patch.steps(["api_keys"], desired, {"api_keys": ["k"]})
    assert steps == (("api_keys",),)


def test_the_flag_alone_cannot_turn_auth_off_while_keys_are_attached() -> None:
    desired = {**BASE, "auth_enabled": True}
    steps = patch.steps(["auth_enabled"], desired, {"api_keys": ["k"]})
    assert steps == (("api_keys",), ("auth_enabled",))


def test_auth_enabled_to_keys_sends_only_the_keys() -> None:
    desired = {**BASE, "api_keys": ["k"]}
    steps = patch.steps(["api_keys", "auth_enabled"], desired, {"auth_enabled": True})
    assert steps == (("api_keys",),)
    assert patch.steps(["auth_enabled"], {**BASE, "api_keys": []}, {}) == (("api_keys",),)


def test_never_both_auth_fields_in_one_body() -> None:
    for desired in ({**BASE, "auth_enabled": True}, {**BASE, "api_keys": ["k"]}, BASE):
        for live in ({}, {"api_keys": ["k"]}):
            for step in patch.steps(["api_keys", "auth_enabled", "image"], desired, live):
                assert not {"api_keys", "auth_enabled"} <= set(step), (desired, live, step)


def test_a_removed_probe_is_sent_disabled_and_a_kept_one_explicit() -> None:
    desired = {
        **BASE,
        "probes": {"readiness_probe": {"enabled": True, "probe": {"exec": {"command": ["ok"]}}}},
    }
    sent = patch.body(desired, ["probes"])["probes"]
    assert sent["liveness_probe"] == {"enabled": False}
    assert sent["startup_probe"] == {"enabled": False}
    probe = sent["readiness_probe"]["probe"]
    assert probe["exec"] == {"command": ["ok"]}
    assert probe["http_get"] is None and probe["tcp_socket"] is None
    assert probe["timeout_seconds"] == facts.PROBE_TIMINGS["timeout_seconds"] == 3
    # probes dropped from the manifest entirely: every probe goes disabled
    assert patch.body(BASE, ["probes"])["probes"] == {
        key: {"enabled": False} for key in facts.PROBE_KEYS
    }


def test_triggers_and_scale_defaults_are_explicit() -> None:
    desired = {
        **BASE,
        "containers": [
            {"region_id": 1, "scale": {"min": 1, "max": 3, "triggers": {"cpu": {"threshold": 50}}}}
        ],
    }
    [container] = patch.body(desired, ["containers"])["containers"]
    assert container["scale"]["triggers"] == {
        **dict.fromkeys(facts.TRIGGER_KEYS),
        "cpu": {"threshold": 50},
    }
    assert container["scale"]["cooldown_period"] == 60
    assert container["scale"]["polling_interval"] == 30


def test_removed_logging_settings_are_sent_explicitly() -> None:
    desired = {**BASE, "logging": {"enabled": True}}
    assert patch.body(desired, ["logging"])["logging"] == {
        "enabled": True,
        "destination_region_id": None,
        "topic_name": None,
        "retention_policy": None,
    }
    assert patch.body(BASE, ["logging", "description", "envs"]) == {
        "logging": {
            "enabled": False,
            "destination_region_id": None,
            "topic_name": None,
            "retention_policy": None,
        },
        "description": None,
        "envs": {},
    }
