"""Closing an order the venue no longer knows (orders.services.order_close_locally):
the service, its admin action and API endpoint for middle office, the late fill that
still applies, a close racing a fill, and what reconciliation and an "unknown order"
cancel reject leave for middle office to see."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import partial

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from audit.models import AuditEvent
from compliance.models import Locate, RuleSetting
from compliance.rules import locate_unused
from oms_site.errors import InvalidInput, InvalidStateTransition, NotFound
from orders.models import AccountExposure, Execution, Order, OrderFlag, OrderRequest, Position
from orders.selectors import TRADER_GROUP
from orders.services import (
    execution_report_apply,
    order_accept,
    order_cancel,
    order_child_place,
    order_close_locally,
)
from routing.models import OutboundMessage
from tests.conftest import apply, report
from tests.factories import UserFactory
from tests.helpers import assert_error, assert_field_errors, client_for, run_together
from tests.orders.test_pm_workflow import _desk_order, _pm

pytestmark = pytest.mark.django_db

ORDERS_ADMIN = "/admin/orders/order/"


def close_url(order: Order) -> str:
    return f"/api/v1/orders/{order.pk}/close/"


def partially_filled(submit, *, quantity: int = 10000, filled: int = 3000, **overrides) -> Order:
    order = submit(quantity=quantity, **overrides)
    OutboundMessage.objects.filter(order_id=order.pk).update(state="sent")  # as the session would
    apply(order, ExecType="0", OrdStatus="0")
    apply(order, ExecType="F", OrdStatus="1", LastQty=filled, LastPx="175.00")
    assert (order.status, order.filled_quantity) == ("partially_filled", filled)
    return order


def working_quantity(order: Order) -> int:
    return sum(
        AccountExposure.objects.filter(account=order.account, security=order.security, side=order.side).values_list(
            "working_quantity", flat=True
        )
    )


def status_rejected(order: Order, **tags):
    """The venue's answer to a status request for an order it does not know: ExecType
    I, OrdStatus Rejected, OrdRejReason 5 (unknown order)."""
    message = report(order, ExecType="I", OrdStatus="8", **tags)
    message[103] = "5"
    result = execution_report_apply(venue_code="SIM", message=message)
    order.refresh_from_db()
    return result


def close_events(order: Order):
    return AuditEvent.objects.filter(object_type="order", object_id=str(order.pk), action="order.closed_locally")


# ------------------------------------------------------------------------- service
def test_closing_a_partially_filled_order_keeps_its_fills_and_releases_its_exposure(submit):
    order = partially_filled(submit)
    position = Position.objects.get(account=order.account, security=order.security)
    assert working_quantity(order) == 7000

    closed = order_close_locally(order_id=order.pk, actor="mo1", reason="Venue restarted and lost RL441")

    order.refresh_from_db()
    assert closed.status == order.status == "cancelled"
    assert (order.filled_quantity, order.avg_fill_price, order.leaves_quantity) == (3000, Decimal("175.00"), 0)
    assert Execution.objects.filter(order=order, in_effect=True).count() == 1
    position.refresh_from_db()
    assert position.quantity == 3000  # unchanged: the fills stand
    assert working_quantity(order) == 0
    event = close_events(order).get()
    assert event.actor == "mo1"
    assert event.details["reason"] == "Venue restarted and lost RL441"
    assert event.details["previous_status"] == "partially_filled"
    assert event.details["leaves_qty"] == 7000
    assert (event.before["status"], event.after["status"]) == ("partially_filled", "cancelled")
    assert OutboundMessage.objects.filter(order_id=order.pk, state="pending").count() == 0


def test_done_for_day_and_the_end_of_day_action(submit):
    order = partially_filled(submit)
    order_close_locally(
        order_id=order.pk, actor="system:eod", reason="end of day", final_status="done_for_day", action="order.eod"
    )
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.leaves_quantity) == ("done_for_day", 3000, 0)
    assert working_quantity(order) == 0
    assert not close_events(order).exists()
    event = AuditEvent.objects.get(object_type="order", object_id=str(order.pk), action="order.eod")
    assert event.details["reason"] == "end of day" and event.details["final_status"] == "done_for_day"


def test_a_pending_cancel_is_withdrawn_and_its_request_ends(submit, trader):
    order = partially_filled(submit)
    order_cancel(user=trader, order_id=order.pk)
    order.refresh_from_db()
    cancel = order.requests.get(kind=OrderRequest.Kind.CANCEL)
    assert order.status == "pending_cancel"
    assert OutboundMessage.objects.get(cl_ord_id=cancel.cl_ord_id).state == "pending"

    order_close_locally(order_id=order.pk, actor="mo1", reason="venue lost it")

    order.refresh_from_db()
    cancel.refresh_from_db()
    assert order.status == "cancelled"
    assert OutboundMessage.objects.get(cl_ord_id=cancel.cl_ord_id).state == "void"
    assert cancel.state == OrderRequest.State.WITHDRAWN and cancel.resolved_at is not None
    assert close_events(order).get().details["withdrawn_messages"] == [cancel.cl_ord_id]


def test_a_sent_cancel_request_ends_as_superseded(submit, trader):
    order = partially_filled(submit)
    order_cancel(user=trader, order_id=order.pk)
    cancel = order.requests.get(kind=OrderRequest.Kind.CANCEL)
    OutboundMessage.objects.filter(cl_ord_id=cancel.cl_ord_id).update(state="sent")
    order_close_locally(order_id=order.pk, actor="mo1", reason="venue lost it")
    cancel.refresh_from_db()
    assert cancel.state == OrderRequest.State.SUPERSEDED


def test_an_unsent_order_has_its_new_order_single_withdrawn(submit):
    order = submit(quantity=500)
    assert order.status == "pending_new"
    order_close_locally(order_id=order.pk, actor="mo1", reason="never reached the venue")
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert OutboundMessage.objects.get(order_id=order.pk, msg_type="D").state == "void"


@pytest.mark.parametrize("final", ["filled", "cancelled", "rejected"])
def test_only_a_working_order_can_be_closed(submit, trader, final):
    order = submit(quantity=100)
    apply(order, ExecType="0", OrdStatus="0")
    if final == "filled":
        apply(order, ExecType="F", OrdStatus="2", LastQty=100, LastPx="175.00")
    elif final == "cancelled":
        apply(order, ExecType="4", OrdStatus="4")
    else:
        order = submit(quantity=100)
        apply(order, ExecType="8", OrdStatus="8", Text="no")
    assert order.status == final
    before = order.updated_at

    with pytest.raises(InvalidStateTransition) as refused:
        order_close_locally(order_id=order.pk, actor="mo1", reason="tidy up")

    assert refused.value.http_status == 409
    order.refresh_from_db()
    assert (order.status, order.updated_at) == (final, before)
    assert not close_events(order).exists()
    refusal = AuditEvent.objects.get(object_id=str(order.pk), action="order.closed_locally_refused")
    assert refusal.actor == "mo1" and refusal.details["status"] == final


def test_a_reason_and_a_closing_status_are_required(submit):
    order = partially_filled(submit)
    with pytest.raises(InvalidInput) as missing:
        order_close_locally(order_id=order.pk, actor="mo1", reason="  ")
    assert set(missing.value.details) == {"reason"}
    with pytest.raises(InvalidInput) as wrong:
        order_close_locally(order_id=order.pk, actor="mo1", reason="x", final_status="expired")
    assert set(wrong.value.details) == {"status"}
    with pytest.raises(NotFound):
        order_close_locally(order_id=order.pk + 1000, actor="mo1", reason="x")
    order.refresh_from_db()
    assert order.status == "partially_filled"
    assert not close_events(order).exists()


def test_a_late_fill_after_the_close_is_applied_and_the_status_stays(submit):
    order = partially_filled(submit)
    order_close_locally(order_id=order.pk, actor="mo1", reason="venue lost it")

    result = apply(order, ExecType="F", OrdStatus="1", LastQty=1000, LastPx="176.00")

    assert result.outcome == "applied"
    assert (order.status, order.filled_quantity, order.leaves_quantity) == ("cancelled", 4000, 0)
    assert order.avg_fill_price == Decimal("175.25")
    assert Position.objects.get(account=order.account, security=order.security).quantity == 4000
    assert OrderFlag.objects.filter(order=order, kind=OrderFlag.Kind.LATE_EXECUTION).count() == 1
    assert working_quantity(order) == 0


def test_the_locate_beyond_the_fills_is_released(submit, account, aapl):
    RuleSetting.objects.filter(scope="firm", rule="short_sale").update(enabled=True)
    locate = Locate.objects.create(
        account=account,
        security=aapl,
        broker="GS",
        reference="L-1",
        quantity=10000,
        expires_at=timezone.now() + dt.timedelta(days=1),
    )
    order = partially_filled(submit, side="SELL_SHORT")
    assert order.locate_use.locate_id == locate.pk
    assert locate_unused(locate) == 0

    order_close_locally(order_id=order.pk, actor="mo1", reason="venue lost it")

    assert locate_unused(locate) == 7000  # only the 3,000 sold still use it
    assert close_events(order).get().details["locate_released"] == {"locate_id": locate.pk, "quantity": 7000}


# ------------------------------------------------- what tells middle office to close
def test_an_unknown_order_cancel_reject_returns_the_order_and_flags_it_for_a_close(submit, trader):
    order = partially_filled(submit)
    order_cancel(user=trader, order_id=order.pk)
    cancel = order.requests.get(kind=OrderRequest.Kind.CANCEL)

    result = execution_report_apply(
        venue_code="SIM",
        message=report(
            order, MsgType="9", ClOrdID=cancel.cl_ord_id, OrdStatus="8", CxlRejReason="1", Text="Unknown order"
        ),
    )

    order.refresh_from_db()
    assert (result.outcome, order.status) == ("applied", "partially_filled")
    flag = OrderFlag.objects.get(order=order, kind=OrderFlag.Kind.VENUE_UNKNOWN_ORDER)
    assert "close it locally" in flag.message and flag.resolved_at is None
    assert order.needs_review

    order_close_locally(order_id=order.pk, actor="mo1", reason="venue lost it")
    flag.refresh_from_db()
    assert flag.resolved_at is not None
    assert close_events(order).get().details["flags_resolved"] == [flag.pk]


def test_reconciliation_records_the_venues_text_as_the_reject_reason(submit):
    order = submit(quantity=100)
    apply(order, ExecType="0", OrdStatus="0")
    status_rejected(order, Text=f"Unknown order {order.cl_ord_id}")
    assert (order.status, order.reject_reason) == ("rejected", f"Unknown order {order.cl_ord_id}")

    silent = submit(quantity=100)
    apply(silent, ExecType="0", OrdStatus="0")
    status_rejected(silent)
    assert (silent.status, silent.reject_reason) == ("rejected", "Rejected by venue: Unknown order (OrdRejReason 5)")


def test_reconciliation_flags_an_order_with_fills_the_venue_no_longer_knows(submit):
    order = partially_filled(submit)
    result = status_rejected(order, Text="Unknown order")
    assert (result.outcome, order.status, order.reject_reason) == ("recorded", "partially_filled", "")
    flag = OrderFlag.objects.get(order=order, kind=OrderFlag.Kind.VENUE_UNKNOWN_ORDER)
    assert "Unknown order" in flag.message


# --------------------------------------------------------------------------- API
def test_middle_office_closes_through_the_api(submit, middle_office):
    order = partially_filled(submit)
    response = client_for(middle_office).post(
        close_url(order), {"reason": "venue restarted", "status": "done_for_day"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["filled_quantity"], body["leaves_quantity"]) == ("done_for_day", 3000, 0)
    assert close_events(order).get().actor == "mo1"


def test_the_api_refuses_traders_missing_reasons_and_ended_orders(submit, trader, middle_office):
    order = partially_filled(submit)
    assert_error(client_for(trader).post(close_url(order), {"reason": "x"}, format="json"), 403, "permission_denied")
    assert_field_errors(client_for(middle_office).post(close_url(order), {}, format="json"), "reason")
    assert_field_errors(
        client_for(middle_office).post(close_url(order), {"reason": "x", "status": "expired"}, format="json"), "status"
    )
    order.refresh_from_db()
    assert order.status == "partially_filled" and not close_events(order).exists()

    client_for(middle_office).post(close_url(order), {"reason": "venue lost it"}, format="json")
    again = client_for(middle_office).post(close_url(order), {"reason": "again"}, format="json")
    body = assert_error(again, 409, "invalid_state")
    assert "cancelled" in body["message"]
    assert_error(
        client_for(middle_office).post("/api/v1/orders/999999/close/", {"reason": "x"}, format="json"), 404, "not_found"
    )


# ------------------------------------------------------------------------- admin
def test_middle_office_closes_from_the_orders_admin_with_a_reason(client, submit, middle_office):
    order = partially_filled(submit)
    client.force_login(middle_office)
    action = {"action": "close_locally", "_selected_action": [order.pk]}

    page = client.post(ORDERS_ADMIN, action)
    assert page.status_code == 200 and b"Close orders locally" in page.content

    missing = client.post(ORDERS_ADMIN, {**action, "confirm": "yes", "status": "cancelled", "reason": ""})
    assert missing.status_code == 200 and b"This field is required" in missing.content
    order.refresh_from_db()
    assert order.status == "partially_filled" and not close_events(order).exists()

    done = client.post(ORDERS_ADMIN, {**action, "confirm": "yes", "status": "cancelled", "reason": "venue restarted"})
    assert done.status_code == 302
    order.refresh_from_db()
    assert order.status == "cancelled"
    event = close_events(order).get()
    assert (event.actor, event.details["reason"]) == ("mo1", "venue restarted")


def test_the_close_action_is_not_for_traders(client, submit):
    order = partially_filled(submit)
    staff_trader = UserFactory(username="desk", is_staff=True)
    staff_trader.groups.add(Group.objects.get_or_create(name=TRADER_GROUP)[0])
    client.force_login(staff_trader)
    response = client.post(
        ORDERS_ADMIN,
        {"action": "close_locally", "_selected_action": [order.pk], "confirm": "yes", "reason": "x"},
    )
    assert response.status_code == 403
    order.refresh_from_db()
    assert order.status == "partially_filled" and not close_events(order).exists()


def test_the_order_page_shows_the_close_reason(client, submit, trader):
    order = partially_filled(submit)
    order_close_locally(order_id=order.pk, actor="mo1", reason="Venue restarted and lost it")
    client.force_login(trader)
    response = client.get(f"/orders/{order.pk}/")
    assert response.status_code == 200
    assert b"Closed by middle office" in response.content
    assert b"Venue restarted and lost it" in response.content


# ------------------------------------------------------------------- concurrency
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_close_racing_a_fill_ends_consistent(submit):
    order = partially_filled(submit)
    fill = report(order, ExecType="F", OrdStatus="1", LastQty=1000, LastPx="176.00")

    outcomes = run_together(
        [
            partial(order_close_locally, order_id=order.pk, actor="mo1", reason="venue lost it"),
            partial(execution_report_apply, venue_code="SIM", message=fill),
        ]
    )

    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.leaves_quantity) == ("cancelled", 4000, 0)
    assert Execution.objects.filter(order=order, in_effect=True).count() == 2
    assert Position.objects.get(account=order.account, security=order.security).quantity == 4000
    assert working_quantity(order) == 0
    event = close_events(order).get()
    # Whichever went first, the close saw the order as it was then.
    assert event.details["leaves_qty"] in (7000, 6000)
    late = OrderFlag.objects.filter(order=order, kind=OrderFlag.Kind.LATE_EXECUTION).count()
    assert late == (1 if event.details["leaves_qty"] == 7000 else 0)


def test_a_desk_order_is_not_closed_locally_its_children_are(trader, account, aapl, venue):
    pm = _pm("pm-close", account)
    parent = _desk_order(pm, "PM-CL-1")
    order_accept(user=trader, order_id=parent.pk)
    child = order_child_place(user=trader, order_id=parent.pk, quantity=400, order_type="LIMIT", limit_price="175.50")
    with pytest.raises(InvalidStateTransition) as refused:
        order_close_locally(order_id=parent.pk, actor="mo1", reason="venue lost it")
    assert refused.value.code == "desk_order"
    closed = order_close_locally(order_id=child.pk, actor="mo1", reason="venue lost it")
    assert closed.status == "cancelled"
