"""The middle-office allocation queue in the admin (issue 14): the queue lists each
block's allocations; an allocation's page changes, confirms and cancels it through
``orders.services`` (audited), shows refusals on the page, and offers the steps only
to middle office and only when the status allows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from audit.models import AuditEvent
from audit.services import audit_event_record
from orders.models import Allocation, AllocationLine, Order, OrderStatus, Position
from routing.models import OutboundMessage
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db

QUEUE = "/admin/orders/allocation/"
TARGETS = [{"account": "ACC-1", "percent": "60"}, {"account": "ACC-2", "percent": "40"}]


@pytest.fixture
def fund2(trader):
    fund = AccountFactory(code="ACC-2", name="US Growth Fund")
    fund.traders.add(trader)
    return fund


@pytest.fixture
def block(trader, account, fund2, aapl, venue) -> Order:
    """A filled block order: BUY 1000 AAPL for ACC-1 (60%) and ACC-2 (40%)."""
    return Order.objects.create(
        client_order_id="BLK-1",
        account=account,
        security=aapl,
        side="BUY",
        quantity=1000,
        order_type="LIMIT",
        limit_price=Decimal("175.50"),
        venue=venue,
        status=OrderStatus.FILLED,
        filled_quantity=1000,
        avg_fill_price=Decimal("175.25"),
        block_order=True,
        allocation_targets=TARGETS,
        created_by=trader,
        cl_ord_id="OMS-BLK-1",
    )


@pytest.fixture
def allocation(block, account, fund2, venue) -> Allocation:
    """The block's proposed allocation: ACC-1 600, ACC-2 400 at 175.25."""
    proposed = Allocation.objects.create(
        order=block,
        venue=venue,
        alloc_id=f"{block.pk}-SIM-A1",
        quantity=1000,
        avg_price=Decimal("175.25"),
        trade_date=dt.date(2026, 3, 2),
    )
    AllocationLine.objects.bulk_create(
        [
            AllocationLine(allocation=proposed, line=1, account=account, quantity=600, proposed_quantity=600),
            AllocationLine(allocation=proposed, line=2, account=fund2, quantity=400, proposed_quantity=400),
        ]
    )
    return proposed


@pytest.fixture
def mo_client(client, middle_office):
    client.force_login(middle_office)
    return client


def page_of(allocation: Allocation) -> str:
    return f"{QUEUE}{allocation.pk}/change/"


def step_url(allocation: Allocation, step: str) -> str:
    return f"{QUEUE}{allocation.pk}/{step}/"


def quantities(allocation: Allocation) -> dict[str, int]:
    return dict(allocation.lines.values_list("account__code", "quantity"))


def allocation_actions(order: Order) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="order", object_id=str(order.pk), action__startswith="allocation.")
        .order_by("id")
        .values_list("action", flat=True)
    )


def change(client, allocation: Allocation, acc1: int, acc2: int, reason: str = "Client moved 100 to ACC-2"):
    return client.post(
        step_url(allocation, "change-lines"), {"confirm": "yes", "line_1": acc1, "line_2": acc2, "reason": reason}
    )


# ------------------------------------------------------------------------- queue
def test_the_queue_lists_the_allocation_with_its_lines_newest_first(mo_client, allocation, block):
    allocation.created_at = dt.datetime(2026, 3, 2, 21, 5, 9, tzinfo=dt.UTC)
    Allocation.objects.filter(pk=allocation.pk).update(created_at=allocation.created_at)

    response = mo_client.get(QUEUE)

    assert response.status_code == 200
    page = response.content.decode()
    assert allocation.alloc_id in page
    assert "ACC-1 600 / ACC-2 400" in page
    assert f'href="/admin/orders/order/{block.pk}/change/"' in page
    assert "AAPL" in page and "175.25" in page and "Proposed" in page
    assert "2026-03-02 21:05:09" in page  # 24-hour UTC
    assert list(response.context["cl"].queryset.values_list("pk", flat=True)) == [allocation.pk]
    # Read-only rows: no add button, no bulk delete.
    assert f"{QUEUE}add/" not in page
    assert "delete_selected" not in page


def test_the_queue_is_searched_by_alloc_id_and_order_id_and_filtered_by_status(mo_client, allocation, block):
    for term, found in [(allocation.alloc_id, True), (str(block.pk), True), ("NOPE-1", False), ("999999", False)]:
        response = mo_client.get(QUEUE, {"q": term})
        assert response.status_code == 200, term
        assert list(response.context["cl"].queryset) == ([allocation] if found else []), term
    proposed = mo_client.get(QUEUE, {"status__exact": "proposed"}).context["cl"].queryset
    confirmed = mo_client.get(QUEUE, {"status__exact": "confirmed"}).context["cl"].queryset
    assert (list(proposed), list(confirmed)) == ([allocation], [])


# ----------------------------------------------------------------- permissions
def test_a_trader_without_the_permission_gets_403_and_nothing_changes(client, trader, allocation, block):
    trader.is_staff = True  # even with access to the admin
    trader.save(update_fields=["is_staff"])
    client.force_login(trader)

    assert client.get(step_url(allocation, "change-lines")).status_code == 403
    assert change(client, allocation, 500, 500).status_code == 403
    assert client.post(step_url(allocation, "confirm"), {"confirm": "yes"}).status_code == 403
    assert client.post(step_url(allocation, "cancel"), {"confirm": "yes", "reason": "no"}).status_code == 403
    assert client.get(page_of(allocation)).status_code == 403

    allocation.refresh_from_db()
    assert allocation.status == Allocation.Status.PROPOSED
    assert quantities(allocation) == {"ACC-1": 600, "ACC-2": 400}
    assert allocation_actions(block) == []
    assert not OutboundMessage.objects.exists()


def test_a_trader_outside_the_admin_is_sent_to_its_login(client, trader, allocation):
    client.force_login(trader)

    response = client.post(step_url(allocation, "confirm"), {"confirm": "yes"})

    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    allocation.refresh_from_db()
    assert allocation.status == Allocation.Status.PROPOSED


def test_a_viewer_without_the_permission_sees_the_allocation_but_no_buttons(client, allocation):
    viewer = UserFactory(username="auditor1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_allocation"))
    client.force_login(viewer)

    response = client.get(page_of(allocation))

    assert response.status_code == 200
    page = response.content.decode()
    assert allocation.alloc_id in page and 'id="allocation-lines"' in page
    assert step_url(allocation, "confirm") not in page
    assert step_url(allocation, "change-lines") not in page
    assert client.post(step_url(allocation, "confirm"), {"confirm": "yes"}).status_code == 403


# ---------------------------------------------------------------------- change
def test_the_page_offers_middle_office_the_steps_of_a_proposed_allocation(mo_client, allocation):
    response = mo_client.get(page_of(allocation))

    assert response.status_code == 200
    page = response.content.decode()
    for step in ("change-lines", "confirm", "cancel"):
        assert f'href="{step_url(allocation, step)}"' in page, step
    assert "None yet: the instruction is sent when the allocation is confirmed." in page
    assert "None received." in page


def test_middle_office_changes_the_quantities_with_a_reason(mo_client, middle_office, allocation, block):
    form_page = mo_client.get(step_url(allocation, "change-lines"))
    assert form_page.status_code == 200
    assert form_page.context["form"].initial == {} and form_page.context["form"]["line_1"].value() == 600

    response = change(mo_client, allocation, 500, 500)

    assert response.status_code == 302 and response["Location"] == page_of(allocation)
    allocation.refresh_from_db()
    assert allocation.status == Allocation.Status.CHANGED
    assert quantities(allocation) == {"ACC-1": 500, "ACC-2": 500}
    assert dict(allocation.lines.values_list("account__code", "proposed_quantity")) == {"ACC-1": 600, "ACC-2": 400}
    event = AuditEvent.objects.get(object_type="order", object_id=str(block.pk), action="allocation.changed")
    assert event.actor == middle_office.username
    assert event.details["reason"] == "Client moved 100 to ACC-2"
    assert [line["quantity"] for line in event.before["lines"]] == [600, 400]
    assert [line["quantity"] for line in event.after["lines"]] == [500, 500]
    followed = mo_client.get(response["Location"])
    assert "Changed allocation" in followed.content.decode()
    assert "ACC-1 500 / ACC-2 500" in mo_client.get(QUEUE).content.decode()


@pytest.mark.parametrize(
    ("acc1", "acc2", "reason", "field", "error"),
    [
        (600, 500, "Typo", None, "The quantities must sum to the executed quantity (1000), not 1100."),
        (500, 500, "", "reason", "This field is required."),
        (-1, 1001, "Negative", "line_1", "Ensure this value is greater than or equal to 0."),
    ],
)
def test_a_change_the_service_or_form_refuses_shows_the_error_and_changes_nothing(
    mo_client, allocation, block, acc1, acc2, reason, field, error
):
    response = change(mo_client, allocation, acc1, acc2, reason=reason)

    assert response.status_code == 200
    form = response.context["form"]
    assert error in (form.errors.get(field) if field else form.non_field_errors())
    assert error in response.content.decode()
    allocation.refresh_from_db()
    assert allocation.status == Allocation.Status.PROPOSED
    assert quantities(allocation) == {"ACC-1": 600, "ACC-2": 400}
    assert allocation_actions(block) == []


# --------------------------------------------------------------------- confirm
def test_middle_office_confirms_positions_are_booked_and_the_instruction_queued(
    mo_client, middle_office, allocation, block, aapl
):
    assert change(mo_client, allocation, 500, 500).status_code == 302
    assert mo_client.get(step_url(allocation, "confirm")).status_code == 200

    response = mo_client.post(step_url(allocation, "confirm"), {"confirm": "yes"})

    assert response.status_code == 302 and response["Location"] == page_of(allocation)
    allocation.refresh_from_db()
    assert allocation.status == Allocation.Status.CONFIRMED
    assert allocation.confirmed_by == middle_office
    positions = dict(Position.objects.filter(security=aapl).values_list("account__code", "quantity"))
    assert positions == {"ACC-1": 500, "ACC-2": 500}
    instruction = OutboundMessage.objects.get(order_id=block.pk, msg_type="J")
    assert instruction.cl_ord_id == allocation.alloc_id
    assert allocation_actions(block) == ["allocation.changed", "allocation.confirmed"]

    page = mo_client.get(page_of(allocation)).content.decode()
    assert "Confirmed allocation" in page  # the success message
    assert "Confirmed (instruction sent)" in page
    assert f'href="{step_url(allocation, "confirm")}"' not in page
    assert f'href="{step_url(allocation, "change-lines")}"' not in page
    assert f'href="{step_url(allocation, "cancel")}"' in page  # not accepted by the broker yet
    assert 'id="allocation-instructions"' in page
    assert f"70={allocation.alloc_id}|71=0|" in page and "79=ACC-1|80=500|79=ACC-2|80=500" in page
    assert "Pending" in page


def test_confirming_a_confirmed_allocation_shows_the_refusal_not_a_500(mo_client, allocation, block):
    assert mo_client.post(step_url(allocation, "confirm"), {"confirm": "yes"}).status_code == 302

    response = mo_client.post(step_url(allocation, "confirm"), {"confirm": "yes"})

    assert response.status_code == 200
    assert "only a proposed allocation can be confirmed" in response.content.decode()
    assert OutboundMessage.objects.filter(order_id=block.pk, msg_type="J").count() == 1
    assert allocation_actions(block) == ["allocation.confirmed"]


def test_the_page_lists_the_brokers_acks_of_this_allocation_only(mo_client, allocation, block):
    def received(alloc_id: str, status: str):
        audit_event_record(
            actor="venue:SIM",
            action="fix.received",
            object_type="order",
            object_id=block.pk,
            details={"msg_type": "P", "message": f"8=FIX.4.4|9=60|35=P|34=7|70={alloc_id}|87={status}|10=123|"},
        )

    received(allocation.alloc_id, "3")
    received(f"{allocation.alloc_id}0", "0")  # another allocation's AllocID that starts alike

    page = mo_client.get(page_of(allocation)).content.decode()

    assert 'id="allocation-acks"' in page
    assert f"70={allocation.alloc_id}|87=3|" in page
    assert f"70={allocation.alloc_id}0|" not in page


# ---------------------------------------------------------------------- cancel
def test_middle_office_cancels_and_a_fresh_proposal_takes_its_place(mo_client, allocation, block):
    assert mo_client.post(step_url(allocation, "cancel"), {"confirm": "yes", "reason": ""}).status_code == 200
    allocation.refresh_from_db()
    assert allocation.status == Allocation.Status.PROPOSED

    response = mo_client.post(step_url(allocation, "cancel"), {"confirm": "yes", "reason": "Wrong funds"})

    allocation.refresh_from_db()
    assert allocation.status == Allocation.Status.CANCELLED
    fresh = Allocation.objects.get(order=block, status=Allocation.Status.PROPOSED)
    assert fresh.pk != allocation.pk and fresh.replaces_id == allocation.pk
    assert response.status_code == 302 and response["Location"] == page_of(fresh)
    assert AuditEvent.objects.get(action="allocation.cancelled", object_id=str(block.pk)).details["reason"] == (
        "Wrong funds"
    )
    page = mo_client.get(page_of(allocation)).content.decode()
    assert "None: the allocation is cancelled." in page
    assert f'href="{step_url(allocation, "cancel")}"' not in page
    assert not OutboundMessage.objects.exists()  # never confirmed: nothing to tell the broker
