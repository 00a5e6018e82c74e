"""The running exposure (orders.models.AccountExposure) the compliance rules read is
exactly what aggregating the orders gives, whatever wrote the orders: services,
batched report application, bulk updates, the ORM directly."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from importlib import import_module

import pytest

from orders.models import WORKING_STATUSES, AccountExposure, Order
from orders.services import inbox_apply, order_amend, order_cancel
from routing.models import InboundMessage
from tests.conftest import apply

pytestmark = pytest.mark.django_db


def recomputed() -> dict:
    """Every order's share, summed by (account, security, side, trade date): working
    leaves, their notional at limit or stop, the leaves without a price, and filled
    quantity x average price of orders not rejected."""
    rows: dict = defaultdict(lambda: [0, Decimal(0), 0, Decimal(0)])
    for order in Order.objects.all():
        key = (order.account_id, order.security_id, order.side, order.created_at.astimezone(dt.UTC).date())
        working = order.status in WORKING_STATUSES and order.owner_id is None  # accepted desk orders: children
        leaves = order.quantity - order.filled_quantity if working else 0
        price = order.limit_price or order.stop_price
        row = rows[key]
        row[0] += leaves
        row[1] += leaves * price if price else 0
        row[2] += 0 if price else leaves
        if order.status != "rejected" and order.avg_fill_price is not None and order.owner_id is None:
            row[3] += order.filled_quantity * order.avg_fill_price
    return {key: tuple(row) for key, row in rows.items() if any(row)}


def stored() -> dict:
    return {
        (e.account_id, e.security_id, e.side, e.trade_date): (
            e.working_quantity,
            e.working_priced_notional,
            e.working_unpriced_quantity,
            e.filled_notional,
        )
        for e in AccountExposure.objects.all()
        if any((e.working_quantity, e.working_priced_notional, e.working_unpriced_quantity, e.filled_notional))
    }


def test_the_trigger_and_the_code_agree_on_what_is_working():
    migration = import_module("orders.migrations.0005_account_exposure")
    assert set(migration.WORKING) == set(WORKING_STATUSES)


def test_exposure_follows_every_kind_of_order_change(submit, trader, msft):
    limit = submit(quantity=1000)
    market = submit(quantity=300, order_type="MARKET", limit_price=None)
    stop = submit(symbol="MSFT", side="SELL", quantity=200, order_type="STOP", limit_price=None, stop_price="400")
    assert stored() == recomputed() and stored()

    for order in (limit, market, stop):
        apply(order, ExecType="0", OrdStatus="0")
    apply(limit, ExecType="F", OrdStatus="1", LastQty=400, LastPx="175.25")
    bust_me = apply(market, ExecType="F", OrdStatus="1", LastQty=100, LastPx="175.10")
    assert stored() == recomputed()

    fill_id = market.executions.get(exec_type="F").exec_id
    apply(market, ExecType="H", OrdStatus="0", ExecRefID=fill_id)
    order_amend(user=trader, order_id=limit.pk, quantity=1500)
    limit.refresh_from_db()
    replace = limit.requests.get(kind="replace")
    apply(limit, ExecType="5", OrdStatus="1", ClOrdID=replace.cl_ord_id, OrderQty=1500, Price="175.40")
    order_cancel(user=trader, order_id=stop.pk)
    stop.refresh_from_db()
    apply(stop, ExecType="4", OrdStatus="4", ClOrdID=stop.requests.get(kind="cancel").cl_ord_id)
    apply(market, ExecType="8", OrdStatus="8")
    assert bust_me.outcome == "applied"
    assert stored() == recomputed()

    # Whatever writes the rows: a queryset update, a delete.
    Order.objects.filter(pk=limit.pk).update(status="done_for_day")
    Order.objects.filter(pk=market.pk).update(limit_price=Decimal("170"), status="open")
    assert stored() == recomputed()


def test_a_batch_of_reports_moves_exposure_like_one_report_at_a_time(submit, venue):
    orders = [submit(quantity=1000) for _ in range(3)]
    for seq, order in enumerate(orders * 3, start=1):
        tags = {35: "8", 11: order.cl_ord_id, 37: f"V{order.pk}", 17: f"B{seq}", 150: "F", 39: "1"}
        tags.update({32: "100", 31: "175.5"})
        fields = [[35, "8"], [34, str(seq)], *[[t, v] for t, v in tags.items() if t != 35]]
        InboundMessage.objects.create(
            venue=venue, epoch=1, msg_seq_num=seq, msg_type="8", fields=fields, raw="|".join(map(str, fields))
        )
    assert inbox_apply(venue_code=venue.code) == 9
    assert stored() == recomputed()
    assert sum(row[0] for row in stored().values()) == 3 * 700
