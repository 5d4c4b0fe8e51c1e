"""A desired deployment keeps its spec as JSON text, not as ~15 pydantic models: what it hands
out (`body()`, `spec`, `wants_stopped`) must be exactly what the model it was made from gives."""

from __future__ import annotations

import gc
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from reconciler.manifests import load_text
from reconciler.model import DeploymentKey, DesiredDeployment, Location
from reconciler.spec import DeploymentSpec

from .strategies import specs

KEY = DeploymentKey(1, "my-svc")
WHERE = Location("svc.yaml", 1)


def made_from(spec: DeploymentSpec) -> DesiredDeployment:
    return DesiredDeployment(KEY, spec, WHERE)


@settings(max_examples=300, deadline=None)
@given(specs(), st.sampled_from([None, True, False]))
def test_the_compact_form_gives_back_what_the_model_gave(
    body: dict[str, Any], stopped: Any
) -> None:
    if stopped is not None:
        body = {**body, "stopped": stopped}
    spec = DeploymentSpec.model_validate(body)
    desired = made_from(spec)
    assert desired.body() == spec.body()
    assert list(desired.body()) == list(spec.body())  # the order the API sees, too
    again = desired.spec
    assert again == spec
    assert again.body() == spec.body()  # the fields set, at every depth
    assert again.model_dump(by_alias=True, exclude_unset=True) == spec.model_dump(
        by_alias=True, exclude_unset=True
    )
    assert desired.wants_stopped is spec.wants_stopped
    assert "stopped" not in desired.body()


def test_a_lone_surrogate_survives() -> None:
    """YAML refuses one, but a spec may come from elsewhere (a rollback rebuilds one from the
    history); pydantic's own JSON would refuse to write it."""
    spec = DeploymentSpec.model_validate(
        {
            "image": "nginx:1",
            "flavor_name": "f",
            "listening_port": 80,
            "description": "a\ud800b",
            "containers": [{"region_id": 1, "scale": {"min": 0, "max": 1}}],
        }
    )
    desired = made_from(spec)
    assert desired.body()["description"] == "a\ud800b"
    assert desired.spec == spec


def test_every_body_is_a_fresh_value() -> None:
    desired = made_from(
        DeploymentSpec.model_validate(
            {
                "image": "nginx:1",
                "flavor_name": "f",
                "listening_port": 80,
                "containers": [{"region_id": 1, "scale": {"min": 0, "max": 1}}],
            }
        )
    )
    first = desired.body()
    first["containers"][0]["scale"]["max"] = 9
    assert desired.body()["containers"][0]["scale"]["max"] == 1


def test_a_loaded_deployment_holds_no_model() -> None:
    found, errors = load_text(
        "apiVersion: reconciler/v1\nkind: InferenceDeployment\nmetadata: {name: my-svc, "
        "project_id: 1, labels: {team: a}}\nspec:\n  image: nginx:1\n  flavor_name: f\n"
        "  listening_port: 80\n  containers: [{region_id: 1, scale: {min: 0, max: 1}}]\n"
        "  probes: {readiness_probe: {enabled: true, probe: {tcp_socket: {port: 80}}}}\n"
    )
    assert errors == []
    seen: set[int] = set()
    todo: list[object] = list(found)
    while todo:
        item = todo.pop()
        if id(item) in seen or isinstance(item, type):
            continue
        seen.add(id(item))
        assert not isinstance(item, BaseModel), f"a {type(item).__name__} is kept"
        todo.extend(gc.get_referents(item))
