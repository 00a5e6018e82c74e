"""Portfolio managers and the desk (issue 14): a PM's order is checked by compliance
but not routed; it waits, new, in the incoming queue of the traders of its account,
one of whom accepts it (its owner). PMs see only their own orders and act on none."""

from __future__ import annotations

from decimal import Decimal

import pytest

from audit.models import AuditEvent
from compliance.models import RuleSetting
from oms_site.errors import InvalidStateTransition
from orders.models import AccountExposure, Order, OrderRequest, Position
from orders.selectors import OrderActions
from orders.services import (
    execution_report_apply,
    inbox_apply,
    order_accept,
    order_child_place,
    order_submit,
    override_approve,
)
from routing.models import OutboundMessage
from tests.conftest import apply, report
from tests.helpers import assert_error, client_for, inbox_message_store, run_together
from tests.helpers import portfolio_manager as _pm
from tests.orders.test_exposure import recomputed, stored
from tests.pages.conftest import signed_in, ticket

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"


def _desk_order(pm, client_order_id: str, quantity: int = 1000) -> Order:
    """A portfolio manager's BUY ``quantity`` AAPL LIMIT 175.50 on ACC-1, waiting for the desk."""
    order, _ = order_submit(
        user=pm,
        client_order_id=client_order_id,
        account="ACC-1",
        symbol="AAPL",
        side="BUY",
        quantity=quantity,
        order_type="LIMIT",
        limit_price=Decimal("175.50"),
    )
    return order


@pytest.fixture
def pm(account):
    return _pm("pm1", account)


@pytest.fixture
def pm_api(pm):
    return client_for(pm)


def _ticket(**overrides) -> dict:
    body = {
        "client_order_id": "PM-1",
        "account": "ACC-1",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": 1000,
        "order_type": "LIMIT",
        "limit_price": "175.50",
    }
    body.update(overrides)
    return body


@pytest.fixture
def pm_order(pm_api, aapl, venue) -> dict:
    response = pm_api.post(ORDERS, _ticket(), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _actions(order_id) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="order", object_id=str(order_id))
        .order_by("id")
        .values_list("action", flat=True)
    )


def test_pm_order_is_checked_but_not_routed(pm_order):
    assert pm_order["status"] == "new"
    assert (pm_order["desk_order"], pm_order["owner"], pm_order["venue"]) == (True, None, None)
    assert pm_order["compliance_results"], "compliance ran"
    assert not OutboundMessage.objects.exists()
    assert not OrderRequest.objects.exists()
    assert _actions(pm_order["id"]) == ["order.created", "compliance.evaluated", "order.queued_for_desk"]


def test_a_traders_own_order_is_routed_as_before(api, aapl, venue, account):
    body = api.post(ORDERS, _ticket(client_order_id="T-1"), format="json").json()
    assert (body["status"], body["desk_order"], body["owner"]) == ("pending_new", False, None)
    assert OutboundMessage.objects.count() == 1


def test_pm_order_blocked_by_compliance_is_rejected(pm_api, aapl, venue):
    RuleSetting.objects.filter(scope="firm", rule="max_order_quantity").update(enabled=True)
    body = pm_api.post(ORDERS, _ticket(quantity=10**9), format="json").json()
    assert body["status"] == "rejected" and body["reject_reason"]
    assert not OutboundMessage.objects.exists()


def test_pm_basket_lines_wait_for_the_desk(pm_api, aapl, venue):
    lines = [_ticket(client_order_id=f"PM-B{i}") for i in range(2)]
    response = pm_api.post("/api/v1/baskets/", {"client_basket_id": "B-1", "orders": lines}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert [o["status"] for o in body["orders"]] == ["new", "new"]
    assert body["counts"] == {"total": 2, "routed": 0, "held": 0, "rejected": 0}
    assert all(o["desk_order"] for o in body["orders"])
    assert not OutboundMessage.objects.exists()


def test_trader_sees_it_incoming_and_accepts_it(api, trader, pm_order):
    incoming = api.get(ORDERS, {"incoming": "true"}).json()["results"]
    assert [o["id"] for o in incoming] == [pm_order["id"]]

    response = api.post(f"{ORDERS}{pm_order['id']}/accept/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["owner"]) == ("new", "trader1")
    assert Order.objects.get(pk=pm_order["id"]).owner == trader
    event = AuditEvent.objects.get(object_type="order", object_id=str(pm_order["id"]), action="order.accepted")
    assert event.actor == "trader1"
    assert (event.before["owner"], event.after["owner"]) == (None, "trader1")
    assert (event.before["status"], event.after["status"]) == ("new", "new")
    assert api.get(ORDERS, {"incoming": "true"}).json()["count"] == 0
    assert not OutboundMessage.objects.exists()


def test_incoming_is_newest_first_and_only_unaccepted_desk_orders(api, pm_api, pm_order):
    second = pm_api.post(ORDERS, _ticket(client_order_id="PM-2"), format="json").json()
    api.post(ORDERS, _ticket(client_order_id="T-OWN"), format="json")
    assert [o["id"] for o in api.get(ORDERS, {"incoming": "true"}).json()["results"]] == [second["id"], pm_order["id"]]
    api.post(f"{ORDERS}{second['id']}/accept/")
    assert [o["id"] for o in api.get(ORDERS, {"incoming": "true"}).json()["results"]] == [pm_order["id"]]


def test_second_accept_is_409(api, other_trader, account, pm_order):
    account.traders.add(other_trader)
    assert api.post(f"{ORDERS}{pm_order['id']}/accept/").status_code == 200
    body = assert_error(client_for(other_trader).post(f"{ORDERS}{pm_order['id']}/accept/"), 409, "already_accepted")
    assert body["details"] == {"owner": "trader1"}
    assert assert_error(api.post(f"{ORDERS}{pm_order['id']}/accept/"), 409, "already_accepted")
    assert Order.objects.get(pk=pm_order["id"]).owner.username == "trader1"
    assert _actions(pm_order["id"]).count("order.accepted") == 1


def test_accepting_a_traders_own_order_is_409(api, aapl, venue, account):
    own = api.post(ORDERS, _ticket(client_order_id="T-1"), format="json").json()
    assert_error(api.post(f"{ORDERS}{own['id']}/accept/"), 409, "not_desk_order")


def test_trader_not_entitled_gets_404_as_for_any_foreign_order(other_trader, other_account, pm_order):
    other = client_for(other_trader)
    assert_error(other.post(f"{ORDERS}{pm_order['id']}/accept/"), 404, "not_found")
    assert other.get(ORDERS, {"incoming": "true"}).json()["count"] == 0
    assert Order.objects.get(pk=pm_order["id"]).owner is None


def test_middle_office_may_see_but_not_accept(middle_office, pm_order):
    assert_error(client_for(middle_office).post(f"{ORDERS}{pm_order['id']}/accept/"), 403, "permission_denied")


def test_pm_cannot_accept_cancel_or_amend(pm_api, pm_order):
    order_id = pm_order["id"]
    assert_error(pm_api.post(f"{ORDERS}{order_id}/accept/"), 403, "permission_denied")
    assert_error(pm_api.post(f"{ORDERS}{order_id}/cancel/"), 403, "permission_denied")
    assert_error(pm_api.post(f"{ORDERS}{order_id}/amend/", {"quantity": 500}, format="json"), 403, "permission_denied")
    order = Order.objects.get(pk=order_id)
    assert (order.status, order.owner) == ("new", None)


def test_pm_sees_only_their_own_orders(pm_api, pm_order, account, api):
    other_pm = client_for(_pm("pm2", account))
    theirs = other_pm.post(ORDERS, _ticket(client_order_id="PM2-1"), format="json").json()
    trader_order = api.post(ORDERS, _ticket(client_order_id="T-1"), format="json").json()

    assert_error(pm_api.get(f"{ORDERS}{theirs['id']}/"), 404, "not_found")
    assert_error(pm_api.get(f"{ORDERS}{trader_order['id']}/"), 404, "not_found")
    assert_error(pm_api.post(f"{ORDERS}{theirs['id']}/accept/"), 404, "not_found")
    assert [o["id"] for o in pm_api.get(ORDERS).json()["results"]] == [pm_order["id"]]
    assert pm_api.get(f"{ORDERS}{pm_order['id']}/").status_code == 200
    # The traders of the account see both PMs' orders.
    assert {o["id"] for o in api.get(ORDERS).json()["results"]} == {pm_order["id"], theirs["id"], trader_order["id"]}


def test_pm_order_held_by_compliance_returns_to_the_queue_when_released(pm, trader, middle_office, aapl, venue):
    RuleSetting.objects.filter(scope="firm", rule="duplicate_order").update(enabled=True)
    first = _desk_order(pm, "PM-D1", quantity=100)
    held = _desk_order(pm, "PM-D2", quantity=100)
    assert (first.status, held.status) == ("new", "held")
    response = client_for(trader).post(f"{ORDERS}{held.pk}/override/", {"justification": "intended"}, format="json")
    assert response.status_code < 300, response.content
    override = held.override_requests.get()
    override_approve(user=middle_office, override_id=override.pk, note="ok")
    held.refresh_from_db()
    assert held.status == "new"
    assert not OutboundMessage.objects.exists()
    assert "order.queued_for_desk" in _actions(held.pk)


def test_pm_ticket_page_order_waits_for_the_desk(pm, aapl, venue):
    web = signed_in(pm)
    response = web.post("/orders/new/", ticket(client_order_id="PM-WEB-1"))
    assert response.status_code == 302, response.content
    order = Order.objects.get(client_order_id="PM-WEB-1")
    assert (order.status, order.desk_order, order.origin) == ("new", True, "web")
    assert not OutboundMessage.objects.exists()
    # Their own order's page offers no trader action.
    page = web.get(f"/orders/{order.pk}/")
    assert page.status_code == 200
    assert page.context["actions"] == OrderActions(False, False, False, False)


# ------------------------------------------------------------- parent and child orders
def _child(client, parent_id: int, quantity: int, **overrides):
    body = {"quantity": quantity, "order_type": "LIMIT", "limit_price": "175.50"}
    body.update(overrides)
    return client.post(f"{ORDERS}{parent_id}/children/", body, format="json")


@pytest.fixture
def parent(api, pm_order) -> dict:
    assert api.post(f"{ORDERS}{pm_order['id']}/accept/").status_code == 200
    return pm_order


def test_owner_places_two_children(api, pm_api, parent):
    first = _child(api, parent["id"], 400)
    second = _child(api, parent["id"], 600, order_type="MARKET", limit_price=None, venue="SIM")

    assert (first.status_code, second.status_code) == (201, 201), (first.content, second.content)
    one, two = first.json(), second.json()
    assert (one["status"], one["parent"], one["account"], one["symbol"], one["side"]) == (
        "pending_new",
        parent["id"],
        "ACC-1",
        "AAPL",
        "BUY",
    )
    assert (one["client_order_id"], two["client_order_id"]) == ("PM-1-C1", "PM-1-C2")
    assert (one["desk_order"], two["order_type"], two["venue"]) == (False, "MARKET", "SIM")
    assert OutboundMessage.objects.filter(msg_type="D").count() == 2  # routed like any order
    body = api.get(f"{ORDERS}{parent['id']}/").json()
    assert (body["children"], body["placed_quantity"], body["status"]) == ([one["id"], two["id"]], 1000, "open")
    listed = next(o for o in api.get(ORDERS).json()["results"] if o["id"] == parent["id"])
    assert (listed["children"], listed["placed_quantity"]) == ([one["id"], two["id"]], 1000)
    # The PM follows the progress of their order's children.
    assert pm_api.get(f"{ORDERS}{one['id']}/").status_code == 200
    placed = AuditEvent.objects.filter(object_id=str(parent["id"]), action="order.child_placed").order_by("id")
    assert [(e.before["placed_quantity"], e.after["placed_quantity"]) for e in placed] == [(0, 400), (400, 1000)]
    assert placed[0].details == {"child": one["id"], "quantity": 400, "status": "pending_new"}


def test_overplacing_is_409_and_places_nothing(api, parent):
    assert _child(api, parent["id"], 700).status_code == 201
    body = assert_error(_child(api, parent["id"], 400), 409, "overplaced")
    assert body["details"] == {"quantity": 1000, "placed_quantity": 700, "available": 300}
    assert Order.objects.filter(parent_id=parent["id"]).count() == 1
    assert _child(api, parent["id"], 300).status_code == 201


def test_child_validation_errors_are_400(api, parent):
    response = _child(api, parent["id"], 100, order_type="LIMIT", limit_price=None)
    assert response.status_code == 400
    assert "limit_price" in response.json()["details"]
    assert not Order.objects.filter(parent_id=parent["id"]).exists()


def test_only_the_owner_places_children(api, pm_api, other_trader, account, middle_office, pm_order):
    assert_error(_child(api, pm_order["id"], 100), 403, "permission_denied")  # not accepted yet: no owner
    api.post(f"{ORDERS}{pm_order['id']}/accept/")
    account.traders.add(other_trader)
    assert_error(_child(client_for(other_trader), pm_order["id"], 100), 403, "permission_denied")
    assert_error(_child(pm_api, pm_order["id"], 100), 403, "permission_denied")
    assert_error(_child(client_for(middle_office), pm_order["id"], 100), 403, "permission_denied")
    assert not Order.objects.filter(parent_id=pm_order["id"]).exists()


def test_a_traders_own_order_has_no_children(api, aapl, venue, account):
    own = api.post(ORDERS, _ticket(client_order_id="T-1"), format="json").json()
    assert (own["parent"], own["children"], own["placed_quantity"]) == (None, [], 0)
    assert_error(_child(api, own["id"], 100), 409, "not_desk_order")


def test_a_child_ending_with_leaves_frees_them(api, parent):
    child = Order.objects.get(pk=_child(api, parent["id"], 500).json()["id"])
    rejected = Order.objects.get(pk=_child(api, parent["id"], 200).json()["id"])
    apply(child, ExecType="0", OrdStatus="0")
    apply(child, ExecType="F", OrdStatus="1", LastQty=100, LastPx="175.40", CumQty=100, LeavesQty=400)
    apply(rejected, ExecType="8", OrdStatus="8", Text="no")
    assert Order.objects.get(pk=parent["id"]).placed_quantity_read() == 500
    apply(child, ExecType="4", OrdStatus="4", CumQty=100, LeavesQty=0)
    assert child.status == "cancelled"
    assert api.get(f"{ORDERS}{parent['id']}/").json()["placed_quantity"] == 100
    assert _child(api, parent["id"], 900).status_code == 201


def test_cancelling_the_parent_cancels_its_working_children(api, parent):
    unsent = _child(api, parent["id"], 300).json()
    at_venue = Order.objects.get(pk=_child(api, parent["id"], 300).json()["id"])
    apply(at_venue, ExecType="0", OrdStatus="0")

    response = api.post(f"{ORDERS}{parent['id']}/cancel/")

    assert response.status_code == 202, response.content
    assert response.json()["status"] == "cancelled"
    assert Order.objects.get(pk=unsent["id"]).status == "cancelled"
    at_venue.refresh_from_db()
    assert at_venue.status == "pending_cancel"
    assert OutboundMessage.objects.filter(order_id=at_venue.pk, msg_type="F").count() == 1
    reason = f"parent order {parent['id']} cancelled"
    assert AuditEvent.objects.get(object_id=str(unsent["id"]), action="order.cancelled").details["reason"] == reason
    assert (
        AuditEvent.objects.get(object_id=str(at_venue.pk), action="order.cancel_requested").details["reason"] == reason
    )
    assert _actions(parent["id"])[-1] == "order.cancelled"


def test_amending_the_parent_below_placed_is_409(api, parent):
    _child(api, parent["id"], 600)
    body = assert_error(
        api.post(f"{ORDERS}{parent['id']}/amend/", {"quantity": 500}, format="json"), 409, "below_placed"
    )
    assert body["details"]["placed_quantity"] == 600
    assert Order.objects.get(pk=parent["id"]).quantity == 1000

    response = api.post(f"{ORDERS}{parent['id']}/amend/", {"quantity": 800}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["quantity"] == 800
    event = AuditEvent.objects.get(object_id=str(parent["id"]), action="order.amended")
    assert (event.before["quantity"], event.after["quantity"]) == (1000, 800)
    assert not OutboundMessage.objects.filter(order_id=parent["id"]).exists()


def test_a_child_cannot_be_increased(api, parent):
    child = _child(api, parent["id"], 500).json()
    apply(Order.objects.get(pk=child["id"]), ExecType="0", OrdStatus="0")
    assert_error(api.post(f"{ORDERS}{child['id']}/amend/", {"quantity": 900}, format="json"), 409, "child_increase")


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_eight_racing_placements_of_200_on_1000_place_exactly_five(trader, account, aapl, venue):
    pm = _pm("pm1", account)
    parent = _desk_order(pm, "PM-RACE")
    order_accept(user=trader, order_id=parent.pk)

    def place():
        return order_child_place(
            user=trader, order_id=parent.pk, quantity=200, order_type="LIMIT", limit_price=Decimal("175.50")
        )

    outcomes = run_together([place] * 8)

    placed = [o for o in outcomes if isinstance(o, Order)]
    refused = [o for o in outcomes if isinstance(o, InvalidStateTransition)]
    assert (len(placed), len(refused)) == (5, 3), outcomes
    assert {o.code for o in refused} == {"overplaced"}
    assert Order.objects.filter(parent=parent).count() == 5
    assert parent.placed_quantity_read() == 1000
    assert sorted(Order.objects.filter(parent=parent).values_list("client_order_id", flat=True)) == [
        f"PM-RACE-C{n}" for n in range(1, 6)
    ]


def test_an_accepted_desk_order_counts_against_limits_through_its_children_only(api, pm_order, account, aapl):
    def working() -> int:
        rows = AccountExposure.objects.filter(account=account, security=aapl)
        return sum(rows.values_list("working_quantity", flat=True))

    # Waiting for the desk, the PM's order counts like any staged order ...
    assert working() == pm_order["quantity"] == 1000
    assert api.post(f"{ORDERS}{pm_order['id']}/accept/").status_code == 200
    # ... once a trader owns it, its children carry its exposure: 1,000 placed is 1,000, not 2,000.
    assert working() == 0
    assert _child(api, pm_order["id"], 400).status_code == 201
    assert _child(api, pm_order["id"], 600).status_code == 201
    assert working() == 1000
    assert stored() == recomputed()


# --------------------------------------------- the parent follows its children's fills
def _children(api, parent_id: int, *quantities) -> list[Order]:
    children = []
    for quantity in quantities:
        response = _child(api, parent_id, quantity)
        assert response.status_code == 201, response.content
        child = Order.objects.get(pk=response.json()["id"])
        apply(child, ExecType="0", OrdStatus="0")
        children.append(child)
    return children


def _fill(child: Order, qty: int, px: str, cum: int, avg: str):
    status = "2" if cum == child.quantity else "1"
    return apply(
        child,
        ExecType="F",
        OrdStatus=status,
        LastQty=qty,
        LastPx=px,
        CumQty=cum,
        LeavesQty=child.quantity - cum,
        AvgPx=avg,
    )


def _position(account, aapl) -> int:
    return Position.objects.filter(account=account, security=aapl).values_list("quantity", flat=True).first() or 0


def test_the_first_child_placed_opens_the_parent(api, parent):
    assert Order.objects.get(pk=parent["id"]).status == "new"
    _child(api, parent["id"], 100)
    assert Order.objects.get(pk=parent["id"]).status == "open"
    placed = AuditEvent.objects.get(object_id=str(parent["id"]), action="order.child_placed")
    assert (placed.before["status"], placed.after["status"]) == ("new", "open")


def test_parent_fills_follow_its_childrens_executions(api, pm_api, parent, account, aapl):
    one, two = _children(api, parent["id"], 500, 500)

    _fill(one, 500, "175.10", 500, "175.10")
    mid = Order.objects.get(pk=parent["id"])
    assert (mid.status, mid.filled_quantity, mid.avg_fill_price) == ("partially_filled", 500, Decimal("175.10"))
    _fill(two, 200, "175.20", 200, "175.20")
    _fill(two, 300, "175.25", 500, "175.23")

    done = Order.objects.get(pk=parent["id"])
    # (500 x 175.10 + 200 x 175.20 + 300 x 175.25) / 1000, to the children's 8 decimals
    assert (done.status, done.filled_quantity, done.avg_fill_price) == ("filled", 1000, Decimal("175.16500000"))
    body = pm_api.get(f"{ORDERS}{parent['id']}/").json()
    assert (body["status"], body["filled_quantity"], body["avg_fill_price"]) == ("filled", 1000, "175.16500000")
    progress = AuditEvent.objects.filter(object_id=str(parent["id"]), action="order.parent_progress").order_by("id")
    assert [(e.before["status"], e.after["status"], e.after["filled_quantity"]) for e in progress] == [
        ("open", "partially_filled", 500),
        ("partially_filled", "partially_filled", 700),
        ("partially_filled", "filled", 1000),
    ]
    assert all(e.actor == "venue:SIM" for e in progress)
    # The children's executions booked the position once: 1,000, not 2,000.
    assert _position(account, aapl) == 1000
    assert not parent_has_executions(parent["id"])
    assert stored() == recomputed()


def parent_has_executions(parent_id: int) -> bool:
    return Order.objects.get(pk=parent_id).executions.exists()


def test_a_child_bust_moves_the_parent_back(api, parent, account, aapl):
    one, two = _children(api, parent["id"], 500, 500)
    _fill(one, 500, "175.10", 500, "175.10")
    _fill(two, 500, "175.30", 500, "175.30")
    assert Order.objects.get(pk=parent["id"]).status == "filled"

    bust = two.executions.get(exec_type="F").exec_id
    apply(two, ExecType="H", OrdStatus="0", ExecRefID=bust, LastQty=0, CumQty=0, LeavesQty=500)

    back = Order.objects.get(pk=parent["id"])
    assert (back.status, back.filled_quantity, back.avg_fill_price) == ("partially_filled", 500, Decimal("175.10"))
    event = AuditEvent.objects.filter(object_id=str(parent["id"]), action="order.parent_progress").latest("id")
    assert (event.before["status"], event.after["status"]) == ("filled", "partially_filled")
    assert _position(account, aapl) == 500
    bust_one = one.executions.get(exec_type="F").exec_id
    apply(one, ExecType="H", OrdStatus="0", ExecRefID=bust_one, LastQty=0, CumQty=0, LeavesQty=500)
    back.refresh_from_db()
    assert (back.status, back.filled_quantity, back.avg_fill_price) == ("open", 0, None)
    assert stored() == recomputed()


def test_a_cancelled_parent_keeps_its_fills_and_takes_late_child_fills(api, parent):
    one, two = _children(api, parent["id"], 500, 500)
    _fill(one, 300, "175.10", 300, "175.10")

    response = api.post(f"{ORDERS}{parent['id']}/cancel/")

    assert response.status_code == 202, response.content
    assert (response.json()["status"], response.json()["filled_quantity"]) == ("cancelled", 300)
    assert not OutboundMessage.objects.filter(order_id=parent["id"]).exists()  # never at a venue
    one.refresh_from_db()
    assert one.status == "pending_cancel"
    # The venue fills the child before the cancel: the parent stays cancelled, with it.
    _fill(one, 200, "175.20", 500, "175.14")
    cancelled = Order.objects.get(pk=parent["id"])
    assert (cancelled.status, cancelled.filled_quantity, cancelled.avg_fill_price) == (
        "cancelled",
        500,
        Decimal("175.14000000"),
    )
    event = AuditEvent.objects.filter(object_id=str(parent["id"]), action="order.parent_progress").latest("id")
    assert (event.before["filled_quantity"], event.after["filled_quantity"], event.after["status"]) == (
        300,
        500,
        "cancelled",
    )
    assert stored() == recomputed()


def test_a_batch_of_reports_moves_the_parent_once_per_batch(api, parent, venue, account, aapl):
    one, two = _children(api, parent["id"], 500, 500)
    messages = [
        report(one, ExecType="F", OrdStatus="1", LastQty=200, LastPx="175.10", CumQty=200, LeavesQty=300),
        report(two, ExecType="F", OrdStatus="2", LastQty=500, LastPx="175.40", CumQty=500, LeavesQty=0),
        report(one, ExecType="F", OrdStatus="2", LastQty=300, LastPx="175.20", CumQty=500, LeavesQty=0),
    ]
    for seq, tags in enumerate(messages, start=1):
        inbox_message_store(venue, seq, tags)

    assert inbox_apply(venue_code=venue.code) == 3

    done = Order.objects.get(pk=parent["id"])
    # (200 x 175.10 + 500 x 175.40 + 300 x 175.20) / 1000
    assert (done.status, done.filled_quantity, done.avg_fill_price) == ("filled", 1000, Decimal("175.28000000"))
    progress = AuditEvent.objects.filter(object_id=str(parent["id"]), action="order.parent_progress")
    assert [(e.before["status"], e.after["status"]) for e in progress] == [("open", "filled")]
    assert {o.status for o in Order.objects.filter(parent_id=parent["id"])} == {"filled"}
    assert _position(account, aapl) == 1000
    assert stored() == recomputed()


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_two_children_filled_at_once_fill_the_parent_exactly(trader, account, aapl, venue):
    pm = _pm("pm1", account)
    parent = _desk_order(pm, "PM-FILLS")
    order_accept(user=trader, order_id=parent.pk)
    children = [
        order_child_place(
            user=trader, order_id=parent.pk, quantity=500, order_type="LIMIT", limit_price=Decimal("175.50")
        )
        for _ in range(2)
    ]
    for child in children:
        apply(child, ExecType="0", OrdStatus="0")

    def filler(child: Order, px: str):
        message = report(child, ExecType="F", OrdStatus="2", LastQty=500, LastPx=px, CumQty=500, LeavesQty=0)
        return lambda: execution_report_apply(venue_code=venue.code, message=message)

    outcomes = run_together([filler(children[0], "175.00"), filler(children[1], "176.00")])

    assert [o.outcome for o in outcomes] == ["applied", "applied"], outcomes
    parent.refresh_from_db()
    assert (parent.status, parent.filled_quantity, parent.avg_fill_price) == ("filled", 1000, Decimal("175.50000000"))
    assert AuditEvent.objects.filter(object_id=str(parent.pk), action="order.parent_progress").count() == 2
    assert _position(account, aapl) == 1000
    assert stored() == recomputed()


def test_a_parent_cut_to_what_its_children_filled_is_filled(api, parent):
    one, two = _children(api, parent["id"], 500, 500)
    _fill(one, 500, "175.10", 500, "175.10")
    apply(two, ExecType="4", OrdStatus="4", CumQty=0, LeavesQty=0)  # unsolicited cancel: 500 free again

    response = api.post(f"{ORDERS}{parent['id']}/amend/", {"quantity": 500}, format="json")

    assert response.status_code == 202, response.content
    assert (response.json()["status"], response.json()["filled_quantity"]) == ("filled", 500)
    event = AuditEvent.objects.get(object_id=str(parent["id"]), action="order.amended")
    assert (event.before["status"], event.after["status"]) == ("partially_filled", "filled")
