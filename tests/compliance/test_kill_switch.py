"""Kill switches through ``kill_switch_set``: switching on latches (no new order in
scope passes compliance) and sends a cancel for every working order in scope, each the
way the order's state allows; switching off lets orders through again."""

from __future__ import annotations

from decimal import Decimal

import pytest

from audit.models import AuditEvent
from compliance.models import KillSwitch
from oms_site.errors import InvalidInput, NotFound, NotPermitted
from orders.models import Order, OrderRequest
from orders.services import kill_switch_set, order_override_request
from routing.models import OutboundMessage, Venue

from .conftest import ack, counts, fill, mark_sent, rule_set

QUANTITY = 1234


def activate(user, scope="firm", target="", reason="runaway algo"):
    return kill_switch_set(user=user, scope=scope, target=target, active=True, reason=reason)


def release(user, scope="firm", target="", reason="all clear"):
    return kill_switch_set(user=user, scope=scope, target=target, active=False, reason=reason)


def refreshed(*orders: Order) -> tuple[str, ...]:
    for order in orders:
        order.refresh_from_db()
    return tuple(order.status for order in orders)


def outbox(order: Order) -> list[tuple[str, str]]:
    return list(OutboundMessage.objects.filter(order_id=order.pk).order_by("id").values_list("msg_type", "state"))


@pytest.fixture
def book(place, trader):
    """One order in each state a kill switch meets."""
    place(quantity=QUANTITY)
    held = place(quantity=QUANTITY)  # a duplicate, held for an override
    override = order_override_request(user=trader, order_id=held.pk, justification="second clip")
    unsent = place()  # its NewOrderSingle still in the outbox
    sent = place()
    mark_sent(sent)  # NewOrderSingle sent, no answer yet
    working = ack(place())
    filled = fill(ack(place(quantity=100)), 100, "175.50")
    rejected = place(limit_price=Decimal("250"))
    assert refreshed(held, unsent, sent, working, filled, rejected) == (
        "held",
        "pending_new",
        "pending_new",
        "open",
        "filled",
        "rejected",
    )
    return {
        "held": held,
        "override": override,
        "unsent": unsent,
        "sent": sent,
        "working": working,
        "filled": filled,
        "rejected": rejected,
    }


def test_firm_switch_cancels_every_working_order_and_blocks_new_ones(place, book, middle_office):
    first = Order.objects.get(quantity=QUANTITY, status="pending_new")

    result = activate(middle_office)

    held, unsent, sent, working = book["held"], book["unsent"], book["sent"], book["working"]
    assert result.changed
    assert result.switch.active and result.switch.activated_by == middle_office
    assert sorted(result.cancelled_order_ids) == sorted(o.pk for o in (first, held, unsent, sent, working))
    assert result.switch.cancels_requested == 5
    # Never sent: cancelled at once, the NewOrderSingle withdrawn from the outbox.
    assert refreshed(held, unsent) == ("cancelled", "cancelled")
    assert outbox(held) == []
    assert outbox(unsent) == [("D", "void")]
    book["override"].refresh_from_db()
    assert book["override"].status == "withdrawn"
    # Sent: an OrderCancelRequest queued, pending cancel until the venue answers.
    assert refreshed(sent, working) == ("pending_cancel", "pending_cancel")
    for order in (sent, working):
        assert outbox(order) == [("D", "sent" if order is sent else "pending"), ("F", "pending")]
        cancel = OrderRequest.objects.get(order=order, kind="cancel")
        assert (cancel.state, cancel.orig_cl_ord_id, cancel.requested_by) == ("pending", order.cl_ord_id, None)
    # Ended orders are left alone.
    assert refreshed(book["filled"], book["rejected"]) == ("filled", "rejected")
    assert [m for m, _ in outbox(book["filled"])] == ["D"]

    blocked = place()
    assert refreshed(blocked) == ("rejected",)
    assert blocked.reject_reason == "Kill switch on (firm): runaway algo"
    assert outbox(blocked) == []


def test_a_sent_order_is_cancelled_through_the_venue_and_audited(book, middle_office):
    result = activate(middle_office)

    switch = result.switch
    activated = AuditEvent.objects.get(action="kill_switch.activated")
    assert (activated.actor, activated.object_type, activated.object_id) == ("mo1", "killswitch", str(switch.pk))
    assert activated.after["reason"] == "runaway algo"
    sweep = AuditEvent.objects.get(action="kill_switch.cancels_sent")
    assert (sweep.actor, sweep.object_id, sweep.details) == (
        "mo1",
        str(switch.pk),
        {"orders": result.cancelled_order_ids},
    )
    assert activated.pk < sweep.pk
    requested = AuditEvent.objects.get(action="order.cancel_requested", object_id=str(book["working"].pk))
    assert (requested.actor, requested.details["reason"]) == ("mo1", "kill switch firm")
    cancelled = AuditEvent.objects.get(action="order.cancelled", object_id=str(book["unsent"].pk))
    assert (cancelled.actor, cancelled.details) == ("mo1", {"sent": False, "reason": "kill switch firm"})


def test_activating_twice_changes_nothing(book, middle_office):
    first = activate(middle_office)
    before = counts()

    again = activate(middle_office, reason="still runaway")

    assert (again.changed, again.cancelled_order_ids, again.switch.pk) == (False, [], first.switch.pk)
    assert counts() == before
    assert KillSwitch.objects.filter(released_at__isnull=True).count() == 1
    assert OutboundMessage.objects.filter(msg_type="F").count() == 2
    assert AuditEvent.objects.filter(action="kill_switch.activated").count() == 1


def test_release_lets_orders_through_and_is_audited(place, middle_office):
    activate(middle_office)
    assert refreshed(place()) == ("rejected",)

    result = release(middle_office, reason="algo fixed")

    assert result.changed
    switch = result.switch
    assert (switch.active, switch.released_by, switch.release_reason) == (False, middle_office, "algo fixed")
    released = AuditEvent.objects.get(action="kill_switch.released")
    assert (released.actor, released.object_id, released.before["released_at"], released.after["release_reason"]) == (
        "mo1",
        str(switch.pk),
        None,
        "algo fixed",
    )
    order = place()
    assert refreshed(order) == ("pending_new",)
    assert outbox(order) == [("D", "pending")]

    again = release(middle_office)
    assert (again.changed, again.switch.pk) == (False, switch.pk)
    assert AuditEvent.objects.filter(action="kill_switch.released").count() == 1


def test_release_does_not_revive_cancelled_orders(place, middle_office):
    order = ack(place())
    activate(middle_office)

    release(middle_office)

    assert refreshed(order) == ("pending_cancel",)


@pytest.fixture
def alt_venue(db):
    return Venue.objects.create(code="ALT", name="Alternative", sender_comp_id="OMS", target_comp_id="ALT")


SCOPED = {
    # scope, target: the terms of an order in scope and of one outside it
    ("account", "ACC-1"): ({}, {"other": True}),
    ("trader", "trader1"): ({}, {"colleague": True}),
    ("symbol", "AAPL"): ({}, {"symbol": "MSFT", "limit_price": Decimal("415.20")}),
    ("venue", "SIM"): ({"venue": "SIM"}, {"venue": "ALT"}),
}


@pytest.mark.parametrize(("scope", "target"), list(SCOPED))
def test_scoped_switch_touches_only_its_scope(
    place, middle_office, account, other_account, other_trader, msft, alt_venue, scope, target
):
    account.traders.add(other_trader)  # a colleague on the same account
    inside_terms, outside_terms = SCOPED[(scope, target)]

    def order(terms):
        terms = dict(terms)
        if terms.pop("other", False):
            terms.update(user=other_trader, account=other_account.code)
        if terms.pop("colleague", False):
            terms.update(user=other_trader)
        return terms

    inside = ack(place(**order(inside_terms)))
    outside = ack(place(**order(outside_terms)))

    result = activate(middle_office, scope=scope, target=target)

    assert result.cancelled_order_ids == [inside.pk]
    assert refreshed(inside, outside) == ("pending_cancel", "open")
    assert [m for m, _ in outbox(inside)] == ["D", "F"]
    assert [m for m, _ in outbox(outside)] == ["D"]
    assert result.switch.cancels_requested == 1

    blocked = place(**order(inside_terms))
    passed = place(**order(outside_terms))
    assert refreshed(blocked, passed) == ("rejected", "pending_new")
    assert blocked.reject_reason == f"Kill switch on ({scope} {target}): runaway algo"

    release(middle_office, scope=scope, target=target)

    assert refreshed(place(**order(inside_terms))) == ("pending_new",)


def test_switches_of_different_scopes_are_independent(place, middle_office, other_account):
    rule_set("duplicate_order", enabled=False)
    activate(middle_office, scope="account", target="ACC-1")
    activate(middle_office, scope="symbol", target="AAPL")

    release(middle_office, scope="account", target="ACC-1")

    assert refreshed(place()) == ("rejected",)  # the symbol switch is still on
    release(middle_office, scope="symbol", target="AAPL")
    assert refreshed(place()) == ("pending_new",)


def test_only_compliance_may_switch(place, trader, middle_office):
    order = ack(place())
    before = counts()

    with pytest.raises(NotPermitted):
        activate(trader)

    assert counts() == before
    assert not KillSwitch.objects.exists()
    assert refreshed(order) == ("open",)


@pytest.mark.parametrize(
    ("scope", "target", "field"),
    [("firm", "ACC-1", "target"), ("account", "", "target"), ("account", "NOPE", "target"), ("galaxy", "", "scope")],
)
def test_invalid_switch_is_refused(middle_office, account, scope, target, field):
    with pytest.raises(InvalidInput) as invalid:
        activate(middle_office, scope=scope, target=target)

    assert field in invalid.value.details
    assert not KillSwitch.objects.exists()


def test_releasing_a_switch_never_on_is_not_found(middle_office):
    with pytest.raises(NotFound):
        release(middle_office)
