"""Baskets racing on PostgreSQL, each in its own thread and connection, released
together by a barrier: on one account's limit exactly as many lines pass as fit;
baskets sharing accounts in opposite line orders never deadlock (accounts are locked
in id order); the same client_basket_id twice at once makes one basket."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import pytest
from django.db.models import F, Sum

from compliance.models import ComplianceResult
from orders.models import WORKING_STATUSES, Basket, Order
from orders.services import basket_submit
from routing.models import OutboundMessage
from tests.compliance.conftest import rule_set
from tests.factories import AccountFactory
from tests.helpers import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BASKETS = 8
LINES = 3


def lines(basket: int, *, account: str = "ACC-1", count: int = LINES) -> list[dict]:
    # Distinct prices: no line duplicates another.
    return [
        {
            "client_order_id": f"B{basket}-L{i}",
            "account": account,
            "symbol": "AAPL",
            "side": "BUY",
            "quantity": 1000,
            "order_type": "LIMIT",
            "limit_price": Decimal(f"175.{basket}{i}"),
        }
        for i in range(count)
    ]


def submit_all(trader, baskets: list[list[dict]], client_basket_ids: list[str] | None = None):
    ids = client_basket_ids or [f"B-{i}" for i in range(len(baskets))]
    outcomes = run_together(
        [
            partial(basket_submit, user=trader, client_basket_id=basket_id, orders=orders)
            for basket_id, orders in zip(ids, baskets, strict=True)
        ]
    )
    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    return outcomes


def test_racing_baskets_never_breach_the_position_limit(trader, account, aapl, venue):
    rule_set("position_limit", threshold=Decimal(10_000))  # 10 of the 24 lines fit

    outcomes = submit_all(trader, [lines(b) for b in range(BASKETS)])

    orders = list(Order.objects.order_by("id"))
    routed = [o for o in orders if o.status == "pending_new"]
    rejected = [o for o in orders if o.status == "rejected"]
    assert (len(orders), len(routed), len(rejected)) == (BASKETS * LINES, 10, BASKETS * LINES - 10)
    working = Order.objects.filter(account=account, status__in=WORKING_STATUSES)
    assert working.aggregate(total=Sum(F("quantity") - F("filled_quantity")))["total"] == 10_000
    assert set(
        ComplianceResult.objects.filter(order__in=rejected).exclude(outcome="pass").values_list("rule", flat=True)
    ) == {"position_limit"}
    assert sorted(OutboundMessage.objects.values_list("order_id", flat=True)) == [o.pk for o in routed]
    # Baskets ran one after the other: each basket's routed lines are its first ones.
    for made, created in outcomes:
        assert created
        mine = [o.status for o in made.orders.order_by("id")]
        assert mine == sorted(mine, key=lambda status: status != "pending_new"), mine
        assert made.lines_routed == mine.count("pending_new")
    assert sum(made.lines_routed for made, _ in outcomes) == 10


def test_baskets_sharing_accounts_in_opposite_orders_do_not_deadlock(trader, account, aapl, venue):
    second = AccountFactory(code="ACC-2")
    second.traders.add(trader)
    forward = [lines(b, account="ACC-1", count=2) + lines(b + 10, account="ACC-2", count=2) for b in range(4)]
    backward = [lines(b + 20, account="ACC-2", count=2) + lines(b + 30, account="ACC-1", count=2) for b in range(4)]

    outcomes = submit_all(trader, forward + backward)

    assert all(created for _, created in outcomes)
    assert Order.objects.filter(status="pending_new").count() == 8 * 4


def test_the_same_client_basket_id_at_once_makes_one_basket(trader, account, aapl, venue):
    outcomes = submit_all(trader, [lines(0)] * 4, client_basket_ids=["B-1"] * 4)

    assert Basket.objects.count() == 1
    assert sorted(created for _, created in outcomes) == [False, False, False, True]
    assert {made.pk for made, _ in outcomes} == {Basket.objects.get().pk}
    assert Order.objects.count() == LINES
