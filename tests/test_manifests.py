"""Loading manifests: valid features, the invalid corpus, hostile input, files and identity."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from reconciler import yamlsource
from reconciler.manifests import (
    ManifestErrors,
    load_desired,
    load_manifests,
    load_text,
)
from reconciler.model import DeploymentKey
from reconciler.spec import DeploymentSpec

from .strategies import NAMES, specs

DATA = Path(__file__).parent / "data"
INVALID = sorted((DATA / "invalid").glob("*.yaml"))
EXPECT = re.compile(r"# expect: (\d+): (.+)")

MINIMAL = """\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata: {{name: {name}, project_id: 1}}
spec:
  image: {image}
  flavor_name: inference-4vcpu-16gib
  listening_port: 80
  containers: [{{region_id: 1, scale: {{min: 1, max: 1}}}}]
"""


def minimal(name: str = "demo-app", image: str = "nginx:latest") -> str:
    return MINIMAL.format(name=name, image=image)


def one(path: Path | str, **kwargs: Any) -> Any:
    state = load_desired([path], env=kwargs.pop("env", {}), **kwargs)
    assert len(state) == 1
    return state.deployments[0]


# -- the invalid corpus --------------------------------------------------------------------------


def test_the_invalid_corpus_is_large_enough() -> None:
    assert len(INVALID) >= 40


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_manifest(path: Path) -> None:
    header = path.read_bytes().split(b"\n", 1)[0].decode()
    match = EXPECT.match(header)
    assert match, f"{path.name} lacks an '# expect: LINE: FRAGMENT' header"
    line, fragment = int(match.group(1)), match.group(2).strip()

    _, errors = load_manifests([path], env={}, default_project_id=None)

    assert errors, f"{path.name} loaded without error"
    rendered = [str(e) for e in errors]
    assert any(e.line == line and fragment in str(e) for e in errors), rendered
    assert all(r.startswith(f"{path}:") for r in rendered)
    with pytest.raises(ManifestErrors):
        load_desired([path], env={})


# -- valid features --------------------------------------------------------------------------------


def test_every_trigger_kind() -> None:
    deployment = one(DATA / "valid" / "triggers.yaml")
    triggers = deployment.spec.containers[0].scale.triggers
    assert triggers.cpu.threshold == 80
    assert triggers.gpu_memory.threshold == 90
    assert triggers.gpu_utilization.threshold == 85
    assert (triggers.http.rate, triggers.http.window) == (50, 60)
    assert triggers.sqs.scale_on_delayed is True
    assert set(deployment.spec.containers[0].scale.triggers.model_fields_set) == {
        "cpu",
        "memory",
        "gpu_memory",
        "gpu_utilization",
        "http",
        "sqs",
    }


def test_every_probe_kind() -> None:
    probes = one(DATA / "valid" / "probes.yaml").spec.probes
    assert probes.liveness_probe.probe.exec.command == ["cat", "/tmp/healthy"]
    assert probes.readiness_probe.probe.http_get.path == "/ready"
    assert probes.readiness_probe.probe.http_get.body()["schema"] == "HTTP"
    assert probes.startup_probe.probe.tcp_socket.port == 80
    assert probes.startup_probe.enabled is False


def test_logging() -> None:
    logging = one(DATA / "valid" / "logging.yaml").spec.logging
    assert logging.body() == {
        "enabled": True,
        "destination_region_id": 1,
        "topic_name": "my-log-name",
        "retention_policy": {"period": 42},
    }


def test_scale_to_zero() -> None:
    spec = one(DATA / "valid" / "scale-to-zero.yaml").spec
    assert [c.scale.min for c in spec.containers] == [0, 0]
    assert spec.timeout == 0


def test_multi_document_file() -> None:
    state = load_desired([DATA / "valid" / "multi-document.yaml"], env={})
    assert [str(d.key) for d in state] == ["1/first-doc", "2/second-doc"]
    assert [d.source.line for d in state] == [1, 12]


def test_list_kind_keeps_labels_and_annotations() -> None:
    state = load_desired([DATA / "valid" / "list.yaml"], env={})
    first, second = state.deployments
    assert first.key.name == "list-one" and first.labels == {"team": "search"}
    assert second.annotations == {"reconciler/prune": "false"}
    assert first.source.line == 4 and second.source.line == 12


def test_anchors_and_merge_keys() -> None:
    state = load_desired([DATA / "valid" / "anchors.yaml"], env={})
    one_, two = state.deployments
    assert one_.spec.image == "nginx:latest"
    assert two.spec.image == "nginx:1.27"
    assert two.spec.listening_port == 80


def test_only_fields_set_in_the_manifest_are_in_the_body() -> None:
    deployment = one(DATA / "valid" / "every-field.yaml")
    body = deployment.spec.body()
    assert set(body) == {
        "image",
        "flavor_name",
        "listening_port",
        "containers",
        "api_keys",
        "command",
        "credentials_name",
        "description",
        "envs",
        "ingress_opts",
        "timeout",
    }
    assert body["containers"][0] == {"region_id": 1, "scale": {"min": 1, "max": 2}}


def test_the_example_manifest_is_the_seed_deployment() -> None:
    deployment = one(Path(__file__).parent.parent / "manifests" / "my-instance.yaml")
    assert deployment.key == DeploymentKey(1, "my-instance")
    spec = deployment.spec
    assert spec.image == "nginx:latest" and spec.listening_port == 80
    assert spec.command == ["nginx", "-g", "daemon off;"]
    assert spec.description == "My first instance"
    scale = spec.containers[0].scale
    assert (scale.min, scale.max, scale.cooldown_period) == (1, 3, 60)
    assert (scale.triggers.cpu.threshold, scale.triggers.memory.threshold) == (80, 70)


# -- interpolation and sensitivity ---------------------------------------------------------------


def test_interpolation_fills_values_and_marks_them_sensitive() -> None:
    text = minimal(image='"registry.example/${TEAM}/model:${TAG}"') + "  envs: {A: plain}\n"
    [deployment], errors = load_text(text, env={"TEAM": "search", "TAG": "v2"})
    assert not errors
    assert deployment.spec.image == "registry.example/search/model:v2"
    assert deployment.sensitive_paths == {("image",), ("envs", "A")}


def test_a_doubled_dollar_is_a_literal() -> None:
    [deployment], errors = load_text(minimal(image='"img:$${NOT_A_VAR}"'), env={})
    assert not errors
    assert deployment.spec.image == "img:${NOT_A_VAR}"
    assert ("image",) not in deployment.sensitive_paths


def test_errors_never_echo_an_interpolated_secret() -> None:
    secret = "hunter2-very-secret"
    text = minimal().replace("listening_port: 80", 'listening_port: "${PORT_SECRET}"')
    text += '  description: ["${PORT_SECRET}"]\n'
    _, errors = load_text(text, env={"PORT_SECRET": secret})
    assert len(errors) == 2
    assert all(secret not in str(e) for e in errors)
    assert all("value hidden" in str(e) for e in errors)


def test_project_id_defaults_from_the_environment() -> None:
    text = minimal().replace(", project_id: 1", "")
    [deployment], errors = load_text(text, env={}, default_project_id=42)
    assert not errors and deployment.key == DeploymentKey(42, "demo-app")


# -- hostile input -------------------------------------------------------------------------------


def test_an_alias_bomb_stops_at_the_node_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 9**10 (3.5 billion) nodes once expanded; the loader must stop at its budget. The bound is
    # on work done (nodes built), not on the wall clock; bench/hostile.py prints the time.
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    built = 0
    build = yamlsource._Builder.build

    def counting(self: Any, *args: Any) -> Any:
        nonlocal built
        built += 1
        return build(self, *args)

    monkeypatch.setattr(yamlsource._Builder, "build", counting)
    _, errors = load_manifests([bomb], env={})
    assert any("alias bomb" in e.message for e in errors)
    assert built <= yamlsource.MAX_NODES + 1, built


def test_an_oversize_file_is_refused_without_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(minimal() + "#" + "x" * (2 * 1024 * 1024) + "\n")

    def never(*_: Any, **__: Any) -> Any:
        raise AssertionError("an oversize file reached the YAML parser")

    monkeypatch.setattr(yaml, "compose_all", never)
    _, errors = load_manifests([big], env={})
    assert [e.message for e in errors] == ["file is 2.0 MiB; the limit is 1 MiB per manifest file"]


@pytest.mark.parametrize("depth", [200, 5000, 100_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    deep = "a: " + "[" * depth + "]" * depth + "\n"
    _, errors = load_text(deep, env={})
    assert len(errors) == 1
    assert "nested deeper than 64 levels" in errors[0].message or (
        "maximum nesting depth" in errors[0].message
    )


def test_a_deep_mapping_is_refused() -> None:
    text = "".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "v\n"
    _, errors = load_text(text, env={})
    assert errors and "nested deeper than 64 levels" in errors[0].message


def test_an_empty_file_is_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "comments.yaml").write_text("# nothing here yet\n---\n")
    state, errors = load_manifests([tmp_path], env={})
    assert errors == [] and len(state) == 0 and state.files == 2


# -- files, directories, identity ----------------------------------------------------------------


def test_directories_are_searched_recursively(tmp_path: Path) -> None:
    (tmp_path / "team" / "sub").mkdir(parents=True)
    (tmp_path / "team" / "sub" / "a.yaml").write_text(minimal("app-one"))
    (tmp_path / "b.yml").write_text(minimal("app-two"))
    (tmp_path / "notes.txt").write_text("not yaml: [")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.yaml").write_text("broken: [")
    (tmp_path / ".d.yaml").write_text("broken: [")
    state = load_desired([tmp_path], env={})
    assert [d.key.name for d in state] == ["app-one", "app-two"]
    assert state.files == 2


def test_symlinks_leaving_the_root_are_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.yaml").write_text(minimal("outside-app"))
    (root / "inside.yaml").write_text(minimal("inside-app"))
    os.symlink(outside / "secret.yaml", root / "link.yaml")
    os.symlink(outside, root / "linkdir")
    os.symlink(root / "inside.yaml", root / "alias.yaml")  # stays inside: fine, same key
    state, errors = load_manifests([root], env={})
    messages = sorted(str(e) for e in errors)
    assert len(messages) == 2
    assert any("link.yaml" in m and "symlink leaves" in m for m in messages)
    assert any("linkdir" in m and "symlink leaves" in m for m in messages)
    assert [d.key.name for d in state] == ["inside-app"]  # read once, though reached twice


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    _, errors = load_manifests([tmp_path / "nope"], env={})
    assert [e.message for e in errors] == ["no such file or directory"]


def test_one_deployment_in_two_files_names_both(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(minimal("same-name"))
    (tmp_path / "b.yaml").write_text("# another copy\n" + minimal("same-name"))
    _, errors = load_manifests([tmp_path], env={})
    [error] = errors
    assert error.file.endswith("b.yaml") and error.line == 2
    assert f"{tmp_path / 'a.yaml'}:1" in error.message


def test_all_errors_of_all_files_are_reported_sorted(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(minimal().replace("listening_port: 80", "listening_port: 0"))
    (tmp_path / "a.yaml").write_text(minimal("x"))
    (tmp_path / "c.yaml").write_text("key: [unclosed\n")
    state, errors = load_manifests([tmp_path], env={})
    assert [Path(e.file).name for e in errors] == ["a.yaml", "b.yaml", "c.yaml"]
    assert len(state) == 0 or all(d.key.name != "x" for d in state)
    with pytest.raises(ManifestErrors) as info:
        load_desired([tmp_path], env={})
    assert len(info.value.errors) == 3


# -- round trip ------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=specs(), name=NAMES)
def test_any_valid_spec_survives_a_yaml_round_trip(body: dict[str, Any], name: str) -> None:
    spec = DeploymentSpec.model_validate(body)
    manifest = {
        "apiVersion": "reconciler/v1",
        "kind": "InferenceDeployment",
        "metadata": {"name": name, "project_id": 1},
        "spec": spec.body(),
    }
    text = yaml.safe_dump(manifest, allow_unicode=True, sort_keys=False)
    found, errors = load_text(text, env={})
    assert errors == []
    [deployment] = found
    assert deployment.spec == spec
    assert deployment.spec.body() == spec.body() == body
