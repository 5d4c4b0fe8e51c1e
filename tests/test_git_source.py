"""Git mode: a folder inside the repository (--git-path), errors named by their place in the
repository, and a private repository's HTTPS token through a git credential helper."""

from __future__ import annotations

import base64
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from reconciler.config import ApiSettings, Secret
from reconciler.engine import Target
from reconciler.service import ServeOptions, Service
from reconciler.simulator import BackgroundServer
from reconciler.sources import GitSource, SourceError

from .conftest import API_KEY, manifest
from .githttp import PrivateGitServer, git
from .uiharness import APPLY, sim_server


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "deploy").mkdir(parents=True)
    (repo / "docs").mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "deploy" / "app.yaml").write_text(manifest("alpha-svc"))
    (repo / "docs" / "example.yaml").write_text("not: a manifest\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    return repo


@pytest.fixture
def api() -> Iterator[BackgroundServer]:
    with sim_server() as server:  # quick timings: the lifecycle's length is not the point here
        yield server


def _service(tmp_path: Path, source: GitSource, api: BackgroundServer) -> Service:
    settings = ApiSettings(base_url=api.url, api_key=Secret(API_KEY))
    return Service(source, Target(settings, tmp_path / "state.db"), ServeOptions(apply=APPLY))


async def test_git_path_reads_only_that_folder(
    tmp_path: Path, repo: Path, api: BackgroundServer
) -> None:
    source = GitSource(f"file://{repo}", "main", tmp_path / "cache", "deploy")
    snapshot = await source.sync()
    assert snapshot.paths == (source.checkout / "deploy",)
    service = _service(tmp_path, source, api)
    done = await service.reconcile_once()
    assert done.result == "ok", done.errors  # docs/example.yaml was never read
    assert (1, "alpha-svc") in api.simulator.cloud.deployments


async def test_errors_name_the_place_in_the_repository(
    tmp_path: Path, repo: Path, api: BackgroundServer
) -> None:
    # failed before: errors named the clone's folder under .reconciler/git-<hash>/
    (repo / "deploy" / "app.yaml").write_text(
        manifest("alpha-svc").replace("listening_port: 80", "listening_port: 0")
    )
    git(repo, "commit", "-q", "-am", "break it")
    service = _service(tmp_path, GitSource(f"file://{repo}", "main", tmp_path / "c"), api)
    done = await service.reconcile_once()
    assert done.result == "invalid"
    assert "deploy/app.yaml:7:19: spec.listening_port: must be at least 1, got number 0" in (
        done.errors
    )
    assert all(e.startswith(("deploy/", "docs/")) for e in done.errors), done.errors


async def test_a_missing_git_path_is_named(tmp_path: Path, repo: Path) -> None:
    source = GitSource(f"file://{repo}", "main", tmp_path / "cache", "deploi")
    with pytest.raises(
        SourceError, match=r"--git-path deploi: no such folder in .*#main:deploi at [0-9a-f]{12}"
    ):
        await source.sync()
    with pytest.raises(SourceError, match="inside the repository"):
        GitSource(f"file://{repo}", "main", tmp_path / "cache", "../elsewhere")


# -- a private repository over HTTPS: the token comes from a credential helper ------------------


class _AuthRecorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization")
        if auth is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        _AuthRecorder.seen.append(auth)
        self.send_response(404)  # authenticated; this server has no repository to give
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def test_an_https_token_reaches_git_through_a_credential_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's recipe: a credential helper that reads the token from an environment
    variable. Our git calls (no prompt, GIT_ASKPASS=echo) must still consult it."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        "[credential]\n"
        '\thelper = "!f() { test \\"$1\\" = get && echo username=x-access-token '
        '&& echo password=$GIT_TOKEN; }; f"\n'
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_TOKEN", "s3cr3t-token")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _AuthRecorder.seen.clear()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/acme/inference.git"
        with pytest.raises(SourceError) as failed:
            await GitSource(url, "main", tmp_path / "cache").sync()
    finally:
        server.shutdown()
    expected = base64.b64encode(b"x-access-token:s3cr3t-token").decode()
    assert f"Basic {expected}" in _AuthRecorder.seen
    assert "s3cr3t-token" not in str(failed.value)


# the README's recipe, word for word (Private repositories)
README_HELPER = (
    '!f() { test "$1" = get && echo username=x-access-token && echo "password=$GIT_TOKEN"; }; f'
)


def _with_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    subprocess.run(["git", "config", "--global", "credential.helper", README_HELPER], check=True)
    monkeypatch.setenv("GIT_TOKEN", token)


async def test_a_private_repository_over_http_with_a_token_from_the_environment(
    tmp_path: Path, repo: Path, api: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real private repository: `git http-backend` behind HTTP Basic authentication on
    loopback. serve clones it and, after a push, fetches it, with the token that the README's
    credential helper reads from GIT_TOKEN; the token is in no URL and no message."""
    token = "ghp_" + "q9" * 18
    served = tmp_path / "served"
    (served / "acme").mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(served / "acme" / "inference.git"))
    _with_helper(tmp_path, monkeypatch, token)
    with PrivateGitServer(served, "x-access-token", token).running() as server:
        url = f"{server.url}/acme/inference.git"
        source = GitSource(url, "main", tmp_path / "cache", "deploy")
        first = await source.sync()
        assert first.revision == git(repo, "rev-parse", "HEAD")
        service = _service(tmp_path, source, api)
        done = await service.reconcile_once()
        assert done.result == "ok", done.errors
        assert (1, "alpha-svc") in api.simulator.cloud.deployments

        (repo / "deploy" / "beta.yaml").write_text(manifest("beta-svc"))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "second")
        git(repo, "push", "-q", str(served / "acme" / "inference.git"), "main")
        second = await source.sync()  # a fetch, authenticated the same way
        assert second.revision == git(repo, "rev-parse", "HEAD") != first.revision
        assert (source.checkout / "deploy" / "beta.yaml").is_file()

        expected = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
        assert server.seen and set(server.seen) == {expected}
        assert server.refused >= 1  # git asked without a credential first: the 401 made it ask
        assert token not in source.describe() and token not in url
        assert all(token not in e for e in done.errors)


async def test_a_wrong_token_is_refused_and_not_shown(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(served / "inference.git"))
    _with_helper(tmp_path, monkeypatch, "ghp_wrong_wrong_wrong")
    with PrivateGitServer(served, "x-access-token", "ghp_right").running() as server:
        source = GitSource(f"{server.url}/inference.git", "main", tmp_path / "cache")
        with pytest.raises(SourceError) as failed:
            await source.sync()
    assert server.served == 0
    assert "git clone of http://127.0.0.1:" in str(failed.value)
    assert "ghp_wrong" not in str(failed.value)


async def test_rollback_of_a_git_applied_deployment_says_to_revert_the_commit(
    tmp_path: Path, repo: Path, api: BackgroundServer
) -> None:
    from .test_cli_fixes import cli

    source = GitSource(f"file://{repo}", "main", tmp_path / "c", "deploy")
    done = await _service(tmp_path, source, api).reconcile_once()
    assert done.result == "ok", done.errors
    sha = git(repo, "rev-parse", "HEAD")
    env = {"GCORE_API_KEY": API_KEY, "GCORE_BASE_URL": api.url}
    state = str(tmp_path / "state.db")
    history = cli(tmp_path, "history", "alpha-svc", "--state", state, env=env)
    assert history.stdout.splitlines()[1].split()[4] == sha[:12]
    for to in ("1", sha[:8]):  # a history number, or the commit
        refused = cli(
            tmp_path,
            "rollback",
            "alpha-svc",
            str(repo / "deploy"),
            "--to",
            to,
            "--state",
            state,
            env=env,
        )
        assert refused.returncode == 1
        assert refused.stderr.strip() == (
            f"error: 1/alpha-svc was applied from git (revision {sha[:12]}): revert the commit "
            f"instead (`git revert {sha[:12]}`); serve would undo any other change at its next "
            "sync"
        )
