"""A compact live deployment keeps the API's answer as JSON text: everything it hands out must be
what the decoded one (`from_answer`) gives, for any answer."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.api.models import Deployment
from reconciler.model import LiveDeployment

from .strategies import TEXT, specs

STATUSES = st.sampled_from(["ACTIVE", "DEPLOYING", "DISABLED", "DELETING", "PENDING", "NEW-ONE"])
ODD = st.floats(allow_nan=False) | st.just("a\ud800b") | st.integers(-(2**70), 2**70)
REFERENCES = st.lists(
    st.fixed_dictionaries({}, optional={"kind": TEXT, "name": TEXT}) | st.none(), max_size=2
)


@st.composite
def answers(draw: st.DrawFn) -> dict[str, Any]:
    """A listed deployment as `Deployment.model_dump(mode="json")` gives it."""
    body = draw(specs())
    containers = [
        {
            **c,
            "address": draw(st.none() | TEXT),
            "deploy_status": draw(
                st.none()
                | st.fixed_dictionaries(
                    {}, optional={"ready": st.integers(0, 9), "total": st.integers(0, 9)}
                )
            ),
            "error_message": draw(st.none() | TEXT),
        }
        for c in body["containers"]
    ]
    extra = draw(st.dictionaries(TEXT, st.none() | ODD | TEXT, max_size=2))
    return {
        **extra,
        **body,
        "name": "my-svc",
        "project_id": 7,
        "containers": containers,
        "status": draw(STATUSES),
        "address": draw(st.none() | TEXT),
        "object_references": draw(REFERENCES),
    }


@settings(max_examples=300, deadline=None)
@given(answers())
def test_a_compact_deployment_gives_what_the_decoded_one_gives(answer: dict[str, Any]) -> None:
    decoded = LiveDeployment.from_answer(7, answer)
    compact = LiveDeployment.compact_answer(7, answer)
    assert compact.compact and not decoded.compact
    for one in (compact, compact.opened()):
        assert one.key == decoded.key
        assert one.status == decoded.status
        assert one.containers_status == decoded.containers_status
        assert one.managed_by == decoded.managed_by
        assert one.unreadable == decoded.unreadable == ""
        assert dict(one.raw) == dict(decoded.raw)
        assert list(one.raw) == list(decoded.raw)
        assert dict(one.spec_view) == dict(decoded.spec_view)
        assert list(one.spec_view) == list(decoded.spec_view)
        assert one == decoded
    assert not compact.opened().compact
    assert decoded.opened() is decoded


def test_what_is_unequal_stays_unequal() -> None:
    answer = {"name": "my-svc", "status": "ACTIVE", "image": "a", "containers": []}
    compact = LiveDeployment.compact_answer(1, answer)
    assert compact != LiveDeployment.from_answer(1, {**answer, "image": "b"})
    assert compact != LiveDeployment.from_answer(2, answer)
    assert compact != LiveDeployment.from_answer(1, {**answer, "status": "DISABLED"})


def test_an_unreadable_deployment_is_known_by_name_only() -> None:
    from reconciler.model import DeploymentKey

    found = LiveDeployment.unreadable_answer(DeploymentKey(1, "my-svc"), "bad")
    assert found.unreadable == "bad"
    assert dict(found.raw) == {} and dict(found.spec_view) == {}
    assert found.managed_by is None and found.status == ""


@settings(max_examples=300, deadline=None)
@given(answers())
def test_a_compact_deployment_from_the_model_is_the_one_from_its_dump(
    answer: dict[str, Any],
) -> None:
    """What the listing makes (`Deployment.compact`, pydantic writing the JSON) is what
    `compact_answer` and `from_answer` make of the model's dump: infinities, lone surrogates
    and integers past 64 bits included."""
    for container in answer["containers"]:  # what the model requires of these
        if container["deploy_status"] is None:
            del container["deploy_status"]
    answer["object_references"] = [
        r for r in answer["object_references"] if r is not None and {"kind", "name"} <= set(r)
    ]
    model = Deployment.model_validate(answer)
    dumped = model.model_dump(mode="json")
    compact = model.compact(7)
    assert compact.compact
    expected = LiveDeployment.from_answer(7, dumped)
    assert compact == expected
    assert compact == LiveDeployment.compact_answer(7, dumped)
    assert compact.managed_by == expected.managed_by
    assert compact.containers_status == expected.containers_status
    assert list(compact.raw) == list(expected.raw)
    assert dict(compact.spec_view) == dict(expected.spec_view)


def test_odd_values_in_an_answer_survive_the_compact_form() -> None:
    answer = {
        "name": "my-svc",
        "image": "a",
        "listening_port": 80,
        "flavor_name": "f",
        "status": "ACTIVE",
        "containers": [{"region_id": 1, "scale": {"min": 0, "max": 1}}],
        "logging": {"weight": float("inf"), "low": float("-inf")},
        "description": "a\ud800b",
        "huge": 2**70,
    }
    model = Deployment.model_validate(answer)
    compact = model.compact(7)
    assert compact == LiveDeployment.from_answer(7, model.model_dump(mode="json"))
    assert compact.raw["logging"] == {"weight": float("inf"), "low": float("-inf")}
    assert compact.raw["description"] == "a\ud800b"
    assert compact.raw["huge"] == 2**70
