"""Every error at once: an unset ${VAR} and the rules across fields hide nothing else; annotations
are checked (issue 11)."""

from __future__ import annotations

from reconciler.manifests import load_text

from .conftest import FLAVOR

HEAD = """\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata: {name: my-instance, project_id: 1}
"""


def _errors(text: str, env: dict[str, str] | None = None) -> list[str]:
    found, errors = load_text(text, name="m.yaml", env=env or {})
    assert not found
    return [str(e) for e in errors]


def test_an_unset_variable_hides_no_other_error() -> None:
    # failed before: only the unset variable was reported
    text = (
        HEAD
        + f"""\
spec:
  image: "${{IMAGE}}"
  flavor_name: {FLAVOR}
  listening_port: 0
  containers: [{{region_id: 1, scale: {{min: 1, max: 1}}}}]
"""
    )
    assert _errors(text) == [
        "m.yaml:5:10: spec.image: environment variable IMAGE is not set",
        "m.yaml:7:19: spec.listening_port: must be at least 1, got number 0",
    ]


def test_rules_across_fields_show_with_field_errors() -> None:
    # failed before: each rule waited until every field of its model was valid
    text = (
        HEAD
        + f"""\
spec:
  image: nginx
  flavor_name: {FLAVOR}
  listening_port: 80
  imagee: typo
  api_keys: [one]
  auth_enabled: true
  containers:
    - region_id: 1
      scale: {{min: 3, max: 1, cooldown_period: -1}}
    - region_id: 1
      scale: {{min: 1, max: 1}}
  probes:
    liveness_probe:
      enabled: true
      probe:
        exec: {{command: [true]}}
        tcp_socket: {{port: 80}}
        timeout_seconds: 0
"""
    )
    errors = _errors(text)
    wanted = [
        "spec.imagee: unknown field",
        "spec: api_keys and auth_enabled are mutually exclusive",
        "spec.containers: each region may appear once in containers; region 1 appears twice",
        "spec.containers[0].scale: min (3) must not be greater than max (1)",
        "spec.containers[0].scale.cooldown_period: must be at least 1",
        "spec.probes.liveness_probe.probe: a probe has at most one of exec, http_get, "
        "tcp_socket; got exec, tcp_socket",
        "spec.probes.liveness_probe.probe.timeout_seconds: must be at least 1",
    ]
    for fragment in wanted:
        assert any(fragment in e for e in errors), (fragment, errors)
    assert len(errors) == len(set(errors))


def test_a_rule_alone_is_reported_once() -> None:
    text = (
        HEAD
        + f"""\
spec:
  image: nginx
  flavor_name: {FLAVOR}
  listening_port: 80
  containers: [{{region_id: 1, scale: {{min: 3, max: 1}}}}]
"""
    )
    assert _errors(text) == [
        "m.yaml:8:31: spec.containers[0].scale: min (3) must not be greater than max (1)"
    ]


def _annotated(annotations: str) -> str:
    return f"""\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata:
  name: my-instance
  project_id: 1
  annotations: {annotations}
spec:
  image: nginx
  flavor_name: {FLAVOR}
  listening_port: 80
  containers: [{{region_id: 1, scale: {{min: 1, max: 1}}}}]
"""


def test_an_unknown_reconciler_annotation_suggests_the_known_one() -> None:
    # failed before: `reconciler/prun` was accepted, and the orphan was pruned after all
    [error] = _errors(_annotated('{reconciler/prun: "false"}'))
    assert "metadata.annotations: unknown annotation reconciler/prun" in error
    assert "did you mean reconciler/prune?" in error


def test_annotation_values_are_checked() -> None:
    [error] = _errors(_annotated('{reconciler/prune: "no"}'))
    assert 'annotation reconciler/prune must be "true" or "false", got \'no\'' in error


def test_other_tools_annotations_are_left_alone() -> None:
    found, errors = load_text(
        _annotated('{example.com/owner: search, reconciler/prune: "false"}'), env={}
    )
    assert not errors and len(found) == 1
