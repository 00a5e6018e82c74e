"""The four-eyes override of a held order, through the services: the trader asks,
someone else in compliance decides before the request expires; approval releases that
one order with the warnings it was asked for covered, and nothing else."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from audit.models import AuditEvent
from compliance.models import ComplianceResult, OverrideRequest
from compliance.services import restricted_entry_add
from oms_site.errors import InvalidInput, InvalidStateTransition, NotFound, NotPermitted
from orders.services import order_cancel, order_override_request, override_approve, override_deny
from routing.models import OutboundMessage

from .conftest import counts, long_position, now

QUANTITY = 1234


@pytest.fixture
def held(place):
    """An order held as a duplicate of a routed one."""
    first = place(quantity=QUANTITY)
    assert first.status == "pending_new"
    order = place(quantity=QUANTITY)
    assert order.status == "held"
    return order


def ask(order, user, justification="client wants a second clip") -> OverrideRequest:
    return order_override_request(user=user, order_id=order.pk, justification=justification)


def actions(order) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(object_type="order", object_id=str(order.pk))
        .order_by("id")
        .values_list("action", "actor")
    )


def sent_orders() -> set[int]:
    return set(OutboundMessage.objects.filter(msg_type="D", state="pending").values_list("order_id", flat=True))


def test_approval_by_another_compliance_user_releases_the_order(held, trader, middle_office):
    override = ask(held, trader)
    assert (override.status, override.requested_by, override.warnings) == ("pending", trader, ["duplicate_order"])
    assert dt.timedelta(seconds=3590) < override.expires_at - now() <= dt.timedelta(seconds=3600)

    approved = override_approve(user=middle_office, override_id=override.pk, note="checked with the desk")

    override.refresh_from_db()
    assert (override.status, override.decided_by, override.decision_note) == (
        "approved",
        middle_office,
        "checked with the desk",
    )
    assert approved.pk == override.pk
    held.refresh_from_db()
    assert held.status == "pending_new"
    assert OutboundMessage.objects.get(order_id=held.pk).msg_type == "D"
    release = ComplianceResult.objects.get(order=held, stage="release", rule="duplicate_order")
    assert (release.outcome, release.overridden) == ("warn", True)
    assert actions(held) == [
        ("order.created", "trader1"),
        ("compliance.evaluated", "trader1"),
        ("order.held", "trader1"),
        ("override.requested", "trader1"),
        ("override.approved", "mo1"),
        ("compliance.evaluated", "mo1"),
        ("order.routed", "mo1"),
    ]
    evaluated = AuditEvent.objects.filter(object_id=str(held.pk), action="compliance.evaluated").order_by("id")
    assert [(e.actor, e.details["stage"], e.details["outcome"]) for e in evaluated] == [
        ("trader1", "submit", "warn"),
        ("mo1", "release", "pass"),
    ]
    approval = AuditEvent.objects.get(object_id=str(held.pk), action="override.approved")
    assert (approval.before["status"], approval.after["status"], approval.details) == (
        "pending",
        "approved",
        {"override": override.pk},
    )


def test_self_approval_is_refused(place, trading_officer):
    place(user=trading_officer, quantity=QUANTITY)
    order = place(user=trading_officer, quantity=QUANTITY)
    override = ask(order, trading_officer)
    before = counts()

    with pytest.raises(NotPermitted) as refused:
        override_approve(user=trading_officer, override_id=override.pk)

    assert refused.value.code == "four_eyes"
    assert counts() == before
    override.refresh_from_db()
    order.refresh_from_db()
    assert (override.status, override.decided_by, order.status) == ("pending", None, "held")
    with pytest.raises(NotPermitted) as refused:
        override_deny(user=trading_officer, override_id=override.pk, note="no")
    assert refused.value.code == "four_eyes"
    assert counts() == before


def test_a_trader_cannot_decide(held, trader, other_trader, account):
    account.traders.add(other_trader)
    override = ask(held, trader)
    before = counts()

    with pytest.raises(NotPermitted):
        override_approve(user=other_trader, override_id=override.pk)

    assert counts() == before
    override.refresh_from_db()
    assert override.status == "pending"


def test_expired_request_cannot_be_approved(held, trader, middle_office):
    override = ask(held, trader)
    OverrideRequest.objects.filter(pk=override.pk).update(expires_at=now() - dt.timedelta(seconds=1))

    with pytest.raises(InvalidStateTransition) as refused:
        override_approve(user=middle_office, override_id=override.pk)

    assert refused.value.code == "override_expired"
    override.refresh_from_db()
    held.refresh_from_db()
    assert (override.status, override.decided_by) == ("expired", middle_office)
    assert held.status == "held"
    assert held.pk not in sent_orders()
    assert not ComplianceResult.objects.filter(order=held, stage="release").exists()
    assert AuditEvent.objects.filter(object_id=str(held.pk), action="override.expired", actor="mo1").exists()
    # The trader may ask again.
    assert ask(held, trader).status == "pending"


def test_approval_releases_only_its_own_order(place, trader, middle_office):
    place(quantity=QUANTITY)
    a = place(quantity=QUANTITY)
    b = place(quantity=QUANTITY)
    assert (a.status, b.status) == ("held", "held")
    override_a = ask(a, trader)
    override_b = ask(b, trader)

    override_approve(user=middle_office, override_id=override_a.pk)

    a.refresh_from_db()
    b.refresh_from_db()
    override_b.refresh_from_db()
    assert (a.status, b.status, override_b.status) == ("pending_new", "held", "pending")
    assert a.pk in sent_orders() and b.pk not in sent_orders()
    assert not ComplianceResult.objects.filter(order=b, stage="release").exists()


def test_one_pending_request_per_order(held, trader):
    ask(held, trader)

    with pytest.raises(InvalidStateTransition) as refused:
        ask(held, trader, "again")

    assert refused.value.code == "override_pending"
    assert OverrideRequest.objects.filter(order=held).count() == 1


def test_request_on_an_order_that_is_not_held_is_refused(place, trader):
    order = place()
    assert order.status == "pending_new"
    before = counts()

    with pytest.raises(InvalidStateTransition) as refused:
        ask(order, trader)

    assert refused.value.code == "invalid_state"
    assert refused.value.details == {"status": "pending_new"}
    assert counts() == before


def test_request_needs_a_justification_and_the_account(held, trader, other_trader, other_account):
    with pytest.raises(InvalidInput) as invalid:
        ask(held, trader, "  ")
    assert invalid.value.details == {"justification": ["This field is required."]}
    with pytest.raises(NotFound):
        ask(held, other_trader)
    assert not OverrideRequest.objects.exists()


def test_deny_rejects_the_order(held, trader, middle_office):
    override = ask(held, trader)

    override_deny(user=middle_office, override_id=override.pk, note="no second clip today")

    override.refresh_from_db()
    held.refresh_from_db()
    assert (override.status, override.decided_by, override.decision_note) == (
        "denied",
        middle_office,
        "no second clip today",
    )
    assert (held.status, held.reject_reason) == ("rejected", "Override denied: no second clip today")
    assert held.pk not in sent_orders()
    assert AuditEvent.objects.filter(object_id=str(held.pk), action="override.denied", actor="mo1").exists()
    with pytest.raises(InvalidStateTransition):
        override_approve(user=middle_office, override_id=override.pk)


def test_deny_needs_a_reason(held, trader, middle_office):
    override = ask(held, trader)

    with pytest.raises(InvalidInput):
        override_deny(user=middle_office, override_id=override.pk, note=" ")

    override.refresh_from_db()
    held.refresh_from_db()
    assert (override.status, held.status) == ("pending", "held")


def test_cancelling_the_held_order_withdraws_the_request(held, trader, middle_office):
    override = ask(held, trader)

    order_cancel(user=trader, order_id=held.pk)

    override.refresh_from_db()
    held.refresh_from_db()
    assert (held.status, override.status) == ("cancelled", "withdrawn")
    assert AuditEvent.objects.filter(object_id=str(held.pk), action="override.withdrawn", actor="trader1").exists()
    with pytest.raises(InvalidStateTransition):
        override_approve(user=middle_office, override_id=override.pk)
    held.refresh_from_db()
    assert held.status == "cancelled"


def test_a_block_found_at_release_rejects_the_approved_order(held, trader, middle_office):
    override = ask(held, trader)
    restricted_entry_add(user=middle_office, symbol="AAPL", reason="deal team")

    override_approve(user=middle_office, override_id=override.pk)

    override.refresh_from_db()
    held.refresh_from_db()
    assert override.status == "approved"
    assert (held.status, held.reject_reason) == ("rejected", "Apple Inc. is on the restricted list.")
    assert held.pk not in sent_orders()
    restricted = ComplianceResult.objects.get(order=held, stage="release", rule="restricted_list")
    assert (restricted.outcome, restricted.overridden) == ("block", False)


@pytest.fixture
def wash_after_request(place, held, trader, account, aapl):
    override = ask(held, trader)
    long_position(account, aapl, 5000)
    sell = place(side="SELL", quantity=500, limit_price=Decimal("175.60"))
    assert sell.status == "held"  # itself a wash trade against the working buys
    return override


def test_an_uncovered_warning_keeps_the_order_held(held, wash_after_request, middle_office):
    override_approve(user=middle_office, override_id=wash_after_request.pk)

    wash_after_request.refresh_from_db()
    held.refresh_from_db()
    assert wash_after_request.status == "approved"
    assert held.status == "held"
    assert held.pk not in sent_orders()
    release = {
        r.rule: (r.outcome, r.overridden)
        for r in ComplianceResult.objects.filter(order=held, stage="release").exclude(outcome="pass")
    }
    assert release == {"duplicate_order": ("warn", True), "wash_trade": ("warn", False)}
    held_events = AuditEvent.objects.filter(object_id=str(held.pk), action="order.held").order_by("id")
    assert [e.actor for e in held_events] == ["trader1", "mo1"]
    assert held_events.last().details["reasons"] == [
        ComplianceResult.objects.get(order=held, stage="release", rule="wash_trade").reason
    ]
