"""The web page in a real headless Chromium (Debian's), driven by Playwright.

Each test runs the service with its page on a loopback port against the simulator over HTTP.
Screenshots go to the test's temporary folder; with UI_SCREENSHOTS_DIR set they are also copied
there (that is how docs/ui-overview.png and docs/ui-deployment.png are made).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import Secret
from reconciler.ui import UiOptions

from .conftest import manifest
from .uiharness import TOKEN, BackgroundServer, serving

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("RECONCILER_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
EVIL = "<script>alert(1)</script>"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM}: apt-get install chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


def seed(folder: Path) -> None:
    labels = "project_id: 1, labels: {team: search}}"
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc").replace("project_id: 1}", labels))
    (folder / "beta-svc.yaml").write_text(manifest("beta-svc", min_=2, max_=3))
    (folder / "gamma-svc.yaml").write_text(manifest("gamma-svc").replace("project_id: 1}", labels))
    (folder / "bad-svc.yaml").write_text(manifest("bad-svc", image="broken/model:1"))


def shoot(path: Path) -> None:
    target = os.environ.get("UI_SCREENSHOTS_DIR")
    if target:
        shutil.copy(path, Path(target) / path.name)


async def open_page(browser: Any, url: str, viewport: dict[str, int] = DESKTOP) -> Any:
    page = await browser.new_page(viewport=viewport)
    page.errors = []
    page.dialogs = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("dialog", lambda dialog: page.dialogs.append(dialog.message))
    await page.goto(url)
    return page


async def count(page: Any, table: str, state: str) -> str:
    text: str = await page.locator(f"#{table} li[data-state='{state}'] .count").inner_text()
    return text


async def visible_keys(page: Any) -> list[str]:
    keys: list[str] = await page.eval_on_selector_all(
        "#rows tr[data-key]:not([hidden])", "rows => rows.map(r => r.dataset.key)"
    )
    return keys


async def test_overview_counts_filter_sort_keyboard_and_screenshots(
    browser: Any, tmp_path: Path, folder: Path, sim: BackgroundServer
) -> None:
    seed(folder)
    async with serving(tmp_path, folder, sim) as served:
        page = await open_page(browser, served.url + "/")
        assert await count(page, "sync-counts", "Synced") == "3"
        assert await count(page, "sync-counts", "OutOfSync") == "1"
        assert await count(page, "health-counts", "Healthy") == "3"
        assert await count(page, "health-counts", "Missing") == "1"
        # every state is a word as well as a colour
        assert await page.locator("#rows tr[data-key='1/bad-svc']").inner_text() != ""
        assert "Missing" in await page.locator("#rows tr[data-key='1/bad-svc']").inner_text()
        await page.screenshot(path=str(tmp_path / "ui-overview.png"))
        shoot(tmp_path / "ui-overview.png")

        everything = await visible_keys(page)
        assert len(everything) == 4
        await page.fill("#filter-text", "alpha")
        assert await visible_keys(page) == ["1/alpha-svc"]
        await page.fill("#filter-text", "")
        await page.select_option("#filter-health", "Missing")
        assert await visible_keys(page) == ["1/bad-svc"]
        await page.select_option("#filter-health", "")
        await page.fill("#filter-label", "team=search")
        assert await visible_keys(page) == ["1/alpha-svc", "1/gamma-svc"]
        assert await page.locator("#shown").inner_text() == "2 of 4 shown"
        await page.fill("#filter-label", "")

        await page.click("th button[data-sort='1']")  # by name, ascending
        assert await visible_keys(page) == sorted(everything)
        await page.click("th button[data-sort='1']")  # and descending
        assert await visible_keys(page) == sorted(everything, reverse=True)
        assert await page.get_attribute("th:nth-child(2)", "aria-sort") == "descending"

        await page.keyboard.press("/")
        assert await page.evaluate("document.activeElement.id") == "filter-text"
        await page.locator("#rows tr[data-key]").first.focus()
        await page.keyboard.press("ArrowDown")
        await page.keyboard.press("j")
        focused = await page.evaluate("document.activeElement.dataset.key")
        assert focused == sorted(everything, reverse=True)[2]
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"**/deployments/1/{focused.split('/')[1]}")

        phone = await open_page(browser, served.url + "/", PHONE)
        width = await phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], width  # no sideways scrolling on a phone
        assert await phone.locator("#rows tr[data-key='1/bad-svc']").is_visible()
        await phone.screenshot(path=str(tmp_path / "ui-phone.png"), full_page=True)
        assert page.errors == [] and phone.errors == []


async def test_drift_shows_within_a_refresh_without_reload(
    browser: Any, tmp_path: Path, folder: Path, sim: BackgroundServer
) -> None:
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc", description="as written"))
    async with serving(tmp_path, folder, sim, self_heal=False) as served:
        page = await open_page(browser, served.url + "/")
        row = page.locator("#rows tr[data-key='1/alpha-svc']")
        assert await row.get_attribute("data-sync") == "Synced"
        await page.evaluate("window.notReloaded = true")
        before = int(await page.evaluate("document.body.dataset.refreshed || '0'"))
        served.sim.simulator.cloud.update(1, "alpha-svc", {"description": "by hand"}, "r")
        # the refresh count at the moment the row turns (counted in the same task as the swap)
        seen = await page.wait_for_function(
            """() => {
                const row = document.querySelector("#rows tr[data-key='1/alpha-svc']");
                return row && row.dataset.sync === "OutOfSync" && document.body.dataset.refreshed;
            }""",
            polling=20,
            timeout=5000,
        )
        after = int(await seen.json_value())
        # a snapshot lives less than one refresh period: the refresh in flight when the drift
        # was made may still show the old state, the next one shows the new
        assert after - before <= 2
        assert await page.evaluate("window.notReloaded") is True
        assert "drift: description" in await row.inner_text()
        assert await count(page, "sync-counts", "OutOfSync") == "1"


async def test_a_failing_deployments_page_shows_the_error_and_log_lines(
    browser: Any, tmp_path: Path, folder: Path, sim: BackgroundServer
) -> None:
    (folder / "stuck-svc.yaml").write_text(manifest("stuck-svc", image="stuck/model:1"))
    (folder / "bad-svc.yaml").write_text(manifest("bad-svc", image="broken/model:1"))
    async with serving(tmp_path, folder, sim) as served:
        page = await open_page(browser, served.url + "/deployments/1/stuck-svc")
        text = await page.locator("main").inner_text()
        assert "Degraded" in text
        assert "failed to pull image" in text.lower()
        logs = await page.locator("#logs pre").inner_text()
        assert "Pulling image 'stuck/model:1'" in logs and "ErrImagePull" in logs
        await page.screenshot(path=str(tmp_path / "ui-deployment.png"), full_page=True)
        shoot(tmp_path / "ui-deployment.png")

        phone = await open_page(browser, served.url + "/deployments/1/stuck-svc", PHONE)
        assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert await phone.locator("#logs pre").is_visible()

        bad = await open_page(browser, served.url + "/deployments/1/bad-svc")
        error = await bad.locator("#tasks").inner_text()
        assert "Failed to deploy image 'broken/model:1'" in error
        assert "failed" in error and "ERROR" in error  # the outcome, and the task's state now
        plan = await open_page(browser, served.url + "/plan")
        assert "1/bad-svc" in await plan.locator("#plan").inner_text()


async def test_sync_now_needs_the_token(
    browser: Any, tmp_path: Path, folder: Path, sim: BackgroundServer
) -> None:
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc"))
    ui = UiOptions(actions=True, token=Secret(TOKEN), refresh=0.3, snapshot_ttl=0.2)
    async with serving(tmp_path, folder, sim, ui) as served:
        page = await open_page(browser, served.url + "/deployments/1/alpha-svc")
        await page.click("button[data-action='/ui/actions/sync/1/alpha-svc']")
        await page.wait_for_selector("#action-result:has-text('refused (401)')")
        assert served.service.triggers["ui"] == 0

        await page.fill("#token", "wrong-token")
        await page.click("#login button")
        await page.wait_for_selector("#login-state:has-text('wrong token')")

        runs = served.service.runs
        await page.fill("#token", TOKEN)
        await page.click("#login button")
        await page.wait_for_selector("#login-state:has-text('signed in')")
        await page.click("button[data-action='/ui/actions/sync/1/alpha-svc']")
        await page.wait_for_selector("#action-result:has-text('done (202)')")
        await served.settled(runs + 1)
        assert served.service.triggers["ui"] == 1
        assert TOKEN not in await page.content()


async def test_a_script_name_renders_as_text(
    browser: Any, tmp_path: Path, folder: Path, sim: BackgroundServer
) -> None:
    (folder / "evil.yaml").write_text(manifest(f'"{EVIL}"'))
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc", description=f'"{EVIL}"'))
    async with serving(tmp_path, folder, sim) as served:
        page = await open_page(browser, served.url + "/")
        problems = await page.locator("#problems").inner_text()
        assert EVIL in problems  # shown as the text it is
        assert await page.evaluate("document.scripts.length") == 1  # ours only
        (folder / "evil.yaml").unlink()
        await served.settled(2)
        detail = await open_page(browser, served.url + "/deployments/1/alpha-svc")
        assert EVIL in await detail.locator("#desired").inner_text()
        assert await detail.evaluate("document.scripts.length") == 1
        assert page.dialogs == [] and detail.dialogs == []
