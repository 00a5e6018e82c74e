"""The OMS as the README runs it, driven by headless Chromium.

``oms`` (one per test module) starts ``bin/run`` (migrations, demo data, the venue simulator, a Celery worker
hosting the FIX session, the web server) on a database of its own, on free ports, and
stops it after the session. ``browser`` is Debian's Chromium through Playwright
(Playwright's own browser download does not work here). Every test saves screenshots
under test-artifacts/browser/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests._running_oms import (
    bin_run_env,
    bin_run_start,
    bin_run_stop,
    database_create,
    database_drop,
    free_port,
    servers_required,
    unavailable,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("OMS_CHROMIUM", "/usr/bin/chromium")
# The simulator leaves orders in this symbol working (no fills): to amend and cancel.
RESTING_SYMBOL = "IBM"


@pytest.fixture(scope="module")
def oms(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        unavailable(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    server = servers_required("the browser tests")
    name = f"oms_browser_{os.getpid()}"
    dsn = database_create(server, name)
    workdir = tmp_path_factory.mktemp("oms-run")
    env = bin_run_env(
        dsn=dsn,
        var_dir=workdir / "var",
        web_port=free_port(),
        sim_port=free_port(),
        tag="browser",
        SIM_REST_SYMBOLS=RESTING_SYMBOL,
        OMS_CLORDID_PREFIX=f"BRW{os.getpid()}-",
    )
    running = None
    try:
        running = bin_run_start(env=env, log=workdir / "bin-run.log")
        yield running
    finally:
        if running is not None:
            bin_run_stop(running.process)
        database_drop(server, name)


@pytest.fixture(scope="module")
def browser(oms):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser, oms, request):
    """Pages in fresh browser contexts (separate sign-ins); an uncaught script error
    on any of them fails the test, and each is screenshotted at the end."""
    contexts = []
    errors: list[str] = []

    def make():
        context = browser.new_context(base_url=oms.url, viewport={"width": 1440, "height": 900})
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        contexts.append(context)
        return page

    yield make
    for index, context in enumerate(contexts):
        for page in context.pages:
            snap(page, f"{request.node.name}-end-{index}")
        context.close()
    assert not errors, errors


def snap(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page, username: str, path: str = "/login/") -> None:
    page.goto(path)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"{username}-demo-pass")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login/" not in url)
