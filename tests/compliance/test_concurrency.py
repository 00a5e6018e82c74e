"""Orders of one account racing on one limit, on PostgreSQL: each thread has its own
connection and all are released together by a barrier. The account lock makes
compliance check them one after the other, so exactly as many pass as fit and the
account's working exposure never exceeds the limit, whatever the interleaving."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from django.db import connection
from django.db.models import F, Sum

from compliance import engine
from compliance.models import ComplianceResult, KillSwitch, Locate, LocateUse
from compliance.rules import WORKING_STATUSES
from orders.models import Order
from orders.services import kill_switch_set
from routing.models import OutboundMessage
from tests.helpers import run_together

from .conftest import now, rule_set

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 8
PRICES = [Decimal(f"175.0{i + 1}") for i in range(THREADS)]  # distinct: no duplicates


def race(place, **terms: Any) -> list[Order]:
    orders = run_together([partial(place, limit_price=price, **terms) for price in PRICES])
    assert not [o for o in orders if isinstance(o, BaseException)], orders
    for order in orders:
        order.refresh_from_db()
    return orders


def codes(order: Order) -> list[tuple[str, str]]:
    return sorted(
        ComplianceResult.objects.filter(order=order).exclude(outcome="pass").values_list("rule", "code").distinct()
    )


def working_leaves(account, side: str) -> int:
    working = Order.objects.filter(account=account, side=side, status__in=WORKING_STATUSES)
    return working.aggregate(total=Sum(F("quantity") - F("filled_quantity")))["total"] or 0


def assert_split(orders: list[Order], *, passed: int, rule: str, code: str) -> list[Order]:
    routed = [o for o in orders if o.status == "pending_new"]
    rejected = [o for o in orders if o.status == "rejected"]
    assert (len(routed), len(rejected)) == (passed, THREADS - passed), [o.status for o in orders]
    assert all(codes(o) == [] for o in routed)
    assert all(codes(o) == [(rule, code)] for o in rejected)
    assert OutboundMessage.objects.filter(msg_type="D").count() == passed
    assert Counter(OutboundMessage.objects.values_list("order_id", flat=True)) == {o.pk: 1 for o in routed}
    return routed


def test_racing_buys_never_breach_the_position_limit(place, account):
    rule_set("position_limit", threshold=Decimal(5000))

    orders = race(place, quantity=1000)

    assert_split(orders, passed=5, rule="position_limit", code="position_limit")
    assert working_leaves(account, "BUY") == 5000


def test_racing_buys_never_breach_the_daily_notional_limit(place, account):
    # Any five of the orders fit (at most 875,300), no six do (at least 1,050,210).
    rule_set("daily_notional_limit", threshold=Decimal(900000))

    orders = race(place, quantity=1000)

    routed = assert_split(orders, passed=5, rule="daily_notional_limit", code="daily_notional_limit")
    total = sum(o.quantity * o.limit_price for o in routed)
    assert total <= Decimal(900000)
    assert total == sum(
        o.quantity * o.limit_price for o in Order.objects.filter(account=account, status__in=WORKING_STATUSES)
    )


def test_racing_short_sales_never_overdraw_one_locate(place, account, aapl):
    locate = Locate.objects.create(
        account=account,
        security=aapl,
        broker="GS",
        reference="RACE-1",
        quantity=3000,
        expires_at=now() + dt.timedelta(hours=1),
    )

    orders = race(place, side="SELL_SHORT", quantity=1000)

    routed = assert_split(orders, passed=3, rule="short_sale", code="no_locate")
    uses = LocateUse.objects.filter(locate=locate)
    assert sorted(uses.values_list("order_id", "quantity")) == sorted((o.pk, 1000) for o in routed)
    assert uses.aggregate(total=Sum("quantity"))["total"] == 3000
    assert working_leaves(account, "SELL_SHORT") == 3000


def test_the_kill_switch_sweep_waits_for_an_order_already_past_compliance(place, account, middle_office):
    """An order that passed the kill-switch rule before the latch committed, and is
    still being checked under its account's lock, is cancelled by the sweep: the sweep
    waits for that lock, so the order cannot slip in behind it."""
    in_compliance, proceed = threading.Event(), threading.Event()

    def pause(check):  # registered last ("zz"): the kill_switch rule has already passed
        in_compliance.set()
        assert proceed.wait(10)
        return engine.RuleVerdict("pass", "ok")

    engine.rule_register("zz_pause", pause)
    try:
        outcome: dict[str, Any] = {}

        def submit():
            try:
                outcome["order"] = place(quantity=100)
            finally:
                connection.close()

        def switch():
            try:
                in_compliance.wait(10)
                outcome["switch"] = kill_switch_set(user=middle_office, scope="firm", active=True, reason="drill")
            finally:
                connection.close()

        threads = [threading.Thread(target=submit), threading.Thread(target=switch)]
        for thread in threads:
            thread.start()
        assert in_compliance.wait(10)
        # The latch commits, then the sweep blocks on the account lock the submit holds.
        deadline = time.monotonic() + 10
        while not KillSwitch.objects.filter(released_at__isnull=True).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        assert "switch" not in outcome  # still waiting for the order in flight
        proceed.set()
        for thread in threads:
            thread.join(20)
    finally:
        engine.rule_unregister("zz_pause")
    order = Order.objects.get(pk=outcome["order"].pk)
    assert order.status == "cancelled"
    assert outcome["switch"].cancelled_order_ids == [order.pk]
