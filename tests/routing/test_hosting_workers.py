"""The real thing: plain ``celery -A oms_site worker`` processes host the FIX session
(the bootstep), apply what the venue reports through real Celery tasks on Redis, and
hand the venue over when the holder is killed (SIGKILL: no Logout, no lease release)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from routing.models import Venue, VenueSession

from .fix_acceptor import ScriptedVenue
from .test_hosting import connected, order_status, post_order, session_row, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

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


def test_celery_workers_host_the_session_and_hand_it_over_when_the_holder_is_killed(workers, api, account, aapl):
    acceptor = ScriptedVenue().start()
    try:
        sim = Venue.objects.create(
            code="SIM", host="127.0.0.1", port=acceptor.port, sender_comp_id="OMS", target_comp_id="SIM"
        )
        first, second = workers("w1"), workers("w2")
        wait_for(lambda: connected(sim), timeout=30, what="a worker to log on")
        time.sleep(2)
        assert acceptor.logons == 1

        order = post_order(api, account, aapl)
        wait_for(lambda: order_status(order) == "filled", timeout=15, what="the fill applied by a Celery task")

        holder_pid = int(session_row(sim).holder.split(":")[1])
        holder, other = (first, second) if holder_pid == first.pid else (second, first)
        assert holder_pid == holder.pid
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(5)
        killed_at = time.monotonic()
        wait_for(
            lambda: (
                (row := session_row(sim)).holder.split(":")[1] == str(other.pid)
                and row.status == VenueSession.Status.CONNECTED
            ),
            timeout=15,
            what="the other worker to take over",
        )
        assert time.monotonic() - killed_at < 10
        assert acceptor.logons == 2

        again = post_order(api, account, aapl)
        wait_for(lambda: order_status(again) == "filled", timeout=15, what="the next fill after the takeover")
        assert len(acceptor.app_messages("D")) == 2
    finally:
        acceptor.stop()
