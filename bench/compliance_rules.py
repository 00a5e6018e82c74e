"""What pre-trade compliance costs per order, rule by rule, as the account fills up.

    .venv/bin/python bench/compliance_rules.py [--checks 300] [--working 0,100,1000]

On a fresh PostgreSQL database (default oms_bench_compliance, firm default settings,
demo data): for each level of ``--working`` orders already working in the account,
times every registered rule over ``--checks`` what-if checks (``order_check``: the
same rules a submit runs, nothing written), and then ``--checks`` full submits
(``order_submit``: account lock, rules, results stored, routing, outbox, audit).
Prints per-rule mean microseconds and submits/s from one thread.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _fresh_django import django_on_fresh_database  # noqa: E402 (bench/ is on the path: these run as scripts)
from _pgbench import pgbench_tps  # noqa: E402


def working_settle() -> None:
    """Make the working orders just entered look like a desk's day: entered ten
    minutes ago (outside the duplicate and wash-trade windows, inside the trading
    day unless run in the ten minutes after the firm's midnight), and the database
    analyzed, as autovacuum has by then. Entered in the last seconds, every one of
    them would be a candidate duplicate of each new order, and the planner would
    still plan for the empty tables the run started with."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE orders_order SET created_at = created_at - interval '10 minutes' "
            "WHERE client_order_id LIKE 'W-%%' AND created_at > now() - interval '10 minutes'"
        )
        cursor.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checks", type=int, default=300)
    parser.add_argument("--working", default="0,100,1000")
    parser.add_argument("--db", default="oms_bench_compliance")
    parser.add_argument("--pgbench-seconds", type=int, default=15)
    args = parser.parse_args()

    django_on_fresh_database(args.db)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from compliance import engine
    from compliance.models import RuleSetting
    from orders.models import Order
    from orders.services import order_check, order_submit

    call_command("seed_demo", verbosity=0, force=True)
    # Calibrated for volume, so every order below passes and each rule runs fully.
    RuleSetting.objects.filter(scope="firm", rule__in=["order_rate_trader", "order_rate_account"]).update(
        threshold=10**6
    )
    RuleSetting.objects.filter(scope="firm", rule__startswith="d").exclude(rule="duplicate_order").update(
        threshold=10**15
    )
    RuleSetting.objects.filter(scope="firm", rule__in=["gross_notional_limit", "net_notional_limit"]).update(
        threshold=10**15
    )
    RuleSetting.objects.filter(scope="firm", rule="position_limit").update(threshold=10**12)
    trader = get_user_model().objects.get(username="trader1")

    timings: dict[str, list[float]] = defaultdict(list)
    originals = engine.registered_rules()

    def timed(name, rule):
        def run(check):
            started = time.perf_counter()
            try:
                return rule(check)
            finally:
                timings[name].append(time.perf_counter() - started)

        return run

    for name, rule in originals.items():
        engine.rule_register(name, timed(name, rule))

    sequence = 0

    def terms(quantity: int) -> dict:
        return {
            "account": "ACC-1",
            "symbol": "AAPL",
            "side": "BUY",
            "quantity": quantity,
            "order_type": "LIMIT",
            "limit_price": Decimal("175.50"),
        }

    print(f"machine: {os.cpu_count()} cores; PostgreSQL on 127.0.0.1; one thread")
    submit_rates: dict[int, float] = {}
    for working in [int(w) for w in args.working.split(",")]:
        while Order.objects.filter(account__code="ACC-1").count() < working:  # they stay working (no venue)
            sequence += 1
            order_submit(user=trader, client_order_id=f"W-{sequence}", **terms(sequence))
        working_settle()
        timings.clear()
        in_account = Order.objects.filter(account__code="ACC-1", status="pending_new").count()
        started = time.perf_counter()
        for i in range(args.checks):
            evaluation = order_check(user=trader, **terms(50000 - i))
            assert evaluation.outcome == "pass", [r.code for r in evaluation.results if r.outcome != "pass"]
        check_elapsed = time.perf_counter() - started
        rule_means = {name: sum(values) / len(values) * 1e6 for name, values in timings.items()}
        started = time.perf_counter()
        for _ in range(args.checks):
            sequence += 1
            order_submit(user=trader, client_order_id=f"S-{sequence}", **terms(20000 + sequence))
        submit_elapsed = time.perf_counter() - started
        submit_rates[in_account] = args.checks / submit_elapsed
        print(f"\n{in_account} working orders in the account:")
        print(
            f"  what-if check: {args.checks / check_elapsed:,.0f}/s ({check_elapsed / args.checks * 1e3:.2f} ms each)"
        )
        print(
            f"  full submit:   {args.checks / submit_elapsed:,.0f}/s ({submit_elapsed / args.checks * 1e3:.2f} ms each)"
        )
        for name, mean in sorted(rule_means.items(), key=lambda kv: -kv[1]):
            print(f"    {name:22} {mean:8.0f} µs")
    tps = pgbench_tps(clients=8, jobs=2, seconds=args.pgbench_seconds, scale=10)
    print(f"\npgbench TPC-B (-c 8 -j 2, scale 10, same server, same run): {tps:,.0f} tps")
    for in_account, rate in submit_rates.items():
        print(f"  submit with {in_account} working orders: {rate:,.0f}/s = {rate / tps:.3f} x pgbench")


if __name__ == "__main__":
    main()
