"""Portfolio managers and the desk (issue 14): a PM's order is checked by compliance
but not routed; it waits, new, in the incoming queue of the traders of its account,
one of whom accepts it (its owner). PMs see only their own orders and act on none."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from audit.models import AuditEvent
from compliance.models import RuleSetting
from oms_site.errors import InvalidStateTransition
from oms_site.roles import PORTFOLIO_MANAGER_GROUP
from orders.models import AccountExposure, Order, OrderRequest
from orders.selectors import OrderActions
from orders.services import order_accept, order_child_place, order_submit, override_approve
from routing.models import OutboundMessage
from tests.conftest import apply
from tests.factories import UserFactory
from tests.helpers import assert_error, client_for, run_together
from tests.orders.test_exposure import recomputed, stored
from tests.pages.conftest import signed_in, ticket

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"


def _pm(username: str, *accounts):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get_or_create(name=PORTFOLIO_MANAGER_GROUP)[0])
    for account in accounts:
        account.traders.add(user)
    return user


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
    first, _ = order_submit(
        user=pm,
        client_order_id="PM-D1",
        account="ACC-1",
        symbol="AAPL",
        side="BUY",
        quantity=100,
        order_type="LIMIT",
        limit_price=Decimal("175.50"),
    )
    held, _ = order_submit(
        user=pm,
        client_order_id="PM-D2",
        account="ACC-1",
        symbol="AAPL",
        side="BUY",
        quantity=100,
        order_type="LIMIT",
        limit_price=Decimal("175.50"),
    )
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
    assert (body["children"], body["placed_quantity"], body["status"]) == ([one["id"], two["id"]], 1000, "new")
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
    parent, _ = order_submit(
        user=pm,
        client_order_id="PM-RACE",
        account="ACC-1",
        symbol="AAPL",
        side="BUY",
        quantity=1000,
        order_type="LIMIT",
        limit_price=Decimal("175.50"),
    )
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
