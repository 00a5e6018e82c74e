"""Block orders for several funds (issue 14): entered with ``allocations`` instead of an
account, checked by compliance fund by fund, executed as one order, their fills booked
to no account until middle office confirms an allocation; the allocation proposed,
changed, confirmed, cancelled and redone, and the broker's acks applied."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from orders.models import Allocation, Order, Position
from orders.services import allocation_cancel, allocation_change, allocation_confirm, order_submit
from orders.services.allocations import allocation_ack_apply
from routing.fix import codec
from routing.models import OutboundMessage
from tests.compliance.conftest import rule_set
from tests.conftest import apply
from tests.helpers import SIXTY_FORTY, block_body, client_for
from tests.helpers import portfolio_manager as _pm

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"


@pytest.fixture
def funds(account, acc2):
    return account, acc2


def _block(trader, quantity: int = 1000, allocations=None, **overrides) -> Order:
    order, _ = order_submit(
        user=trader,
        client_order_id=overrides.pop("client_order_id", "BLK-1"),
        symbol="AAPL",
        side=overrides.pop("side", "BUY"),
        quantity=quantity,
        order_type="LIMIT",
        limit_price=Decimal("175.50"),
        allocations=allocations or SIXTY_FORTY,
        **overrides,
    )
    return order


def _filled(order: Order, quantity: int | None = None, price: str = "175.50") -> Order:
    quantity = quantity or order.quantity
    apply(order, ExecType="0", OrdStatus="0", CumQty=0, LeavesQty=order.quantity)
    status = "2" if quantity == order.quantity else "1"
    apply(
        order, ExecType="F", OrdStatus=status, LastQty=quantity, LastPx=price, CumQty=quantity,
        LeavesQty=order.quantity - quantity, AvgPx=price,
    )  # fmt: skip
    return order


def _positions(security) -> dict[str, int]:
    return dict(Position.objects.filter(security=security).values_list("account__code", "quantity"))


# --------------------------------------------------------------------- entering
def test_a_traders_block_is_routed_as_one_order_for_its_funds(api, funds, aapl, venue):
    response = api.post(ORDERS, block_body(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["account"], body["block_order"]) == ("pending_new", None, True)
    order = Order.objects.get(pk=body["id"])
    assert order.account.code == "ACC-1" and order.allocation_targets == SIXTY_FORTY
    (message,) = OutboundMessage.objects.filter(order_id=order.pk, msg_type="D")
    assert dict(message.fields)[38] == "1000"


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"account": "ACC-1"}, "allocations"),
        ({"allocations": [{"account": "ACC-1", "percent": "60"}, {"account": "ACC-2", "percent": "30"}]}, "allocations"),
        ({"allocations": [{"account": "ACC-1", "quantity": 600}, {"account": "ACC-2", "quantity": 300}]}, "allocations"),
        ({"allocations": [{"account": "ACC-1", "percent": "60"}, {"account": "ACC-9", "percent": "40"}]}, "allocations[1].account"),
        ({"allocations": [{"account": "ACC-1", "percent": "100"}]}, "allocations"),
        ({"allocations": [{"account": "ACC-1", "percent": "50"}, {"account": "ACC-1", "percent": "50"}]}, "allocations[1].account"),
    ],
)  # fmt: skip
def test_invalid_blocks_are_400_with_the_field_and_store_nothing(api, funds, aapl, venue, overrides, field):
    response = api.post(ORDERS, block_body(**overrides), format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["details"], response.json()
    assert not Order.objects.exists()


def test_no_account_and_no_allocations_is_400_on_the_account(api, funds, aapl, venue):
    body = block_body()
    del body["allocations"]
    response = api.post(ORDERS, body, format="json")
    assert response.status_code == 400
    assert "account" in response.json()["details"]


def test_a_fund_the_user_may_not_trade_is_400(api, account, other_account, aapl, venue):
    allocations = [{"account": "ACC-1", "percent": "50"}, {"account": other_account.code, "percent": "50"}]
    response = api.post(ORDERS, block_body(allocations=allocations), format="json")
    assert response.status_code == 400
    assert "allocations[1].account" in response.json()["details"]


def test_a_fund_over_its_position_limit_blocks_the_block_naming_that_fund(trader, funds, aapl, venue):
    rule_set("position_limit", scope="account", account=funds[1], threshold=Decimal(300))
    order = _block(trader)
    assert order.status == "rejected"
    assert "Fund ACC-2" in order.reject_reason and "Fund ACC-1" not in order.reject_reason
    assert not OutboundMessage.objects.filter(order_id=order.pk).exists()


def test_each_fund_is_checked_with_its_share(trader, funds, aapl, venue):
    # 40% of 1,000 is 400: within a limit of 400 for ACC-2, 600 within 600 for ACC-1.
    rule_set("position_limit", scope="account", account=funds[0], threshold=Decimal(600))
    rule_set("position_limit", scope="account", account=funds[1], threshold=Decimal(400))
    assert _block(trader).status == "pending_new"


def test_a_working_blocks_share_counts_against_each_funds_later_orders(trader, funds, aapl, venue):
    _block(trader)  # 600 working for ACC-1, 400 for ACC-2
    rule_set("position_limit", scope="account", account=funds[1], threshold=Decimal(500))
    over, _ = order_submit(
        user=trader, client_order_id="S-1", account="ACC-2", symbol="AAPL", side="BUY", quantity=200,
        order_type="LIMIT", limit_price=Decimal("175.50"),
    )  # fmt: skip
    within, _ = order_submit(
        user=trader, client_order_id="S-2", account="ACC-2", symbol="AAPL", side="BUY", quantity=100,
        order_type="LIMIT", limit_price=Decimal("175.50"),
    )  # fmt: skip
    assert (over.status, within.status) == ("rejected", "pending_new")


def test_a_pm_block_waits_for_the_desk_and_its_children_are_blocks(trader, funds, aapl, venue):
    pm = _pm("pm1", *funds)
    order = _block(pm)
    assert (order.status, order.desk_order, order.block_order) == ("new", True, True)
    api = client_for(trader)
    assert api.post(f"{ORDERS}{order.pk}/accept/").status_code == 200
    placed = api.post(f"{ORDERS}{order.pk}/children/", {"quantity": 500, "order_type": "MARKET"}, format="json")
    assert placed.status_code == 201, placed.json()
    child = Order.objects.get(pk=placed.json()["id"])
    assert child.block_order and child.allocation_targets == SIXTY_FORTY and child.parent_id == order.pk


# ------------------------------------------------------------------- allocating
def test_fills_of_a_block_book_no_position_and_propose_the_allocation(trader, funds, aapl, venue):
    order = _filled(_block(trader))
    assert order.status == "filled"
    assert _positions(aapl) == {}
    (allocation,) = Allocation.objects.filter(order=order)
    assert (allocation.status, allocation.quantity, allocation.avg_price) == ("proposed", 1000, Decimal("175.50"))
    assert [(line.account.code, line.quantity) for line in allocation.lines.all()] == [("ACC-1", 600), ("ACC-2", 400)]
    assert AuditEvent.objects.filter(object_id=str(order.pk), action="allocation.proposed").count() == 1


def test_a_partly_filled_block_is_proposed_when_it_ends(trader, funds, aapl, venue):
    order = _filled(_block(trader), quantity=501)
    assert not Allocation.objects.filter(order=order).exists()  # still working
    apply(order, ExecType="4", OrdStatus="4", CumQty=501, LeavesQty=0)
    assert order.status == "cancelled"
    (allocation,) = Allocation.objects.filter(order=order)
    assert [line.quantity for line in allocation.lines.all()] == [301, 200]  # 300.6 / 200.4


def test_middle_office_changes_confirms_books_and_instructs(trader, middle_office, funds, aapl, venue):
    order = _filled(_block(trader))
    allocation_change(
        user=middle_office, order_id=order.pk, reason="PM call",
        lines=[{"account": "ACC-1", "quantity": 500}, {"account": "ACC-2", "quantity": 500}],
    )  # fmt: skip
    allocation = allocation_confirm(user=middle_office, order_id=order.pk)
    assert allocation.status == "confirmed" and allocation.confirmed_by == middle_office
    assert _positions(aapl) == {"ACC-1": 500, "ACC-2": 500}
    position = Position.objects.get(account=funds[0], security=aapl)
    assert (position.bought_quantity, position.bought_notional) == (500, Decimal("87750"))
    (message,) = OutboundMessage.objects.filter(order_id=order.pk, msg_type="J")
    tags = [(int(t), v) for t, v in message.fields]
    assert (71, "0") in tags and [v for t, v in tags if t in (79, 80)] == ["ACC-1", "500", "ACC-2", "500"]
    assert (11, order.cl_ord_id) in tags


@pytest.mark.parametrize(
    "lines, field",
    [
        ([{"account": "ACC-1", "quantity": 500}, {"account": "ACC-2", "quantity": 400}], "lines"),
        ([{"account": "ACC-1", "quantity": 1000}], "lines"),
        ([{"account": "ACC-1", "quantity": 500}, {"account": "ACC-3", "quantity": 500}], "lines[1].account"),
        ([{"account": "ACC-1", "quantity": -1}, {"account": "ACC-2", "quantity": 1001}], "lines[0].quantity"),
    ],
)
def test_a_change_that_does_not_add_up_is_refused_and_changes_nothing(
    trader, middle_office, funds, aapl, venue, lines, field
):
    order = _filled(_block(trader))
    response = client_for(middle_office).post(
        f"{ORDERS}{order.pk}/allocations/change/", {"lines": lines, "reason": "x"}, format="json"
    )
    if field == "lines[0].quantity":  # the serializer refuses a negative quantity itself
        assert response.status_code == 400 and "lines" in response.json()["details"]
    else:
        assert response.status_code == 400 and field in response.json()["details"], response.json()
    allocation = Allocation.objects.get(order=order)
    assert allocation.status == "proposed"
    assert [line.quantity for line in allocation.lines.all()] == [600, 400]


def test_only_middle_office_allocates(trader, funds, aapl, venue):
    order = _filled(_block(trader))
    api = client_for(trader)
    assert api.get(f"{ORDERS}{order.pk}/allocations/").status_code == 200
    assert api.post(f"{ORDERS}{order.pk}/allocations/confirm/", {}, format="json").status_code == 403
    assert Allocation.objects.get(order=order).status == "proposed"


def test_allocating_a_single_account_order_is_409(api, middle_office, account, aapl, venue):
    order, _ = order_submit(
        user=account.traders.first(), client_order_id="S-1", account="ACC-1", symbol="AAPL", side="BUY",
        quantity=100, order_type="LIMIT", limit_price=Decimal("175.50"),
    )  # fmt: skip
    response = client_for(middle_office).post(f"{ORDERS}{order.pk}/allocations/confirm/", {}, format="json")
    assert response.status_code == 409


def test_cancel_after_confirm_reverses_the_bookings_and_proposes_again(trader, middle_office, funds, aapl, venue):
    order = _filled(_block(trader))
    first = allocation_confirm(user=middle_office, order_id=order.pk)
    redo = allocation_cancel(user=middle_office, order_id=order.pk, reason="wrong funds")
    first.refresh_from_db()
    assert first.status == "cancelled" and first.cancel_alloc_id
    assert _positions(aapl) == {"ACC-1": 0, "ACC-2": 0}
    assert (redo.status, redo.replaces_id) == ("proposed", first.pk)
    cancel = OutboundMessage.objects.get(order_id=order.pk, cl_ord_id=first.cancel_alloc_id)
    assert (71, "2") in [(int(t), v) for t, v in cancel.fields] and (72, first.alloc_id) in [
        (int(t), v) for t, v in cancel.fields
    ]
    assert Position.objects.get(account=funds[0], security=aapl).cost_basis == 0
    # Redone: confirmed again, booked once, at the block's average price.
    allocation_confirm(user=middle_office, order_id=order.pk)
    assert _positions(aapl) == {"ACC-1": 600, "ACC-2": 400}
    position = Position.objects.get(account=funds[0], security=aapl)
    assert (position.cost_basis, position.average_cost, position.realized_pnl) == (
        Decimal("105300"),
        Decimal("175.5"),
        0,
    )


def _ack(allocation: Allocation, status: str, alloc_id: str | None = None, text: str = ""):
    tags = {70: alloc_id or allocation.alloc_id, 87: status}
    if text:
        tags[58] = text
    return allocation_ack_apply(venue=allocation.venue, tags=tags, received_at=timezone.now())


def test_broker_acks_move_the_allocation_and_an_accepted_one_cannot_be_cancelled(
    trader, middle_office, funds, aapl, venue
):
    order = _filled(_block(trader))
    allocation = allocation_confirm(user=middle_office, order_id=order.pk)
    assert _ack(allocation, codec.ALLOC_STATUS_RECEIVED) == ("alloc_ack", order.pk)
    assert _ack(allocation, codec.ALLOC_STATUS_ACCEPTED) == ("alloc_ack", order.pk)
    allocation.refresh_from_db()
    assert (allocation.status, allocation.ack_status) == ("accepted", "0")
    response = client_for(middle_office).post(
        f"{ORDERS}{order.pk}/allocations/cancel/", {"allocation": allocation.pk, "reason": "late"}, format="json"
    )
    assert response.status_code == 409
    assert _positions(aapl) == {"ACC-1": 600, "ACC-2": 400}


def test_a_broker_rejection_reverses_the_bookings_and_proposes_again(trader, middle_office, funds, aapl, venue):
    order = _filled(_block(trader))
    allocation = allocation_confirm(user=middle_office, order_id=order.pk)
    assert _ack(allocation, codec.ALLOC_STATUS_BLOCK_REJECT, text="bad") == ("alloc_ack", order.pk)
    allocation.refresh_from_db()
    assert (allocation.status, allocation.ack_text) == ("rejected", "bad")
    assert _positions(aapl) == {"ACC-1": 0, "ACC-2": 0}
    assert Allocation.objects.get(order=order, status="proposed").replaces_id == allocation.pk


def test_an_ack_after_a_cancel_changes_nothing_and_an_unknown_one_is_unmatched(
    trader, middle_office, funds, aapl, venue
):
    order = _filled(_block(trader))
    allocation = allocation_confirm(user=middle_office, order_id=order.pk)
    allocation_cancel(user=middle_office, order_id=order.pk, reason="redo")
    allocation.refresh_from_db()
    assert _ack(allocation, codec.ALLOC_STATUS_ACCEPTED) == ("alloc_ack_ignored", order.pk)
    assert _ack(allocation, codec.ALLOC_STATUS_ACCEPTED, alloc_id=allocation.cancel_alloc_id) == (
        "alloc_cancel_ack",
        order.pk,
    )
    allocation.refresh_from_db()
    assert allocation.status == "cancelled"
    assert _ack(allocation, codec.ALLOC_STATUS_ACCEPTED, alloc_id="NOPE") == ("alloc_ack_unmatched", None)


def test_a_sell_block_books_sales(trader, middle_office, funds, aapl, venue):
    for fund in funds:
        Position.objects.create(account=fund, security=aapl, quantity=1000, bought_quantity=1000,
                                bought_notional=Decimal("170000"))  # fmt: skip
    order = _filled(_block(trader, side="SELL"))
    allocation_confirm(user=middle_office, order_id=order.pk)
    assert _positions(aapl) == {"ACC-1": 400, "ACC-2": 600}
    assert Position.objects.get(account=funds[1], security=aapl).sold_notional == Decimal("70200")


def test_a_block_closed_locally_with_fills_is_proposed(trader, middle_office, funds, aapl, venue):
    order = _filled(_block(trader), quantity=300)
    response = client_for(middle_office).post(
        f"{ORDERS}{order.pk}/close/", {"status": "done_for_day", "reason": "venue lost it"}, format="json"
    )
    assert response.status_code == 200, response.json()
    (allocation,) = Allocation.objects.filter(order=order)
    assert [line.quantity for line in allocation.lines.all()] == [180, 120]


def _bust(order: Order, quantity: int) -> None:
    fill = order.executions.get(exec_type="F")
    apply(order, ExecType="H", OrdStatus="1" if quantity < order.filled_quantity else "0", ExecRefID=fill.exec_id,
          LastQty=quantity, LastPx="175.50", CumQty=order.filled_quantity - quantity,
          LeavesQty=order.quantity - order.filled_quantity + quantity)  # fmt: skip


def test_a_bust_before_confirmation_withdraws_the_stale_proposal(trader, funds, aapl, venue):
    order = _filled(_block(trader), quantity=500)
    apply(order, ExecType="4", OrdStatus="4", CumQty=500, LeavesQty=0)
    first = Allocation.objects.get(order=order)
    _bust(order, 500)
    first.refresh_from_db()
    assert first.status == "cancelled"
    assert not Allocation.objects.filter(order=order, status="proposed").exists()  # nothing executed now


def test_a_bust_after_confirmation_flags_the_block_for_review(trader, middle_office, funds, aapl, venue):
    order = _filled(_block(trader), quantity=500)
    apply(order, ExecType="4", OrdStatus="4", CumQty=500, LeavesQty=0)
    allocation_confirm(user=middle_office, order_id=order.pk)
    _bust(order, 500)
    order.refresh_from_db()
    assert order.needs_review
    (flag,) = order.flags.filter(kind="allocation_out_of_step")
    assert flag.details == {"booked_quantity": 500, "filled_quantity": 0}
    assert _positions(aapl) == {"ACC-1": 300, "ACC-2": 200}  # booked until middle office redoes it


def test_a_desk_block_cancelled_after_partial_fills_is_proposed(trader, funds, aapl, venue):
    pm = _pm("pm1", *funds)
    parent = _block(pm)
    api = client_for(trader)
    api.post(f"{ORDERS}{parent.pk}/accept/")
    placed = api.post(f"{ORDERS}{parent.pk}/children/", {"quantity": 500, "order_type": "MARKET"}, format="json")
    child = _filled(Order.objects.get(pk=placed.json()["id"]))
    assert child.status == "filled"
    assert api.post(f"{ORDERS}{parent.pk}/cancel/").status_code == 202
    parent.refresh_from_db()
    assert (parent.status, parent.filled_quantity) == ("cancelled", 500)
    (allocation,) = Allocation.objects.filter(order=parent)
    assert [line.quantity for line in allocation.lines.all()] == [300, 200]
    assert _positions(aapl) == {}  # the child's fills are the block's: booked on confirmation
