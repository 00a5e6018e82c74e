"""The OMS as the README runs it, driven by headless Chromium.

``oms`` (one per test module) starts ``bin/run`` (migrations, demo data, the venue simulator, a Celery worker
hosting the FIX session, the web server) on a database of its own, on free ports, and
stops it after the session. ``browser`` is Debian's Chromium through Playwright
(Playwright's own browser download does not work here). Every test saves screenshots
under test-artifacts/browser/."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("OMS_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI") == "true"
# The simulator leaves orders in this symbol working (no fills): to amend and cancel.
RESTING_SYMBOL = "IBM"
START_TIMEOUT = 300  # a first run migrates a new database


def _unavailable(reason: str):
    # CI must run the browser tests; elsewhere say what is missing and skip.
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


@dataclass
class RunningOms:
    url: str
    dsn: str
    log: Path
    process: subprocess.Popen

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def wait_for(self, sql: str, params: tuple, predicate, timeout: float, what: str):
        """Poll the OMS's database until ``predicate(rows)``; the time it became true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.query(sql, params)
            if predicate(rows):
                return rows
            if self.process.poll() is not None:
                raise AssertionError(f"bin/run exited ({self.process.returncode}); see {self.log}")
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; see {self.log}")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def oms(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        _unavailable(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        _unavailable("the browser tests run the OMS on PostgreSQL (set DATABASE_URL)")
    host, port = db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)
    if not _reachable("127.0.0.1", 6379):
        _unavailable("the browser tests need Redis on 127.0.0.1:6379")
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    server = f"postgresql://{user}{password}@{host}:{port}"
    name = f"oms_browser_{os.getpid()}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')

    workdir = tmp_path_factory.mktemp("oms-run")
    web_port, sim_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"{server}/{name}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/14",
        "CELERY_TASK_DEFAULT_QUEUE": f"oms-browser-{os.getpid()}",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "OMS_VAR_DIR": str(workdir / "var"),
        "BIND": f"127.0.0.1:{web_port}",
        "WEB_WORKERS": "2",
        "SIM_PORT": str(sim_port),
        "SIM_FILL_INTERVAL": "0.5",
        "SIM_REST_SYMBOLS": RESTING_SYMBOL,
        "OMS_CLORDID_PREFIX": f"BRW{os.getpid()}-",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = workdir / "bin-run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["bash", str(ROOT / "bin" / "run")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    running = RunningOms(url=f"http://127.0.0.1:{web_port}", dsn=f"{server}/{name}", log=log, process=process)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise AssertionError(f"bin/run exited ({process.returncode}):\n{running.log_tail()}")
            try:
                with urllib.request.urlopen(f"{running.url}/login/", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the web server did not answer in {START_TIMEOUT}s:\n{running.log_tail()}")
            time.sleep(0.5)
        running.wait_for(
            "SELECT s.status FROM routing_venuesession s JOIN routing_venue v ON v.id = s.venue_id WHERE v.code = 'SIM'",
            (),
            lambda rows: rows and rows[0][0] == "connected",
            timeout=90,
            what="the worker's FIX session to the simulator to log on",
        )
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        # Whatever bin/run started and left behind (it was its own process group).
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
