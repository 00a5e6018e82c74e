"""What the trader pages' live updates cost the server.

    .venv/bin/python bench/trader_pages.py [--orders 0,1000,10000] [--requests 200]

Each open blotter, order page or positions page fetches its fragment once a second
(``*/live/``), so the time to render one fragment bounds how many open pages a web
worker can serve. On a fresh PostgreSQL database (default oms_bench_pages, demo data),
for each level of ``--orders`` orders in trader1's accounts (a mix of statuses, with
four executions per filled order), renders every fragment ``--requests`` times through
Django's test client in one thread and prints mean and p99 milliseconds, renders per
second, and the open pages one core keeps up with at one poll per second. "unchanged"
rows are the polls of a page that is up to date (304 Not Modified, no render).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _fresh_django import django_on_fresh_database  # noqa: E402 (bench/ is on the path: these run as scripts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", default="0,1000,10000")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--db", default="oms_bench_pages")
    args = parser.parse_args()

    os.environ["ALLOWED_HOSTS"] = "testserver"
    django_on_fresh_database(args.db)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from orders.models import Account, Execution, Order, Position, Security
    from routing.models import Venue

    call_command("seed_demo", verbosity=0, force=True, stdout=open(os.devnull, "w"))  # noqa: SIM115
    trader = get_user_model().objects.get(username="trader1")
    client = Client()
    client.force_login(trader)
    venue = Venue.objects.get(code="SIM")
    accounts = list(Account.objects.filter(code__in=["ACC-1", "ACC-2"]))
    securities = list(Security.objects.all())
    statuses = ["filled", "open", "partially_filled", "cancelled", "rejected", "pending_new"]
    made = 0
    exec_ids = 0

    def grow(to: int) -> None:
        nonlocal made, exec_ids
        orders = []
        for n in range(made, to):
            security = securities[n % len(securities)]
            status = statuses[n % len(statuses)]
            filled = {"filled": 1000, "partially_filled": 400}.get(status, 0)
            orders.append(
                Order(
                    client_order_id=f"BENCH-{n}",
                    account=accounts[n % len(accounts)],
                    security=security,
                    side="BUY" if n % 3 else "SELL",
                    quantity=1000,
                    order_type="LIMIT",
                    limit_price=security.reference_price,
                    venue=venue,
                    status=status,
                    filled_quantity=filled,
                    avg_fill_price=security.reference_price if filled else None,
                    cl_ord_id=f"BENCH{n}-1",
                    acknowledged=status != "pending_new",
                    created_by=trader,
                )
            )
        Order.objects.bulk_create(orders, batch_size=2000)
        executions = []
        now = dt.datetime.now(dt.UTC)
        for order in Order.objects.filter(client_order_id__startswith="BENCH-", filled_quantity__gt=0).order_by("id")[
            made:
        ]:
            for _ in range(order.filled_quantity // 250):
                exec_ids += 1
                executions.append(
                    Execution(
                        venue=venue,
                        exec_id=f"BX{exec_ids}",
                        order=order,
                        exec_type="F",
                        last_qty=250,
                        last_px=order.limit_price + Decimal("0.01"),
                        in_effect=True,
                        received_at=now,
                        message={},
                    )
                )
        Execution.objects.bulk_create(executions, batch_size=2000)
        for account in accounts:
            for security in securities:
                Position.objects.update_or_create(
                    account=account, security=security, defaults={"quantity": 1000, "bought_quantity": 1000}
                )
        made = to

    def timed(path: str, unchanged: bool = False) -> tuple[float, float]:
        # unchanged: the page already has this version (If-None-Match), as an idle
        # page's poll does; the answer is 304 without a render.
        headers = {"HTTP_IF_NONE_MATCH": client.get(path)["ETag"]} if unchanged else {}
        samples = []
        for _ in range(args.requests):
            started = time.perf_counter()
            response = client.get(path, **headers)
            samples.append(time.perf_counter() - started)
            assert response.status_code == (304 if unchanged else 200), (path, response.status_code)
        samples.sort()
        return statistics.fmean(samples) * 1000, samples[int(len(samples) * 0.99) - 1] * 1000

    print(f"{'orders':>7}  {'fragment':<25} {'mean ms':>8} {'p99 ms':>8} {'renders/s':>10}  open pages/core @1 Hz")
    for level in [int(x) for x in args.orders.split(",")]:
        grow(level)
        detail = Order.objects.filter(status="filled").order_by("-id").first() or Order.objects.order_by("-id").first()
        paths = {
            "blotter (50 rows)": ("/orders/live/", False),
            "blotter, unchanged": ("/orders/live/", True),
            "positions": ("/positions/live/", False),
        }
        if detail is not None:
            paths["order detail"] = (f"/orders/{detail.pk}/live/", False)
            paths["order detail, unchanged"] = (f"/orders/{detail.pk}/live/", True)
        for name, (path, unchanged) in paths.items():
            mean, p99 = timed(path, unchanged)
            print(f"{level:>7}  {name:<25} {mean:>8.2f} {p99:>8.2f} {1000 / mean:>10.0f}  {int(1000 / mean)}")


if __name__ == "__main__":
    main()
