"""Order submission throughput through a real server, beside pgbench on the same database.

    .venv/bin/python bench/api_submit.py [--seconds 20] [--clients 8] [--web-workers 4]

Creates a fresh PostgreSQL database (default oms_bench on 127.0.0.1), migrates it, seeds
the demo data, starts gunicorn, warms it up, analyzes the database (``statistics_refresh``),
and has N concurrent clients (threads with keep-alive
connections) POST /api/v1/orders/ for the given time. Each request is a full submit:
validation, the account lock, order row, every compliance rule (results stored),
routing, OrderRequest, outbox row and audit events, in one transaction. The orders are
ones compliance passes (BUYs at the reference price, varied quantities); the firm's rate
and daily limits are raised for the run, as a high-volume desk would calibrate them, so
the figure is the cost of the full pass path. Then runs pgbench TPC-B (-c 8 -j 2) for the same time on
a database of the same server, and prints both.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from _pgbench import pgbench_tps

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def sh(cmd: list[str], env: dict[str, str] | None = None, quiet: bool = True) -> str:
    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"command failed: {' '.join(cmd)}")
    return result.stdout


def recreate_db(pg: list[str], name: str) -> None:
    subprocess.run([*pg, "dropdb", "--if-exists", name], capture_output=True)
    sh([*pg, "createdb", name])


def server_database(*, pg_host: str, pg_user: str, db: str, calibration: str) -> dict[str, str]:
    """A fresh database ``db``, migrated, with the demo data and ``calibration`` (a
    script for ``manage.py shell``) applied; returns the environment a production-like
    server (DEBUG off) runs with on it."""
    recreate_db(["env", f"PGHOST={pg_host}", f"PGUSER={pg_user}"], db)
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{pg_user}@{pg_host}:5432/{db}",
        "DEBUG": "false",
        "SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
    }
    sh([PY, "manage.py", "migrate", "--noinput"], env)
    sh([PY, "manage.py", "seed_demo", "--force"], env)
    sh([PY, "manage.py", "shell", "-c", calibration], env)
    return env


def statistics_refresh(*, pg_host: str, pg_user: str, db: str) -> None:
    """ANALYZE the run's database, as autovacuum has on a server that has been running.
    A database made for the run grows from empty tables within seconds, before
    autovacuum's first pass (a minute): without this the planner plans every read for
    empty tables (sequential scans, loops over an account's every order) and the
    figure is of that, not of the OMS. pgbench's own tables are analyzed by its
    initialisation."""
    sh(["psql", "-h", pg_host, "-U", pg_user, "-d", db, "-qc", "ANALYZE"])


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/api/schema/")
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


BENCH_CALIBRATION = """
from compliance.models import RuleSetting
RuleSetting.objects.filter(scope="firm", rule__in=["order_rate_trader", "order_rate_account"]).update(threshold=100000)
RuleSetting.objects.filter(scope="firm", rule__in=["daily_notional_limit", "gross_notional_limit", "net_notional_limit"]).update(threshold=10**15)
RuleSetting.objects.filter(scope="firm", rule="position_limit").update(threshold=10**12)
"""
PRICES = {"AAPL": "175.50", "MSFT": "415.20", "GOOGL": "152.80", "AMZN": "178.30", "NVDA": "121.30", "JPM": "198.40"}


_ORDER_NUMBERS = itertools.count(1)  # shared by the client threads (next() holds the GIL)


def client(
    port: int, token: str, seconds: float, latencies: list[float], errors: list[str], barrier, statuses=None
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    symbols = list(PRICES)
    barrier.wait()
    stop_at = time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        i = next(_ORDER_NUMBERS)
        body = json.dumps(
            {
                "client_order_id": uuid.uuid4().hex,
                "account": "ACC-1" if i % 2 else "ACC-2",
                "symbol": symbols[i % len(symbols)],
                "side": "BUY",
                # One order number for every client and the warm-up: no two orders of a
                # run share account, symbol and quantity (7919 is prime to 20,000), so
                # none is a duplicate; notional under the 10M fat-finger cap.
                "quantity": 1 + (i * 7919) % 20000,
                "order_type": "LIMIT",
                "limit_price": PRICES[symbols[i % len(symbols)]],
            }
        )
        started = time.perf_counter()
        conn.request("POST", "/api/v1/orders/", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - started
        if response.status == 201:
            latencies.append(elapsed)
            if statuses is not None:
                status = json.loads(payload)["status"]
                statuses[status] = statuses.get(status, 0) + 1
        else:
            errors.append(f"{response.status}: {payload[:200]!r}")
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--db", default="oms_bench")
    args = parser.parse_args()

    env = server_database(pg_host=args.pg_host, pg_user=args.pg_user, db=args.db, calibration=BENCH_CALIBRATION)
    token = sh([PY, "manage.py", "drf_create_token", "trader1"], env).split()[2]

    server = subprocess.Popen(
        [
            str(Path(PY).parent / "gunicorn"),
            "oms_site.wsgi:application",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--workers",
            str(args.web_workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_for_port(args.port)
        # Warm-up: every worker opens its database connection and imports its code.
        warm_barrier = threading.Barrier(args.clients)
        threads = [
            threading.Thread(target=client, args=(args.port, token, 2.0, [], [], warm_barrier))
            for _ in range(args.clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statistics_refresh(pg_host=args.pg_host, pg_user=args.pg_user, db=args.db)

        latencies: list[float] = []
        errors: list[str] = []
        statuses: dict[str, int] = {}
        start_barrier = threading.Barrier(args.clients + 1)
        threads = [
            threading.Thread(
                target=client, args=(args.port, token, args.seconds, latencies, errors, start_barrier, statuses)
            )
            for _ in range(args.clients)
        ]
        for t in threads:
            t.start()
        time.sleep(0.5)  # all clients connected and waiting
        started = time.perf_counter()
        start_barrier.wait()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)

    pgbench = pgbench_tps(clients=8, jobs=2, seconds=int(args.seconds), scale=10, host=args.pg_host, user=args.pg_user)

    orders = len(latencies)
    ordered = sorted(latencies)
    rate = orders / elapsed
    print(f"machine: {os.cpu_count()} cores; {args.clients} clients; gunicorn {args.web_workers} sync workers")
    print(f"POST /api/v1/orders/: {orders} orders in {elapsed:.1f}s = {rate:.0f} orders/s, errors {len(errors)}")
    print("order statuses:", ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    if ordered:
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        print(f"latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {ordered[-1] * 1000:.1f} ms")
    print(f"pgbench TPC-B (-c 8 -j 2, scale 10, same server, same run): {pgbench:.0f} tps")
    print(f"ratio orders/s : pgbench tps = {rate / pgbench:.3f}")
    if errors:
        print("first errors:", *errors[:5], sep="\n  ")


if __name__ == "__main__":
    main()
