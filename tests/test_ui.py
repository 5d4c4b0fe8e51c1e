"""The web page over real HTTP: what it shows, what it escapes and masks, who may act."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from reconciler.config import Secret
from reconciler.model import DeploymentKey
from reconciler.ui import CSP, UiOptions
from reconciler.ui.view import masked
from reconciler.urls import commit_url, redact_url

from .canary import CANARIES, assert_no_canary
from .conftest import FLAVOR, manifest
from .uiharness import APPLY, TOKEN, BackgroundServer, serving, sim_server

EVIL = "<script>alert(1)</script>"


class _Scripts(HTMLParser):
    """Every <script> and every inline event handler in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))
        self.handlers += [name for name, _ in attrs if name.startswith("on")]


def scripts_of(html: str) -> _Scripts:
    parser = _Scripts()
    parser.feed(html)
    return parser


def seed(folder: Path) -> None:
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc"))
    (folder / "beta-svc.yaml").write_text(manifest("beta-svc"))
    (folder / "bad-svc.yaml").write_text(manifest("bad-svc", image="broken/model:1"))


async def test_overview_counts_and_table(
    tmp_path: Path, folder: Path, sim: BackgroundServer
) -> None:
    seed(folder)
    async with serving(tmp_path, folder, sim) as served, httpx.AsyncClient() as http:
        page = await http.get(served.url + "/")
    assert page.status_code == 200
    html = page.text
    counts = dict(
        re.findall(r'<li data-state="(\w+)">.*?<strong class="count">(\d+)</strong>', html)
    )
    # bad-svc's create failed: not owned, not live; the other two converged
    assert counts["Synced"] == "2" and counts["OutOfSync"] == "1"
    assert counts["Healthy"] == "2" and counts["Missing"] == "1"
    for name in ("alpha-svc", "beta-svc", "bad-svc"):
        assert f'data-key="1/{name}"' in html
    assert "task" in html.lower()  # the last reconcile's failure is listed


async def test_pages_forbid_inline_script_and_render_a_script_name_as_text(
    tmp_path: Path, folder: Path, sim: BackgroundServer
) -> None:
    (folder / "alpha-svc.yaml").write_text(
        manifest("alpha-svc", description=f'"{EVIL}"').replace(
            "project_id: 1}", f"project_id: 1, labels: {{team: '{EVIL}'}}}}"
        )
    )
    (folder / "evil.yaml").write_text(manifest(f'"{EVIL}"'))
    async with serving(tmp_path, folder, sim) as served, httpx.AsyncClient() as http:
        # the invalid name keeps the set from applying: fix it, keep a bad one elsewhere
        assert served.service.manifest_errors
        overview = await http.get(served.url + "/")
        (folder / "evil.yaml").unlink()
        served.service.trigger("test")
        await served.settled(2)
        detail = await http.get(served.url + "/deployments/1/alpha-svc")
        plan = await http.get(served.url + "/plan")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in overview.text  # the manifest error
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail.text  # description and label
    for page in (overview, detail, plan):
        assert page.headers["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert EVIL not in page.text
        found = scripts_of(page.text)
        assert [s.get("src", "").split("?")[0] for s in found.scripts] == ["/static/ui.js"]
        assert found.handlers == []


async def page_showing(http: httpx.AsyncClient, url: str, text: str) -> httpx.Response:
    """The page at `url` once it shows `text`: read again until it does (up to 20 s)."""
    deadline = asyncio.get_running_loop().time() + 20
    while text not in (page := await http.get(url)).text:
        assert asyncio.get_running_loop().time() < deadline, f"{url} never showed {text!r}"
        await asyncio.sleep(0.05)
    return page


async def test_secrets_never_reach_a_page_or_feed(
    tmp_path: Path, folder: Path, sim: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UI_CANARY", CANARIES["interpolated"])
    monkeypatch.setenv("UI_FLAVOR", CANARIES["flavor"])
    envs = f"  envs: {{HF_TOKEN: '${{UI_CANARY}}', PLAIN: {CANARIES['env_value']}}}\n"
    (folder / "alpha-svc.yaml").write_text(
        manifest("alpha-svc", image="${UI_CANARY}", description="${UI_CANARY}", extra=envs)
    )  # the image shows in the deployment's log lines too
    # the API answers an unknown flavor with an error that echoes it back
    (folder / "beta-svc.yaml").write_text(
        manifest("beta-svc").replace(f"flavor_name: {FLAVOR}", "flavor_name: ${UI_FLAVOR}")
    )
    async with serving(tmp_path, folder, sim) as served, httpx.AsyncClient() as http:
        live = served.live("alpha-svc") or {}
        assert live["envs"]["HF_TOKEN"] == CANARIES["interpolated"]  # it is live
        assert served.service.last and served.service.last.result == "failed"  # beta-svc
        # read before the drift below: a new rollout starts its log lines afresh
        # the log lines come from the API within the page's own deadline: on a loaded machine a
        # first read may miss them, so read until they are there (bounded to fail fast)
        pages = {
            "/deployments/1/alpha-svc": await page_showing(
                http, served.url + "/deployments/1/alpha-svc", "Pulling image"
            )
        }
        # drift the secret out of band: the pending plan must show a change, not the value
        drifted = {"envs": {**live["envs"], "HF_TOKEN": "x" + CANARIES["interpolated"]}}
        served.sim.simulator.cloud.update(1, "alpha-svc", drifted, "r")
        # a snapshot taken before the drift is reused for its ttl: wait for the plan to show it
        shown = "envs.HF_TOKEN: (sensitive) -&gt; (sensitive)"
        pages["/plan (drifted)"] = await page_showing(http, served.url + "/plan", shown)
        paths = ("/", "/deployments/1/alpha-svc", "/deployments/1/beta-svc")
        pages |= {f"{p} (drifted)": await http.get(served.url + p) for p in paths}
        pages["/api/status"] = await http.get(served.url + "/api/status")
    assert all(page.status_code == 200 for page in pages.values())
    assert_no_canary({path: page.text for path, page in pages.items()})
    assert "Flavor &#39;(sensitive)&#39;" in pages["/deployments/1/beta-svc (drifted)"].text
    assert "Pulling image &#39;(sensitive)&#39;" in pages["/deployments/1/alpha-svc"].text


async def test_read_only_without_the_flag(
    tmp_path: Path, folder: Path, sim: BackgroundServer
) -> None:
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc"))
    async with serving(tmp_path, folder, sim) as served, httpx.AsyncClient() as http:
        app_posts = await http.post(
            served.url + "/ui/actions/sync",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        page = await http.get(served.url + "/")
    assert app_posts.status_code in (404, 405)
    assert "data-action=" not in page.text and 'name="csrf-token"' not in page.text


def test_no_post_route_exists_without_the_flag(tmp_path: Path) -> None:
    from reconciler.config import ApiSettings
    from reconciler.engine import Target
    from reconciler.service import Service
    from reconciler.sources import DirectorySource
    from reconciler.web import build_app

    service = Service(DirectorySource(tmp_path), Target(ApiSettings(), tmp_path / "s.db"))
    posts = {
        getattr(r, "path", "")
        for r in build_app(service).routes
        if "POST" in (getattr(r, "methods", None) or ())
    }
    assert posts == {"/hooks/git"}
    with pytest.raises(ValueError, match="RECONCILER_UI_TOKEN"):
        build_app(service, UiOptions(actions=True))


async def test_actions_need_the_token_and_the_csrf_header(
    tmp_path: Path, folder: Path, sim: BackgroundServer
) -> None:
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc"))
    ui = UiOptions(actions=True, token=Secret(TOKEN), refresh=0.3, snapshot_ttl=0.2)
    async with serving(tmp_path, folder, sim, ui) as served, httpx.AsyncClient() as http:
        page = await http.get(served.url + "/")
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert csrf
        url = served.url + "/ui/actions/sync/1/alpha-svc"
        no_token = await http.post(url, headers={"X-CSRF-Token": csrf[1]})
        wrong = await http.post(
            url, headers={"Authorization": "Bearer nope", "X-CSRF-Token": csrf[1]}
        )
        no_csrf = await http.post(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert (no_token.status_code, wrong.status_code, no_csrf.status_code) == (401, 401, 403)
        assert served.service.triggers["ui"] == 0
        runs = served.service.runs
        served.service.backoff[DeploymentKey(1, "alpha-svc")] = (3, 1e12)
        ok = await http.post(
            url, headers={"Authorization": f"Bearer {TOKEN}", "X-CSRF-Token": csrf[1]}
        )
        assert ok.status_code == 202
        await served.settled(runs + 1)
        assert served.service.triggers["ui"] == 1
        assert DeploymentKey(1, "alpha-svc") not in served.service.backoff
        login = await http.post(
            served.url + "/ui/actions/login",
            headers={"Authorization": f"Bearer {TOKEN}", "X-CSRF-Token": csrf[1]},
        )
        assert login.status_code == 204
    assert TOKEN not in page.text


async def test_sync_all_and_refresh_need_the_token_and_do_what_they_say(
    tmp_path: Path, folder: Path, sim: BackgroundServer
) -> None:
    seed(folder)
    # a snapshot kept for an hour: only the Refresh action (or a reconcile) reads live state again
    ui = UiOptions(actions=True, token=Secret(TOKEN), refresh=0.3, snapshot_ttl=3600)
    async with serving(tmp_path, folder, sim, ui) as served, httpx.AsyncClient() as http:
        page = await http.get(served.url + "/")
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert csrf
        good = {"Authorization": f"Bearer {TOKEN}", "X-CSRF-Token": csrf[1]}

        def sync_of(html: str) -> str:
            found = re.search(r'data-key="1/alpha-svc"[^>]*data-sync="(\w+)"', html)
            assert found, html
            return found[1]

        assert sync_of(page.text) == "Synced"
        served.sim.simulator.cloud.update(1, "alpha-svc", {"description": "by hand"}, "r")

        for action in ("/ui/actions/sync", "/ui/actions/refresh"):
            url = served.url + action
            no_token = await http.post(url, headers={"X-CSRF-Token": csrf[1]})
            no_csrf = await http.post(url, headers={"Authorization": f"Bearer {TOKEN}"})
            assert (no_token.status_code, no_csrf.status_code) == (401, 403), action
        assert served.service.triggers["ui"] == 0
        cached = (await http.get(served.url + "/")).text
        assert sync_of(cached) == "Synced"  # the refused Refresh re-read nothing

        refreshed = await http.post(served.url + "/ui/actions/refresh", headers=good)
        assert refreshed.status_code == 200
        assert served.service.triggers["ui"] == 0  # re-reading live state applies nothing
        assert sync_of((await http.get(served.url + "/")).text) == "OutOfSync"

        stuck = [DeploymentKey(1, "alpha-svc"), DeploymentKey(1, "bad-svc")]
        for key in stuck:
            served.service.backoff[key] = (3, 1e12)
        runs = served.service.runs
        queued = await http.post(served.url + "/ui/actions/sync", headers=good)
        assert queued.status_code == 202 and queued.json() == {"queued": True}
        await served.settled(runs + 1)
        assert served.service.triggers["ui"] == 1
        # every backoff was ended: alpha-svc converged, bad-svc failed once more, from the start
        assert stuck[0] not in served.service.backoff
        assert served.service.backoff[stuck[1]][0] == 1
        assert served.live("alpha-svc") is not None
        assert (served.live("alpha-svc") or {})["description"] != "by hand"  # drift corrected


async def test_a_degraded_deployment_shows_its_log_lines_and_task_states(
    tmp_path: Path, folder: Path
) -> None:
    (folder / "stuck-svc.yaml").write_text(manifest("stuck-svc", image="stuck/model:1"))
    # a short deadline: what the page shows of a stuck rollout, not how long one is waited for
    apply = replace(APPLY, timeout=1)
    with sim_server(stuck_image="^stuck/") as sim:
        async with (
            serving(tmp_path, folder, sim, apply=apply) as served,
            httpx.AsyncClient() as http,
        ):
            page = await http.get(served.url + "/deployments/1/stuck-svc")
    html = page.text
    assert "Degraded" in html and "timed out" in html
    logs = html.split('id="logs"', 1)[1]
    assert "Pulling image &#39;stuck/model:1&#39;" in logs and "ErrImagePull" in logs
    tasks = html.split("Last tasks", 1)[1]
    assert "FINISHED" in tasks


async def test_the_api_down_shows_as_such_not_as_a_crash(
    tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.api import RetryPolicy

    # each read is still retried; its backoff is not slept (else the page's 3 s deadline is)
    monkeypatch.setattr(RetryPolicy, "delay", lambda *_: 0.0)
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc"))
    sim = sim_server().start()
    async with serving(tmp_path, folder, sim) as served, httpx.AsyncClient() as http:
        sim.stop()
        pages = [await http.get(served.url + p) for p in ("/", "/deployments/1/alpha-svc")]
    for page in pages:
        assert page.status_code == 200
        assert "API unreachable" in page.text and "Unknown" in page.text


async def test_unknown_deployment_is_a_404_page(
    tmp_path: Path, folder: Path, sim: BackgroundServer
) -> None:
    async with (
        serving(tmp_path, folder, sim, allow_empty=True) as served,
        httpx.AsyncClient() as http,
    ):
        page = await http.get(served.url + "/deployments/1/nothing-here")
    assert page.status_code == 404 and "1/nothing-here" in page.text


def test_masked_hides_envs_interpolated_paths_and_a_partly_secret_command() -> None:
    body = {"envs": {"A": "1"}, "description": "s3cret", "command": "run --key s3cret", "x": 1}
    out = masked(body, {("description",), ("command", 2)})
    assert out == {
        "envs": {"A": "(sensitive)"},
        "description": "(sensitive)",
        "command": "(sensitive)",
        "x": 1,
    }


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:tok3n@hooks.example.com/services/T0/B0/XyZ",
            "https://***@hooks.example.com/***",
        ),
        ("https://hooks.example.com:8443/?token=abc", "https://hooks.example.com:8443/***"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("git@github.com:org/repo.git", "github.com:***"),
        ("not a url", "***"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_url_keeps_a_repository_path_but_not_its_credentials() -> None:
    shown = redact_url("https://x-access-token:ghp_abc@github.com/org/repo.git", keep_path=True)
    assert shown == "https://***@github.com/org/repo.git"


@pytest.mark.parametrize(
    ("git_url", "link"),
    [
        ("https://github.com/org/repo.git", "https://github.com/org/repo/commit/abc1234"),
        ("git@github.com:org/repo.git", "https://github.com/org/repo/commit/abc1234"),
        ("https://tok@gitlab.com/g/sub/repo", "https://gitlab.com/g/sub/repo/-/commit/abc1234"),
        ("https://git.internal.example/org/repo.git", None),
        ("/srv/git/repo.git", None),
    ],
)
def test_commit_links_only_on_known_hosts(git_url: str, link: str | None) -> None:
    assert commit_url(git_url, "abc1234") == link
    assert commit_url(git_url, "not-a-sha") is None


def test_overview_links_the_revision_and_hides_the_git_credentials(tmp_path: Path) -> None:
    from reconciler.config import ApiSettings
    from reconciler.engine import Target
    from reconciler.model import DesiredState
    from reconciler.service import Service
    from reconciler.sources import GitSource
    from reconciler.ui.snapshot import Snapshot
    from reconciler.ui.view import overview

    url = "https://x-access-token:ghp_s3cr3t@github.com/acme/infra.git"
    service = Service(GitSource(url, "main", tmp_path), Target(ApiSettings(), tmp_path / "s.db"))
    revision = "0123456789abcdef0123456789abcdef01234567"
    service.good = (DesiredState((), 0), revision)
    shown = overview(service, Snapshot(0.0, (), None), 0.0)
    assert shown["revision_link"] == f"https://github.com/acme/infra/commit/{revision}"
    assert shown["source"] == "https://***@github.com/acme/infra.git#main"
    assert "ghp_s3cr3t" not in repr(shown)


async def test_owned_credentials_secrets_and_keys_are_listed_without_their_secrets(
    tmp_path: Path, folder: Path, sim: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UI_REGISTRY_PASSWORD", CANARIES["secret_field"])
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc"))
    (folder / "ghcr.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: InferenceRegistryCredential\n"
        "metadata: {name: ghcr-bot, project_id: 1}\n"
        "spec: {registry_url: ghcr.io, username: bot, password: '${UI_REGISTRY_PASSWORD}'}\n"
    )
    async with serving(tmp_path, folder, sim) as served, httpx.AsyncClient() as http:
        page = await http.get(served.url + "/")
        # serve applies the other kinds too (it dropped them before: its plan lost `objects`)
        assert served.sim.simulator.cloud.objects.exists("registry_credentials", 1, "ghcr-bot")
    row = re.search(r'<tr data-object="InferenceRegistryCredential/1/ghcr-bot">.*?</tr>', page.text)
    assert row and "Synced" in row[0]
    assert_no_canary({"/": page.text})


async def test_recent_applies_come_from_the_journal_and_survive_a_restart(
    tmp_path: Path, folder: Path, sim: BackgroundServer
) -> None:
    (folder / "bad-svc.yaml").write_text(manifest("bad-svc", image="broken/model:1"))
    async with serving(tmp_path, folder, sim) as served:
        report = served.service.last_report
        assert report is not None
        [first_task] = report.outcomes[0].task_ids
    async with serving(tmp_path, folder, sim) as served, httpx.AsyncClient() as http:
        page = await http.get(served.url + "/deployments/1/bad-svc")
    applies = page.text.split("Recent applies", 1)[1]
    assert first_task in applies  # written by the service that ran before this one
    assert "Failed to deploy image &#39;broken/model:1&#39;" in applies


@pytest.mark.slow
async def test_the_overview_names_the_projects_this_replica_holds(
    tmp_path: Path, folder: Path, sim: BackgroundServer, pg_dsn: str
) -> None:
    from reconciler.replicas import ProjectLeases

    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc"))  # project 1
    other = ProjectLeases(pg_dsn)
    assert other.rebalance([1]) == {1}  # another replica holds project 1 first
    try:
        async with (
            serving(tmp_path, folder, sim, state_url=pg_dsn) as served,
            httpx.AsyncClient() as http,
        ):
            page = (await http.get(served.url + "/")).text
            assert "Projects held by this replica: none" in page
            other.close()  # it leaves: its lock is gone, this replica takes the project
            runs = served.service.runs
            served.service.trigger("test")
            await served.settled(runs + 1)
            page = (await http.get(served.url + "/")).text
            assert "Projects held by this replica: 1<" in page
            status = (await http.get(served.url + "/api/status")).json()
            assert status["projects"] == [1]
    finally:
        other.close()
