"""Average cost and P&L (issue 15): the weighted-average-cost method as a pure function,
and kept on the position with every fill, bust, correction and allocation booked."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders.models import Position
from orders.pnl import FLAT, PositionCost, trade_apply, trades_apply
from orders.services.positions import (
    position_delta_add,
    position_delta_checkpoint,
    position_delta_restore,
    position_trades,
)
from tests.conftest import apply

pytestmark_db = pytest.mark.django_db


def _trades(*trades):
    return [(quantity, Decimal(price)) for quantity, price in trades]


@pytest.mark.parametrize(
    "trades, quantity, average, realized",
    [
        ([], 0, None, "0"),
        ([(100, "10"), (100, "20")], 200, "15", "0"),
        ([(100, "10"), (-50, "30"), (50, "20")], 100, "15", "1000"),  # a sale keeps the average
        ([(100, "10"), (-100, "12"), (100, "20")], 100, "20", "200"),  # flat starts again
        ([(100, "10"), (-150, "12")], -50, "12", "200"),  # crossing zero: the new side at its price
        ([(-300, "50"), (100, "40"), (-100, "53")], -300, "51", "1000"),  # shorts: bought back below
        ([(-100, "50"), (150, "55")], 50, "55", "-500"),  # a short closed at a loss, then long
        ([(3, "10"), (-1, "11")], 2, "10", "1"),
    ],
)
def test_weighted_average_cost(trades, quantity, average, realized):
    position = trades_apply(_trades(*trades))
    assert position.quantity == quantity
    assert position.average_cost == (Decimal(average) if average else None)
    assert position.realized == Decimal(realized)


def test_unrealized_is_the_open_quantity_at_a_price_less_its_cost():
    long = trades_apply(_trades((100, "10"), (100, "20")))
    assert long.unrealized(Decimal("16")) == Decimal("200")
    short = trades_apply(_trades((-100, "50")))
    assert short.unrealized(Decimal("45")) == Decimal("500")
    assert long.unrealized(None) is None and FLAT.unrealized(Decimal("1")) == 0


def test_an_average_that_does_not_divide_stays_exact_in_total():
    position = trades_apply(_trades((1, "10"), (1, "10"), (1, "11"), (-1, "12"), (-2, "12")))
    assert position == PositionCost(0, Decimal(0), Decimal("5"))


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=-500, max_value=500).filter(bool),
            st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999"), places=2),
        ),
        max_size=30,
    )
)
def test_property_cost_less_realized_is_what_was_paid_net(trades):
    position = FLAT
    paid = Decimal(0)
    for quantity, price in trades:
        position = trade_apply(position, quantity, price)
        paid += price * quantity
    assert position.quantity == sum(q for q, _ in trades)
    # Quantized to 8 places at each step: within a few units of the last place.
    assert abs(position.cost - position.realized - paid) <= Decimal("0.0000001") * (len(trades) + 1)
    if position.quantity == 0:
        assert position.cost == 0


# ------------------------------------------------------------------ on positions
def _fill(order, quantity, price, cum):
    apply(
        order, ExecType="F", OrdStatus="2" if cum == order.quantity else "1", LastQty=quantity, LastPx=price,
        CumQty=cum, LeavesQty=order.quantity - cum, AvgPx=price,
    )  # fmt: skip
    return order.executions.order_by("-id").first()


def _acked(order):
    apply(order, ExecType="0", OrdStatus="0", CumQty=0, LeavesQty=order.quantity)
    return order


@pytestmark_db
def test_fills_keep_cost_and_realized_on_the_position(submit, account, aapl):
    buy = _acked(submit(quantity=300))
    _fill(buy, 100, "170.00", 100)
    _fill(buy, 200, "173.00", 300)
    sell = _acked(submit(side="SELL", quantity=100))
    _fill(sell, 100, "176.00", 100)
    position = Position.objects.get(account=account, security=aapl)
    assert (position.quantity, position.average_cost, position.realized_pnl) == (200, Decimal("172"), Decimal("400"))
    assert position.cost_basis == Decimal("34400")


@pytestmark_db
def test_a_bust_works_the_cost_out_again_from_the_trades_in_effect(submit, account, aapl):
    buy = _acked(submit(quantity=200))
    _fill(buy, 100, "10.00", 100)
    second = _fill(buy, 100, "12.00", 200)
    sell = _acked(submit(side="SELL", quantity=50))
    _fill(sell, 50, "13.00", 50)  # realized 50 x (13 - 11) = 100
    apply(buy, ExecType="H", OrdStatus="1", ExecRefID=second.exec_id, LastQty=100, LastPx="12.00", CumQty=100,
          LeavesQty=100)  # fmt: skip
    position = Position.objects.get(account=account, security=aapl)
    # As if the 12.00 fill never was: 100 at 10, 50 sold at 13: 150 realized, 50 open at 10.
    assert (position.quantity, position.average_cost, position.realized_pnl) == (50, Decimal("10"), Decimal("150"))
    assert position_trades(account_id=account.pk, security_id=aapl.pk) == _trades((100, "10.00"), (-50, "13.00"))


def test_a_position_delta_is_restored_to_its_checkpoint():

    deltas: dict = {}
    key = (1, 2)
    empty = position_delta_checkpoint(deltas, key)
    position_delta_add(deltas, account_id=1, security_id=2, side="BUY", qty=100, price=Decimal("10"))
    before = (deltas[key].bought_quantity, deltas[key].bought_notional, deltas[key].quantity, list(deltas[key].trades))
    checkpoint = position_delta_checkpoint(deltas, key)
    position_delta_add(deltas, account_id=1, security_id=2, side="SELL", qty=40, price=Decimal("12"))
    position_delta_add(deltas, account_id=1, security_id=2, side="BUY", qty=-100, price=Decimal("10"))  # a bust
    assert deltas[key].reversed and deltas[key].sold_quantity == 40
    position_delta_restore(deltas, checkpoint)
    after = (deltas[key].bought_quantity, deltas[key].bought_notional, deltas[key].quantity, list(deltas[key].trades))
    assert after == before and not deltas[key].reversed and deltas[key].sold_quantity == 0
    position_delta_restore(deltas, empty)
    assert deltas == {}
