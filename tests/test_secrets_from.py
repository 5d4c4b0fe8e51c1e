"""Every command that loads manifests takes `--secrets-from DIR`: a manifest folder whose
`valueFrom.file` reads a granted folder must not be readable by `plan` and unreadable by `diff`
or `rollback`, whose error would tell the user to pass a flag they do not take."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import manifest
from .inproc import run_cli

CREDENTIAL = """\
apiVersion: reconciler/v1
kind: InferenceRegistryCredential
metadata: {name: ghcr-acme, project_id: 1}
spec:
  registry_url: ghcr.io
  username: acme-bot
  password: {valueFrom: {file: ../granted/token}}
"""
ENV = {"GCORE_CLOUD_PROJECT_ID": "1"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "m").mkdir()
    (tmp_path / "granted").mkdir()
    (tmp_path / "granted" / "token").write_text("canary-granted-token-5e1a\n")
    (tmp_path / "m" / "objects.yaml").write_text(CREDENTIAL)
    uses = "  credentials_name: ghcr-acme\n"
    (tmp_path / "m" / "app.yaml").write_text(manifest("search-api", extra=uses))
    return tmp_path


@pytest.mark.parametrize(
    "command",
    [
        ["validate", "m"],
        ["plan", "--simulate", "m"],
        ["diff", "--simulate", "m"],
        ["apply", "--simulate", "--auto-approve", "m"],
        ["destroy", "--simulate", "--auto-approve", "m"],
    ],
)
def test_a_granted_folder_is_read_by_every_loading_command(
    project: Path, command: list[str]
) -> None:
    refused = run_cli(command, project, ENV)
    granted = run_cli([*command, "--secrets-from", "granted"], project, ENV)

    assert refused.returncode == 1
    assert "grant its folder with --secrets-from" in refused.stdout + refused.stderr
    assert "usage:" not in granted.stderr  # the flag is taken
    assert granted.returncode in (0, 2), granted.stderr  # diff: 2 when live differs
    assert "outside the manifest root" not in granted.stdout + granted.stderr
    assert "canary-granted-token" not in granted.stdout + granted.stderr


def test_rollback_takes_a_granted_folder(project: Path) -> None:
    assert (
        run_cli(
            ["apply", "--simulate", "--auto-approve", "m", "--secrets-from", "granted"],
            project,
            ENV,
        ).returncode
        == 0
    )
    done = run_cli(
        ["rollback", "--simulate", "search-api", "m", "--to", "1", "--auto-approve",
         "--secrets-from", "granted"],
        project, ENV,
    )  # fmt: skip
    assert "unrecognized arguments" not in done.stderr and "grant its folder" not in done.stderr
    assert done.returncode == 0, done.stderr
