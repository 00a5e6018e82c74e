"""Basket submission throughput through a real server, beside pgbench on the same database.

    .venv/bin/python bench/basket_submit.py [--lines 1000] [--baskets 3] [--clients 2] [--profile]

Creates a fresh PostgreSQL database (default oms_bench_basket on 127.0.0.1), migrates
it, seeds the demo data, starts gunicorn, and has N clients (threads, keep-alive) POST
1,000-line baskets to /api/v1/baskets/, each basket to an account of its own, in two
phases: accounts with no working orders, and accounts with 5,000 working orders
already in them. Each basket is one transaction: every line validated, the account
locked, every line through compliance in line order (every rule, results stored),
routing, requests, outbox rows and audit events, and the 201 answer with every order.
The lines pass compliance (BUYs at the reference price, distinct quantities, notional
under the fat-finger cap; the firm's notional and position limits raised as a desk
would calibrate them). Then pgbench TPC-B (-c 8 -j 2, scale 10) on a database of the
same server, and the ratio. ``--profile`` also profiles one basket in-process
(cProfile, statements per line).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from _pgbench import pgbench_tps
from api_submit import PRICES, server_database, sh, statistics_refresh, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
WORKING_PRELOAD = 5000

CALIBRATION = """
from compliance.models import RuleSetting
RuleSetting.objects.filter(scope="firm", rule__in=["order_rate_trader", "order_rate_account"]).update(threshold=100000)
RuleSetting.objects.filter(scope="firm", rule__in=["daily_notional_limit", "gross_notional_limit", "net_notional_limit"]).update(threshold=10**15)
RuleSetting.objects.filter(scope="firm", rule="position_limit").update(threshold=10**12)
"""

# Accounts for the run (trader1 trades them); the "working" ones get WORKING_PRELOAD
# working orders, inserted directly (their submission is not what is measured).
ACCOUNTS = """
import datetime as dt
from decimal import Decimal
from django.contrib.auth import get_user_model
from orders.models import Account, Order, Security
from routing.models import Venue
trader = get_user_model().objects.get(username="trader1")
venue = Venue.objects.get(code="SIM")
securities = list(Security.objects.filter(symbol__in={symbols!r}).order_by("symbol"))
for code in {empty!r} + {working!r}:
    account = Account.objects.create(code=code, name=code)
    account.traders.add(trader)
for code in {working!r}:
    account = Account.objects.get(code=code)
    Order.objects.bulk_create(
        [
            Order(
                client_order_id=f"pre-{{code}}-{{i}}", account=account, security=securities[i % len(securities)],
                side="BUY", quantity=20000 + i, order_type="LIMIT", limit_price=securities[i % len(securities)].reference_price,
                status="pending_new", venue=venue, cl_ord_id=f"PRE{{code}}-{{i}}", created_by=trader,
            )
            for i in range({preload})
        ],
        batch_size=1000,
    )
# Entered ten minutes ago, as a desk's working orders are (outside the duplicate and
# wash-trade windows; inside the trading day unless run just after the firm's midnight).
from django.db.models import F
Order.objects.filter(client_order_id__startswith="pre-").update(created_at=F("created_at") - dt.timedelta(minutes=10))
"""

PROFILE = """
import cProfile, io, os, pstats, sys, time
sys.path.insert(0, "bench")
from basket_submit import basket_lines
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.db import connection
from orders.api.views import _basket_detail
from orders.services import basket_submit
from rest_framework.renderers import JSONRenderer
trader = get_user_model().objects.get(username="trader1")
lines = basket_lines({account!r}, {lines}, 10_000)
profiler = cProfile.Profile()
statements = []
def record(execute, sql, params, many, context):
    statements.append(sql)
    return execute(sql, params, many, context)
with connection.execute_wrapper(record):
    started = time.perf_counter()
    profiler.enable()
    basket, _ = basket_submit(user=trader, client_basket_id="profile", orders=lines)
    submitted = time.perf_counter()
    body = JSONRenderer().render(_basket_detail(basket, trader))
    profiler.disable()
    rendered = time.perf_counter()
print(f"in-process under cProfile, {{len(lines)}} lines: submit {{submitted - started:.2f}} s, answer "
      f"{{rendered - submitted:.2f}} s ({{len(body) / 1e6:.1f}} MB); {{len(statements)}} statements = "
      f"{{len(statements) / len(lines):.1f}} per line; counts {{basket.counts}}")
kinds = {{}}
for sql in statements:
    key = sql.split(" WHERE ")[0][:90]
    kinds[key] = kinds.get(key, 0) + 1
for key, count in sorted(kinds.items(), key=lambda kv: -kv[1])[:24]:
    print(f"  {{count:6d}}  {{key}}")
out = io.StringIO()
pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(28)
print(out.getvalue())
"""


def basket_lines(account: str, lines: int, start: int) -> list[dict]:
    symbols = list(PRICES)
    return [
        {
            "client_order_id": f"{account}-{start + i}",
            "account": account,
            "symbol": symbols[i % len(symbols)],
            "side": "BUY",
            # Distinct per symbol (no duplicate-order warnings); notional under 10M.
            "quantity": 1 + (start + i) // len(symbols),
            "order_type": "LIMIT",
            "limit_price": PRICES[symbols[i % len(symbols)]],
        }
        for i in range(lines)
    ]


def client(port: int, token: str, accounts: list[str], lines: int, results: list, errors: list, barrier) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    barrier.wait()
    for account in accounts:
        body = json.dumps({"client_basket_id": uuid.uuid4().hex, "orders": basket_lines(account, lines, 0)})
        started = time.perf_counter()
        conn.request("POST", "/api/v1/baskets/", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - started
        if response.status == 201:
            results.append((elapsed, json.loads(payload)["counts"]))
        else:
            errors.append(f"{response.status}: {payload[:300]!r}")
    conn.close()


def run_phase(port: int, token: str, accounts: list[str], clients: int, lines: int) -> tuple[float, list, list]:
    """Every client sends its share of the accounts' baskets one after the other;
    returns (seconds from the start to the last answer, results, errors)."""
    shares = [accounts[i::clients] for i in range(clients)]
    results: list = []
    errors: list = []
    barrier = threading.Barrier(clients + 1)
    threads = [
        threading.Thread(target=client, args=(port, token, share, lines, results, errors, barrier)) for share in shares
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    started = time.perf_counter()
    barrier.wait()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, results, errors


def report(label: str, elapsed: float, results: list, errors: list, pgbench: float) -> None:
    orders = sum(counts["total"] for _, counts in results)
    routed = sum(counts["routed"] for _, counts in results)
    rate = orders / elapsed if elapsed else 0.0
    latencies = ", ".join(f"{seconds:.2f}" for seconds, _ in results)
    print(
        f"{label}: {len(results)} baskets, {orders} orders ({routed} routed) in {elapsed:.1f} s = {rate:.0f} orders/s; "
        f"ratio to pgbench {rate / pgbench:.2f}; seconds per basket: {latencies}; errors {len(errors)}"
    )
    for error in errors[:3]:
        print("  ", error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--baskets", type=int, default=3, help="baskets per client and phase")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--pgbench-seconds", type=int, default=20)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--db", default="oms_bench_basket")
    parser.add_argument("--profile", action="store_true", help="also profile one basket in-process")
    args = parser.parse_args()

    env = server_database(pg_host=args.pg_host, pg_user=args.pg_user, db=args.db, calibration=CALIBRATION)
    count = args.clients * args.baskets
    empty = [f"BSK-E{i}" for i in range(count + 1)]  # one more: the warm-up
    working = [f"BSK-W{i}" for i in range(count)]
    script = ACCOUNTS.format(symbols=sorted(PRICES), empty=empty, working=working, preload=WORKING_PRELOAD)
    sh([PY, "manage.py", "shell", "-c", script], env)
    token = sh([PY, "manage.py", "drf_create_token", "trader1"], env).split()[2]

    server = subprocess.Popen(
        [
            str(Path(PY).parent / "gunicorn"),
            "oms_site.wsgi:application",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--workers",
            str(args.web_workers),
            "--timeout",
            "600",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_for_port(args.port)
        run_phase(args.port, token, empty[-1:], 1, 50)  # warm-up: imports, connections
        statistics_refresh(pg_host=args.pg_host, pg_user=args.pg_user, db=args.db)
        phases = [
            ("no working orders in the account", run_phase(args.port, token, empty[:-1], args.clients, args.lines)),
            (
                f"{WORKING_PRELOAD} working orders in the account",
                run_phase(args.port, token, working, args.clients, args.lines),
            ),
        ]
    finally:
        server.terminate()
        server.wait(timeout=30)

    pgbench = pgbench_tps(
        clients=8, jobs=2, seconds=args.pgbench_seconds, scale=10, host=args.pg_host, user=args.pg_user
    )

    print(
        f"machine: {os.cpu_count()} cores; {args.clients} clients; gunicorn {args.web_workers} sync workers; "
        f"{args.lines}-line baskets, each to an account of its own"
    )
    for label, (elapsed, results, errors) in phases:
        report(f"POST /api/v1/baskets/, {label}", elapsed, results, errors, pgbench)
    print(f"pgbench TPC-B (-c 8 -j 2, scale 10, same server): {pgbench:.0f} tps")

    if args.profile:
        script = PROFILE.format(account=empty[-1], lines=args.lines)
        print(sh([PY, "manage.py", "shell", "-c", script], env))
    subprocess.run(["dropdb", "-h", args.pg_host, "-U", args.pg_user, "--if-exists", args.db], capture_output=True)


if __name__ == "__main__":
    main()
