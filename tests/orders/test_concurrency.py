"""Real races on PostgreSQL: several threads, each with its own database connection,
released together by a barrier. Whatever the interleaving, the row locks must leave the
order, its executions and the position exactly as if the calls had run one by one
(DESIGN.md §4 step 4, §5)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from audit.models import AuditEvent
from oms_site.errors import InvalidStateTransition
from orders.models import Execution, Order, OrderFlag, OrderRequest, Position
from orders.services import execution_report_apply, order_cancel, order_submit
from routing.models import OutboundMessage
from tests.conftest import apply, report
from tests.helpers import run_together

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

THREADS = 8


def apply_all(messages: list[dict[int, str]]) -> list[Any]:
    results = run_together([partial(execution_report_apply, venue_code="SIM", message=dict(m)) for m in messages])
    assert not [r for r in results if isinstance(r, BaseException)], results
    return results


def acknowledged_order(submit, *, quantity: int) -> Order:
    order = submit(quantity=quantity)
    assert order.status == "pending_new"
    assert apply(order, ExecType="0", OrdStatus="0").outcome == "applied"
    assert order.status == "open"
    return order


def fill(order: Order, qty: int, price: str) -> dict[int, str]:
    # No CumQty: racing fills cannot know it, and a stale one would only raise a flag.
    return report(order, ExecType="F", OrdStatus="1", LastQty=qty, LastPx=price)


def order_actions(order: Order) -> Counter:
    return Counter(
        AuditEvent.objects.filter(object_type="order", object_id=str(order.pk)).values_list("action", flat=True)
    )


def position_of(order: Order) -> Position:
    return Position.objects.get(account=order.account, security=order.security)


def test_distinct_fills_racing_on_one_order_all_count(submit):
    order = acknowledged_order(submit, quantity=1000)
    messages = [fill(order, 100, f"175.0{i + 1}") for i in range(THREADS)]  # 175.01 .. 175.08

    results = apply_all(messages)

    assert [r.outcome for r in results] == ["applied"] * THREADS
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.leaves_quantity) == ("partially_filled", 800, 200)
    assert order.avg_fill_price == Decimal("175.04500000")  # (175.01 + ... + 175.08) / 8, exactly
    in_effect = Execution.objects.filter(order=order, in_effect=True, outcome="applied")
    assert sorted(in_effect.values_list("exec_id", flat=True)) == sorted(m[17] for m in messages)
    assert Execution.objects.filter(order=order).count() == THREADS + 1  # and the ack
    position = position_of(order)
    assert (position.quantity, position.bought_quantity, position.bought_notional) == (800, 800, Decimal("140036"))
    assert (position.sold_quantity, position.sold_notional) == (0, Decimal("0"))
    assert order_actions(order)["order.fill"] == THREADS
    assert not order.needs_review
    assert not OrderFlag.objects.exists()


def test_the_same_exec_id_racing_applies_once(submit):
    order = acknowledged_order(submit, quantity=1000)
    message = fill(order, 100, "175.48")

    results = apply_all([message] * THREADS)

    assert sorted(r.outcome for r in results) == ["applied"] + ["duplicate"] * (THREADS - 1)
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.leaves_quantity) == ("partially_filled", 100, 900)
    assert order.avg_fill_price == Decimal("175.48")
    execution = Execution.objects.get(exec_id=message[17])
    assert (execution.order_id, execution.in_effect, execution.outcome, execution.last_qty) == (
        order.pk,
        True,
        "applied",
        100,
    )
    position = position_of(order)
    assert (position.quantity, position.bought_quantity, position.bought_notional) == (100, 100, Decimal("17548"))
    assert order_actions(order)["order.fill"] == 1
    assert not order.needs_review
    assert not OrderFlag.objects.exists()


def test_racing_fills_beyond_the_quantity_never_overfill(submit):
    order = acknowledged_order(submit, quantity=1000)
    messages = [fill(order, 200, f"175.0{i + 1}") for i in range(THREADS)]

    results = apply_all(messages)

    outcomes = [r.outcome for r in results]
    assert Counter(outcomes) == {"applied": 5, "overfill": 3}
    applied = [m for m, outcome in zip(messages, outcomes, strict=True) if outcome == "applied"]
    refused = [m for m, outcome in zip(messages, outcomes, strict=True) if outcome == "overfill"]
    notional = sum(Decimal(m[31]) * 200 for m in applied)

    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.leaves_quantity) == ("filled", 1000, 0)
    assert order.avg_fill_price == (notional / 1000).quantize(Decimal("0.00000001"))
    assert sorted(Execution.objects.filter(order=order, in_effect=True).values_list("exec_id", flat=True)) == sorted(
        m[17] for m in applied
    )
    overfills = Execution.objects.filter(order=order, outcome="overfill")
    assert sorted(overfills.values_list("exec_id", flat=True)) == sorted(m[17] for m in refused)
    assert not overfills.filter(in_effect=True).exists()
    assert order.needs_review
    assert OrderFlag.objects.filter(order=order, kind="overfill").count() == 3
    assert OrderFlag.objects.filter(order=order).count() == 3
    position = position_of(order)
    assert (position.quantity, position.bought_quantity, position.bought_notional) == (1000, 1000, notional)
    actions = order_actions(order)
    assert (actions["order.fill"], actions["order.report_not_applied"], actions["order.flagged"]) == (5, 3, 3)


def test_racing_cancels_send_one_request(submit, trader):
    order = acknowledged_order(submit, quantity=1000)

    results = run_together([partial(order_cancel, user=trader, order_id=order.pk)] * THREADS)

    succeeded = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, InvalidStateTransition)]
    assert (len(succeeded), len(refused)) == (1, THREADS - 1), results
    assert succeeded[0].status == "pending_cancel"
    assert {r.message for r in refused} == {"Order cannot be cancelled: a cancel request is already pending."}
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.leaves_quantity) == ("pending_cancel", 0, 1000)
    cancel = OrderRequest.objects.get(order=order, kind="cancel")
    assert (cancel.state, cancel.orig_cl_ord_id) == ("pending", order.cl_ord_id)
    outbound = OutboundMessage.objects.get(order_id=order.pk, msg_type="F")
    assert (outbound.cl_ord_id, outbound.state) == (cancel.cl_ord_id, "pending")
    actions = order_actions(order)
    assert (actions["order.cancel_requested"], actions["order.cancel_refused"]) == (1, THREADS - 1)
    refusals = AuditEvent.objects.filter(object_id=str(order.pk), action="order.cancel_refused")
    assert {(e.actor, e.details["code"], e.details["status"]) for e in refusals} == {
        (trader.username, "invalid_state", "pending_cancel")
    }


@pytest.mark.parametrize("fill_qty", [100, 1000], ids=["partial-fill", "completing-fill"])
def test_a_fill_racing_a_cancel_request_ends_consistent(submit, trader, fill_qty):
    order = acknowledged_order(submit, quantity=1000)
    message = fill(order, fill_qty, "175.48")

    fill_result, cancel_result = run_together(
        [
            partial(execution_report_apply, venue_code="SIM", message=message),
            partial(order_cancel, user=trader, order_id=order.pk),
        ]
    )

    # The fill always counts, whichever thread took the lock first.
    assert not isinstance(fill_result, BaseException), fill_result
    assert fill_result.outcome == "applied"
    order.refresh_from_db()
    assert (order.filled_quantity, order.leaves_quantity) == (fill_qty, 1000 - fill_qty)
    assert order.avg_fill_price == Decimal("175.48")
    assert Execution.objects.get(exec_id=message[17]).in_effect
    assert position_of(order).quantity == fill_qty
    actions = order_actions(order)
    assert actions["order.fill"] == 1
    if isinstance(cancel_result, Order):
        # Pending cancel takes precedence over (partially) filled (FIX 4.4 B.1.b, B.1.c).
        assert order.status == "pending_cancel"
        assert OrderRequest.objects.get(order=order, kind="cancel").state == "pending"
        assert OutboundMessage.objects.filter(order_id=order.pk, msg_type="F").count() == 1
        assert (actions["order.cancel_requested"], actions["order.cancel_refused"]) == (1, 0)
    else:
        # Only a completed order refuses the cancel: the fill came first.
        assert isinstance(cancel_result, InvalidStateTransition), cancel_result
        assert fill_qty == 1000
        assert order.status == "filled"
        assert not OrderRequest.objects.filter(order=order, kind="cancel").exists()
        assert not OutboundMessage.objects.filter(order_id=order.pk, msg_type="F").exists()
        assert (actions["order.cancel_requested"], actions["order.cancel_refused"]) == (0, 1)
    assert not order.needs_review


def test_first_fills_of_many_orders_racing_for_a_new_position(submit):
    orders = [acknowledged_order(submit, quantity=1000) for _ in range(THREADS)]
    assert not Position.objects.exists()

    results = apply_all([fill(order, 100, "175.50") for order in orders])

    assert [r.outcome for r in results] == ["applied"] * THREADS
    position = Position.objects.get()  # one row: insert-or-fetch, not check-then-insert
    assert (position.quantity, position.bought_quantity, position.bought_notional) == (
        100 * THREADS,
        100 * THREADS,
        Decimal("17550") * THREADS,
    )
    for order in orders:
        order.refresh_from_db()
        assert (order.status, order.filled_quantity) == ("partially_filled", 100)


def test_the_same_client_order_id_racing_creates_one_order(trader, account, aapl, venue):
    submit_once = partial(
        order_submit,
        user=trader,
        client_order_id="RACE-1",
        account=account.code,
        symbol=aapl.symbol,
        side="BUY",
        quantity=1000,
        order_type="LIMIT",
        limit_price=Decimal("175.50"),
    )

    results = run_together([submit_once] * THREADS)

    assert not [r for r in results if isinstance(r, BaseException)], results
    order = Order.objects.get()
    assert sorted((o.pk, created) for o, created in results) == [(order.pk, False)] * (THREADS - 1) + [(order.pk, True)]
    assert (order.client_order_id, order.status) == ("RACE-1", "pending_new")
    assert OutboundMessage.objects.filter(order_id=order.pk, msg_type="D").count() == 1
    assert OrderRequest.objects.filter(order=order).count() == 1
    assert order_actions(order) == {"order.created": 1, "compliance.evaluated": 1, "order.routed": 1}


def test_the_same_unsolicited_ack_racing_books_one_order(account, aapl, venue):
    # A telephoned order (FIX 4.4 E.1.a) is acknowledged with an OrderID we never sent;
    # the same report redelivered to several workers must book it once.
    message = {35: "8", 17: "PHONE-ACK-1", 150: "0", 39: "0", 37: "PHONE-1", 1: account.code, 55: aapl.symbol}
    message |= {54: "1", 38: "1000", 44: "175.50", 14: "0", 151: "1000"}

    results = run_together([partial(execution_report_apply, venue_code=venue.code, message=dict(message))] * THREADS)

    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sorted(r.outcome for r in results) == ["applied"] + ["duplicate"] * (THREADS - 1)
    order = Order.objects.get()
    assert (order.origin, order.venue_order_id, order.status, order.quantity) == ("venue", "PHONE-1", "open", 1000)
    assert order.needs_review
    assert Execution.objects.get().exec_id == "PHONE-ACK-1"
    assert list(OrderFlag.objects.values_list("kind", flat=True)) == ["unknown_order"]
