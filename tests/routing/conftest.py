"""Fixtures and helpers shared by the FIX routing tests."""

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from oms_site.celery import app as celery_app
from routing.fix import codec
from routing.fix.session import HEADER_TAGS
from routing.hosting import SessionHost, VenueRunner
from routing.models import Venue
from routing.simulator import SimulatorServer
from tests.conftest import compliance_quiet_for_lifecycle

from .sim_client import SimClient

_host_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def _lifecycle_compliance(request):
    compliance_quiet_for_lifecycle(request)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll until ``predicate()`` is truthy (and return it), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def eager():
    """Run Celery tasks inline, as a worker would run them."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def venue_at(port: int, name: str) -> Venue:
    """Venue SIM pointing at a local acceptor on ``port`` (we are OMS, it is SIM)."""
    return Venue.objects.create(
        code="SIM",
        name=name,
        host="127.0.0.1",
        port=port,
        sender_comp_id="OMS",
        target_comp_id="SIM",
        heartbeat_interval=30,
    )


@pytest.fixture
def hosts():
    """Start OMS session hosts in-process, as Celery workers run them; stopped (lease
    released) at the end of the test."""
    started: list[SessionHost] = []

    def start(holder_id: str | None = None, runner_class=VenueRunner, **options) -> SessionHost:
        options.setdefault("discover_every", 0.2)
        host = SessionHost(holder_id=holder_id or f"test-host-{next(_host_ids)}", **options)
        host.runner_class = runner_class
        started.append(host.start())
        return host

    yield start
    for host in started:
        host.stop(release=True)


@pytest.fixture
def make_sim():
    """Start in-memory venue simulators on free ports; at the end each stops, and the
    clients must never have session-rejected anything it sent."""
    servers: list[SimulatorServer] = []

    def make(**options) -> SimulatorServer:
        options.setdefault("fill_interval", 0.2)
        server = SimulatorServer("127.0.0.1", 0, **options).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
        assert server.session_rejects == [], "the client session-rejected something the simulator sent"


@pytest.fixture
def connect():
    """Connect FIX clients to a simulator; at the end each logs out, and every report
    it received must have been a valid FIX 4.4 message it never had to reject."""
    clients: list[SimClient] = []

    def make(server, **options) -> SimClient:
        client = SimClient(server.port, **options).connect()
        clients.append(client)
        return client

    yield make
    for client in clients:
        if client.session.transport is not None:
            client.logout()
        for fields in client.raw_frames:
            msg_type = dict(fields)[35]
            if msg_type in ("8", "9", "P"):
                body = [(t, v) for t, v in fields if t not in HEADER_TAGS]
                codec.validate_inbound(msg_type, body, "FIX.4.4", frozenset({"8", "9", "j", "P"}))
        assert client.rejects == [] and client.fatal == []


ROOT = Path(__file__).resolve().parents[2]
REDIS = ("127.0.0.1", 6379)


def _redis_up() -> bool:
    try:
        socket.create_connection(REDIS, timeout=0.5).close()
        return True
    except OSError:
        return False


def _database_url() -> str:
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@pytest.fixture
def workers(tmp_path):
    """Start real ``celery -A oms_site worker`` processes (threads pool, each in a
    session of its own) on the test database and Redis; stopped at the end."""
    if not _redis_up():
        pytest.skip("needs Redis on 127.0.0.1:6379")
    started: list[subprocess.Popen] = []
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/0",
        "CELERY_TASK_DEFAULT_QUEUE": f"oms-hosting-test-{os.getpid()}",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DB_CONN_MAX_AGE": "0",
    }

    def start(name: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "oms_site",
                "worker",
                "-P",
                "threads",
                "-c",
                "2",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"{name}@%h",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in started:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
