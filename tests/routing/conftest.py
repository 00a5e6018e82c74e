"""Fixtures and helpers shared by the FIX routing tests."""

import itertools
import time

import pytest

from oms_site.celery import app as celery_app
from routing.hosting import SessionHost, VenueRunner
from routing.models import Venue
from tests.conftest import compliance_quiet_for_lifecycle

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
