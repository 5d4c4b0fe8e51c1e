"""Loading registry credentials, secrets and API keys; secret values; references; `stopped`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.kinds import Kind, ObjectKey, RegistryCredentialSpec, SecretSpec
from reconciler.manifests import load_manifests
from reconciler.manifests.objects import dangling
from reconciler.spec import json_schema

CANARY = "canary-Zq8v1XfR"

CREDENTIAL = """\
apiVersion: reconciler/v1
kind: InferenceRegistryCredential
metadata: {{name: ghcr-bot, project_id: 1}}
spec: {{registry_url: ghcr.io, username: bot, password: {password}}}
"""
SECRET = """\
apiVersion: reconciler/v1
kind: InferenceSecret
metadata: {{name: sqs-reader, project_id: 1}}
spec:
  type: aws-iam
  data:
    aws_access_key_id: AKIAEXAMPLE
    aws_secret_access_key: {secret}
"""
API_KEY = """\
apiVersion: reconciler/v1
kind: InferenceApiKey
metadata: {name: search-clients, project_id: 1}
spec: {description: search team clients, expires_at: "2027-06-30T00:00:00Z"}
"""
DEPLOYMENT = """\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata: {name: search-api, project_id: 1}
spec:
  image: ghcr.io/acme/search:1
  flavor_name: inference-4vcpu-16gib
  listening_port: 80
  credentials_name: ghcr-bot
  api_keys: [search-clients]
  stopped: true
  containers:
    - region_id: 1
      scale:
        min: 1
        max: 2
        triggers:
          sqs: {activation_queue_length: 1, aws_region: eu-west-1, queue_length: 5,
                queue_url: "https://sqs.example/q", secret_name: sqs-reader}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_all_kinds_load_with_secrets_from_env_and_file(tmp_path: Path) -> None:
    write(tmp_path, "cred.yaml", CREDENTIAL.format(password='"${GHCR_TOKEN}"'))
    write(tmp_path, "secret.yaml", SECRET.format(secret="{valueFrom: {file: aws.key}}"))
    write(tmp_path, "aws.key", CANARY + "-aws\n")
    write(tmp_path, "key.yaml", API_KEY)
    write(tmp_path, "app.yaml", DEPLOYMENT)

    state, errors = load_manifests([tmp_path], env={"GHCR_TOKEN": CANARY})

    assert errors == []
    assert [o.key for o in state.objects] == [  # key order: kind, project, name
        ObjectKey(Kind.API_KEY, 1, "search-clients"),
        ObjectKey(Kind.REGISTRY_CREDENTIAL, 1, "ghcr-bot"),
        ObjectKey(Kind.SECRET, 1, "sqs-reader"),
    ]
    _, cred, secret = state.objects
    assert isinstance(cred.spec, RegistryCredentialSpec) and cred.spec.password == CANARY
    assert cred.sensitive_paths == {("password",)}
    assert isinstance(secret.spec, SecretSpec)
    assert secret.spec.data.aws_secret_access_key == CANARY + "-aws"  # trailing newline dropped
    assert secret.sensitive_paths == {("data", "aws_secret_access_key")}
    assert CANARY not in repr(state)
    [deployment] = state.deployments
    assert deployment.spec.stopped is True
    assert "stopped" not in deployment.spec.body()  # ours, never sent to the API
    refs = {(r.target.kind, r.target.name, r.location.line) for r in deployment.references}
    assert refs == {
        (Kind.REGISTRY_CREDENTIAL, "ghcr-bot", 8),
        (Kind.API_KEY, "search-clients", 9),
        (Kind.SECRET, "sqs-reader", 18),
    }
    assert dangling(state.deployments, state.objects) == []


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (CREDENTIAL.format(password=CANARY), 4, "spec.password: a literal secret is not allowed"),
        (
            SECRET.format(secret=CANARY),
            8,
            "spec.data.aws_secret_access_key: a literal secret is not allowed",
        ),
        (CREDENTIAL.format(password="{valueFrom: {file: /etc/passwd}}"), 4, "outside the"),
        (CREDENTIAL.format(password="{valueFrom: {file: ../x.key}}"), 4, "outside the"),
        (CREDENTIAL.format(password="{valueFrom: {file: nope.key}}"), 4, "cannot be read"),
        (CREDENTIAL.format(password="{valueFrom: {path: x}}"), 4, "expected {valueFrom: {file"),
        (CREDENTIAL.format(password="12345"), 4, "expected a string"),
        (API_KEY.replace("description", "descripton"), 4, "did you mean `description`"),
        (SECRET.format(secret='"${S}"').replace("aws-iam", "gcp"), 5, "must be 'aws-iam'"),
        (CREDENTIAL.format(password='"${S}"').replace("project_id: 1", "project_id: 0"), 3, ""),
    ],
)
def test_object_errors_are_located_and_never_echo_a_secret(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    (tmp_path / "x.key").write_text("outside")
    root = tmp_path / "root"
    root.mkdir()
    path = write(root, "m.yaml", text)

    _, errors = load_manifests([root], env={"S": CANARY})

    rendered = [str(e) for e in errors]
    assert any(e.line == line and fragment in str(e) for e in errors), rendered
    assert all(r.startswith(f"{path}:") for r in rendered)
    assert not any(CANARY in r for r in rendered)


def test_secrets_from_grants_a_folder_outside_the_root(tmp_path: Path) -> None:
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    (mounted / "token").write_text(CANARY)
    root = tmp_path / "root"
    root.mkdir()
    text = CREDENTIAL.format(password=f"{{valueFrom: {{file: {mounted / 'token'}}}}}")
    write(root, "cred.yaml", text)

    _, refused = load_manifests([root], env={})
    state, errors = load_manifests([root], env={}, secrets_from=[mounted])

    assert refused and "--secrets-from" in str(refused[0])
    assert errors == []
    assert state.objects[0].spec.password == CANARY  # type: ignore[union-attr]


def test_a_symlink_cannot_lead_a_secret_file_out_of_the_root(tmp_path: Path) -> None:
    (tmp_path / "host.key").write_text(CANARY)
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(tmp_path / "host.key", root / "link.key")
    write(root, "cred.yaml", CREDENTIAL.format(password="{valueFrom: {file: link.key}}"))

    _, errors = load_manifests([root], env={})

    assert len(errors) == 1 and "outside the manifest root" in str(errors[0])


def test_kinds_in_a_list_and_duplicates_per_kind(tmp_path: Path) -> None:
    text = """\
apiVersion: reconciler/v1
kind: List
items:
  - {apiVersion: reconciler/v1, kind: InferenceApiKey, metadata: {name: same-name}, spec: {}}
  - {apiVersion: reconciler/v1, kind: InferenceApiKey, metadata: {name: same-name}, spec: {}}
  - apiVersion: reconciler/v1
    kind: InferenceSecret
    metadata: {name: same-name}
    spec: {type: aws-iam, data: {aws_access_key_id: a, aws_secret_access_key: "${S}"}}
"""
    write(tmp_path, "list.yaml", text)

    state, errors = load_manifests([tmp_path], env={"S": CANARY}, default_project_id=7)

    assert [str(e) for e in errors] == [
        f"{tmp_path / 'list.yaml'}:5:5: metadata.name: API key 7/same-name is defined twice: "
        f"here and at {tmp_path / 'list.yaml'}:4"
    ]
    assert {o.key.kind for o in state.objects} == {Kind.API_KEY, Kind.SECRET}


def test_a_reference_to_nothing_declared_is_placed(tmp_path: Path) -> None:
    path = write(tmp_path, "app.yaml", DEPLOYMENT)

    state, errors = load_manifests([tmp_path], env={})

    assert errors == []
    found = [str(d) for d in dangling(state.deployments, state.objects)]
    assert found == [
        f"{path}:8:21: spec.credentials_name: registry credential 1/ghcr-bot is not declared",
        f"{path}:9:14: spec.api_keys[0]: API key 1/search-clients is not declared",
        f"{path}:18:66: spec.containers[0].scale.triggers.sqs.secret_name: "
        "secret 1/sqs-reader is not declared",
    ]
    live = [ObjectKey(Kind.API_KEY, 1, "search-clients")]
    assert len(dangling(state.deployments, state.objects, live)) == 2


def test_unknown_kind_lists_every_kind(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", API_KEY.replace("InferenceApiKey", "InferenceApiKeys"))

    _, errors = load_manifests([tmp_path], env={})

    assert "did you mean 'InferenceApiKey'?" in str(errors[0])


def test_schema_knows_every_kind_and_the_value_from_form() -> None:
    schema = json_schema()
    titles = {d.get("title") for d in schema["$defs"].values()}
    assert {"InferenceRegistryCredential", "InferenceSecret", "InferenceApiKey"} <= titles
    password = schema["$defs"]["RegistryCredentialSpec"]["properties"]["password"]
    assert password["anyOf"][1]["required"] == ["valueFrom"]
    assert "stopped" in schema["$defs"]["DeploymentSpec"]["properties"]
