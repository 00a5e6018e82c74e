"""The OMS as the README runs it: ``bin/run`` on a PostgreSQL database of its own, on free
ports, polled through its database. Used by the browser tests (``tests/browser``) and
the operating-day tests that stop and start ``bin/run`` (``tests/test_run_restart.py``)."""

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
from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 300  # a first run migrates a new database
SESSION_SQL = (
    "SELECT s.status FROM routing_venuesession s JOIN routing_venue v ON v.id = s.venue_id WHERE v.code = 'SIM'"
)


IN_CI = os.environ.get("CI") == "true"


def unavailable(reason: str):
    """A test of the running OMS that cannot run here: CI must run it (fail), elsewhere
    say what is missing and skip."""
    import pytest

    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (waiting for its parent to reap it) is dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def postgres_server() -> str | None:
    """``postgresql://user[:password]@host:port`` of the tests' PostgreSQL, or None when
    the tests run on another database."""
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        return None
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgresql://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"


def servers_required(who: str) -> str:
    """The PostgreSQL server ``who`` (the tests that run bin/run) start the OMS on, once
    Redis answers too; unavailable otherwise."""
    server = postgres_server()
    if server is None:
        unavailable(f"{who} run the OMS on PostgreSQL (set DATABASE_URL)")
    if not reachable("127.0.0.1", 6379):
        unavailable(f"{who} need Redis on 127.0.0.1:6379")
    return server


def database_create(server: str, name: str) -> str:
    """A new, empty database ``name`` (dropped first if left over); its DSN."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def database_drop(server: str, name: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


def bin_run_env(*, dsn: str, var_dir: Path, web_port: int, sim_port: int, tag: str, **extra: str) -> dict[str, str]:
    """The environment for ``bin/run`` on database ``dsn``, Redis db 14 with a queue of
    its own (``tag``), free ports; ``extra`` adds or overrides variables."""
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/14",
        "CELERY_TASK_DEFAULT_QUEUE": f"oms-{tag}-{os.getpid()}",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "OMS_VAR_DIR": str(var_dir),
        "BIND": f"127.0.0.1:{web_port}",
        "WEB_WORKERS": "2",
        "SIM_PORT": str(sim_port),
        "SIM_FILL_INTERVAL": "0.5",
        **extra,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def bin_run_start(*, env: dict[str, str], log: Path) -> RunningOms:
    """Start ``bin/run`` (in a session of its own, as a terminal would run it; its
    output appended to ``log``) and wait until the web server answers and the worker's
    FIX session to the simulator is logged on."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            ["bash", str(ROOT / "bin" / "run")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    running = RunningOms(url=f"http://{env['BIND']}", dsn=env["DATABASE_URL"], log=log, process=process)
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
            SESSION_SQL,
            (),
            lambda rows: rows and rows[0][0] == "connected",
            timeout=90,
            what="the worker's FIX session to the simulator to log on",
        )
    except BaseException:
        bin_run_stop(process)
        raise
    return running


def bin_run_stop(process: subprocess.Popen) -> None:
    """Stop ``bin/run`` as its README says (SIGTERM to its session), then SIGKILL
    whatever is left of its process group."""
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
