"""Issue 13, operating day: ``bin/run`` stopped with Ctrl-C and started again on the same
database trades on with no operator action, and so does it after the simulator alone is
killed with ``kill -9`` (bin/run's supervisor starts it again).

The whole system as the README runs it (``tests/_running_oms.py``): migrations, demo
data, the venue simulator with its file store under ``var/``, a Celery worker hosting
the FIX session, gunicorn; orders go in over the REST API with trader1's token."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests._running_oms import (
    ROOT,
    SESSION_SQL,
    RunningOms,
    bin_run_env,
    bin_run_start,
    bin_run_stop,
    database_create,
    database_drop,
    free_port,
    process_alive,
    reachable,
    servers_required,
)

pytestmark = pytest.mark.postgres

FILL_TIMEOUT = 30
_ids = itertools.count(1)


def _api_token(env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", "api_token", "trader1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def _submit(oms: RunningOms, token: str) -> int:
    """POST a limit order the simulator fills (AAPL, trader1's ACC-1); its id. Each has a
    price of its own (an identical order within a minute is held as a duplicate)."""
    number = next(_ids)
    body = {
        "client_order_id": f"RESTART-{os.getpid()}-{number}",
        "account": "ACC-1",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": 100,
        "order_type": "LIMIT",
        "limit_price": f"{176 + number}.00",
    }
    request = urllib.request.Request(
        f"{oms.url}/api/v1/orders/",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.status == 201
        order = json.loads(response.read())
    assert order["status"] == "pending_new", order
    return order["id"]


def _wait_filled(oms: RunningOms, order_id: int, what: str) -> None:
    rows = oms.wait_for(
        "SELECT status, filled_quantity, reject_reason FROM orders_order WHERE id = %s",
        (order_id,),
        lambda rows: rows and rows[0][0] in ("filled", "rejected"),
        timeout=FILL_TIMEOUT,
        what=what,
    )
    assert rows[0][:2] == ("filled", 100), f"{rows[0]}\n{oms.log_tail()}"
    acknowledged = oms.query(
        "SELECT count(*) FROM audit_auditevent WHERE object_type = 'order' AND object_id = %s AND action = %s",
        (str(order_id), "order.acknowledged"),
    )
    assert acknowledged == [(1,)], f"order {order_id} was not acknowledged once: {acknowledged}"


def _supervised_pids(log: Path, name: str) -> list[int]:
    return [int(pid) for pid in re.findall(rf"\[supervise\] {name} started \(pid (\d+)\)", log.read_text())]


def _wait(predicate, timeout: float, what: str, oms: RunningOms) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{oms.log_tail()}")
        time.sleep(0.1)


def _session(oms: RunningOms) -> tuple:
    return oms.query(
        "SELECT s.status, s.fatal, s.stopped FROM routing_venuesession s"
        " JOIN routing_venue v ON v.id = s.venue_id WHERE v.code = 'SIM'"
    )[0]


@pytest.fixture
def run_env(tmp_path):
    server = servers_required("the bin/run restart tests")
    name = f"oms_restart_{os.getpid()}"
    dsn = database_create(server, name)
    env = bin_run_env(
        dsn=dsn,
        var_dir=tmp_path / "var",
        web_port=free_port(),
        sim_port=free_port(),
        tag="restart",
        SIM_FILL_MODE="immediate",
        OMS_CLORDID_PREFIX=f"RST{os.getpid()}-",
        SUPERVISE_STOP_TIMEOUT="15",
    )
    started: list[subprocess.Popen] = []
    yield env, started
    for process in started:
        bin_run_stop(process)
    database_drop(server, name)


def test_bin_run_stopped_with_ctrl_c_and_a_killed_simulator_come_back_trading_on_their_own(run_env, tmp_path):
    env, started = run_env
    log = tmp_path / "bin-run.log"

    oms = bin_run_start(env=env, log=log)
    started.append(oms.process)
    token = _api_token(env)
    _wait_filled(oms, _submit(oms, token), "the first run's order to be filled")
    first_pids = {name: _supervised_pids(log, name) for name in ("simulator", "worker", "web")}
    assert all(len(pids) == 1 for pids in first_pids.values()), first_pids

    # Ctrl-C: SIGINT to bin/run's foreground process group (the supervised commands
    # run in sessions of their own, so only the supervisor gets it and stops them).
    os.killpg(oms.process.pid, signal.SIGINT)
    assert oms.process.wait(40) == 0, oms.log_tail()
    assert "[supervise] stopped" in log.read_text()
    assert [pid for pids in first_pids.values() for pid in pids if process_alive(pid)] == []
    assert not reachable("127.0.0.1", int(env["SIM_PORT"])), "the simulator still listens"

    # Started again on the same database and var/: the OMS logs on with its continued
    # sequence numbers, the simulator with its own (its file store), no operator.
    oms = bin_run_start(env=env, log=log)
    started.append(oms.process)
    assert _session(oms) == ("connected", False, False)
    _wait_filled(oms, _submit(oms, token), "an order after the restart to be filled")

    # kill -9 the simulator alone: bin/run's supervisor starts it again, the worker
    # reconnects; an order sent meanwhile waits for the session and is filled.
    simulator = _supervised_pids(log, "simulator")[-1]
    os.kill(simulator, signal.SIGKILL)
    during = _submit(oms, token)
    _wait(
        lambda: len(_supervised_pids(log, "simulator")) == 3,
        timeout=20,
        what="bin/run to start the simulator again",
        oms=oms,
    )
    assert re.search(rf"simulator \(pid {simulator}\) was killed by signal 9", log.read_text())
    _wait_filled(oms, during, "the order sent while the simulator was down to be filled")
    oms.wait_for(SESSION_SQL, (), lambda rows: rows[0][0] == "connected", timeout=20, what="the session to log on")
    _wait_filled(oms, _submit(oms, token), "an order after the simulator's restart to be filled")
    assert _session(oms) == ("connected", False, False)
    assert oms.process.poll() is None
    assert "GIVING UP" not in log.read_text()
    assert oms.query("SELECT id, status FROM orders_order WHERE status <> 'filled'") == []
