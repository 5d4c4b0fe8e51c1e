"""A compact record keeps `last_applied` as JSON text: it must read, compare and rebuild as the
record it came from."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.model import DeploymentKey, JsonText, Record, RecordOutcome

from .strategies import specs

KEY = DeploymentKey(1, "my-svc")


def record(body: dict[str, Any], **more: Any) -> Record:
    return Record(KEY, body, 12.5, RecordOutcome.CONVERGED, **more)


@settings(max_examples=200, deadline=None)
@given(specs(), st.sampled_from(["", "failed once"]), st.none() | st.text(max_size=5))
def test_a_compact_record_reads_as_the_decoded_one(
    body: dict[str, Any], message: str, revision: str | None
) -> None:
    decoded = record(
        body,
        message=message,
        revision=revision,
        sensitive_paths=frozenset({("envs", "TOKEN")}),
        labels=MappingProxyType({"team": "a"}),
        annotations=MappingProxyType({"reconciler/prune": "false"}),
    )
    compact = decoded.compacted()
    assert isinstance(compact.last_applied, JsonText)
    assert compact.compacted() is compact
    assert decoded.opened() is decoded
    for one in (compact, compact.opened()):
        assert one == decoded
        assert dict(one.last_applied) == body
        assert list(one.last_applied) == list(body)
        assert (one.key, one.applied_at, one.outcome, one.message, one.revision) == (
            KEY,
            12.5,
            RecordOutcome.CONVERGED,
            message,
            revision,
        )
        assert one.sensitive_paths == decoded.sensitive_paths
        assert one.labels == decoded.labels and one.annotations == decoded.annotations
        assert not one.was_stopped
    assert type(compact.opened().last_applied) is dict
    assert compact.opened().last_applied == body
    assert compact.last_applied == JsonText(compact.last_applied.text)
    assert compact.last_applied != JsonText("{}")


def test_records_that_differ_stay_unequal() -> None:
    body = {"image": "a", "containers": []}
    compact = record(body).compacted()
    assert compact != record({**body, "image": "b"})
    assert compact != record(body, message="other")
    assert compact != Record(DeploymentKey(2, "my-svc"), body, 12.5, RecordOutcome.CONVERGED)
    assert compact != Record(KEY, body, 12.5, RecordOutcome.FAILED)


def test_positional_and_keyword_construction_as_before() -> None:
    by_position = Record(KEY, {"image": "a"}, 1.0, RecordOutcome.APPLYING)
    by_name = Record(key=KEY, last_applied={"image": "a"}, applied_at=1.0, outcome="applying")  # type: ignore[arg-type]
    assert by_position == by_name
    assert by_position.labels == {} and by_position.annotations == {}
    assert by_position.message == "" and by_position.revision is None
