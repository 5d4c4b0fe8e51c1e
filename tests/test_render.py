"""Plan output: text like terraform, Markdown for pull requests, JSON per the contract."""

from __future__ import annotations

import json

from reconciler.diff import FieldChange
from reconciler.model import DeploymentKey
from reconciler.plan import Action, Change, Plan, Reason
from reconciler.render import MARKDOWN_LIMIT, render_json, render_markdown, render_text


def sample() -> Plan:
    return Plan(
        (
            Change(
                DeploymentKey(1, "new-svc"),
                Action.CREATE,
                Reason.NEW,
                (FieldChange("image", None, "nginx:latest"),),
                "m/new.yaml:1",
            ),
            Change(
                DeploymentKey(1, "old-svc"),
                Action.UPDATE,
                Reason.DRIFT,
                (
                    FieldChange("containers[region_id=1].scale.max", 3, 5),
                    FieldChange("envs.TOKEN", "(sensitive)", "(sensitive)", True),
                    FieldChange("timeout", 300, None),
                ),
                "m/old.yaml:1",
                ("containers", "envs", "timeout"),
            ),
            Change(DeploymentKey(1, "gone-svc"), Action.DELETE, Reason.ORPHAN),
            Change(DeploymentKey(2, "found-svc"), Action.ADOPT, Reason.ADOPT, (), "m/f.yaml:3"),
            Change(DeploymentKey(2, "same-svc"), Action.NOOP, Reason.IN_SYNC, (), "m/s.yaml:1"),
        ),
        "sha256:abc",
        None,
    )


def test_text_reads_like_terraform() -> None:
    text = render_text(sample())
    assert text.splitlines() == [
        "reconciler will:",
        "",
        "  + 1/new-svc  create (new)  m/new.yaml:1",
        '      + image: "nginx:latest"',
        "  ~ 1/old-svc  update (drift: containers, envs, timeout)  m/old.yaml:1",
        "      ~ containers[region_id=1].scale.max: 3 -> 5",
        "      ~ envs.TOKEN: (sensitive) -> (sensitive)",
        "      - timeout: 300 -> null (API default)",
        "  - 1/gone-svc  delete (orphan)",
        "  = 2/found-svc  adopt  m/f.yaml:3",
        "",
        "Plan: 1 to create, 1 to update, 1 to delete, 1 to adopt, 1 unchanged.",
    ]
    assert "\033[" not in text
    assert "\033[32m" in render_text(sample(), color=True)


def test_text_without_changes() -> None:
    plan = Plan((Change(DeploymentKey(1, "a-svc"), Action.NOOP, Reason.IN_SYNC),), "sha256:x")
    assert render_text(plan).splitlines() == [
        "No changes. 1 deployment in sync.",
        "",
        "Plan: 0 to create, 0 to update, 0 to delete, 0 to adopt, 1 unchanged.",
    ]


def test_json_follows_the_contract() -> None:
    data = json.loads(render_json(sample()))
    assert data["format_version"] == 1
    assert data["revision"] is None and data["fingerprint"] == "sha256:abc"
    assert data["summary"] == {
        "create": 1,
        "update": 1,
        "delete": 1,
        "adopt": 1,
        "noop": 1,
        "stop": 0,
        "start": 0,
        "replace": 0,
    }
    first = data["actions"][0]
    assert (first["kind"], first["wave"]) == ("InferenceDeployment", 1)
    assert {k: first[k] for k in ("action", "project_id", "name", "reason", "source")} == {
        "action": "create",
        "project_id": 1,
        "name": "new-svc",
        "reason": "new",
        "source": "m/new.yaml:1",
    }
    assert first["changes"] == [
        {"path": "image", "before": None, "after": "nginx:latest", "sensitive": False}
    ]
    assert len(data["actions"]) == 5  # noops are listed too


def test_markdown_has_a_table_and_collapsible_sections() -> None:
    text = render_markdown(sample())
    assert "**Plan: 1 to create, 1 to update, 1 to delete, 1 to adopt, 1 unchanged.**" in text
    assert "| ➕ | `1/new-svc` | create | new | 1 |" in text  # noqa: RUF001
    assert text.count("<details>") == 3  # create, update, delete
    assert "```diff\n~ containers[region_id=1].scale.max: 3 -> 5" in text


def test_long_markdown_is_truncated_with_a_note() -> None:
    changes = tuple(
        Change(
            DeploymentKey(1, f"svc-{i:05d}"),
            Action.UPDATE,
            Reason.DRIFT,
            tuple(FieldChange(f"containers[region_id={r}].scale.max", 1, 2) for r in range(20)),
            f"m/{i}.yaml:1",
            ("containers",),
        )
        for i in range(2000)
    )
    text = render_markdown(Plan(changes, "sha256:x"))
    assert len(text) <= MARKDOWN_LIMIT
    assert "Truncated:" in text and "Run `reconciler plan`" in text
    assert text.startswith("## reconciler plan")
