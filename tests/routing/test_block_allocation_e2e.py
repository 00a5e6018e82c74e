"""Issue 14's scenario end to end, over HTTP on PostgreSQL, with the venue simulator
over real TCP and a session host as the workers run it: a portfolio manager's block
for two funds, worked by a trader in two child orders, filled by the venue, its
allocation proposed, changed and confirmed by middle office, booked to the funds and
instructed to the broker (35=J), whose acknowledgement (35=P) is recorded."""

from __future__ import annotations

from decimal import Decimal

import pytest

from audit.models import AuditEvent
from orders.models import Allocation, Order, Position
from routing.fix import codec
from routing.models import InboundMessage, OutboundMessage, Venue
from routing.simulator import SimulatorServer
from tests.factories import AccountFactory
from tests.helpers import block_body, client_for
from tests.helpers import portfolio_manager as _pm

from .conftest import wait_for
from .test_hosting import connected, live

pytestmark = pytest.mark.postgres

ORDERS = "/api/v1/orders/"


@pytest.fixture
def simulator():
    server = SimulatorServer(fill_interval=0.2).start()
    yield server
    server.stop()


@live
def test_block_for_two_funds_worked_filled_allocated_and_instructed(
    eager, hosts, simulator, trader, middle_office, account, aapl
):
    acc2 = AccountFactory(code="ACC-2")
    acc2.traders.add(trader)
    pm = _pm("pm1", account, acc2)
    sim = Venue.objects.create(
        code="SIM", host="127.0.0.1", port=simulator.port, sender_comp_id="OMS", target_comp_id="SIM"
    )
    hosts()
    wait_for(lambda: connected(sim), what="logon")
    pm_api, trader_api, mo_api = client_for(pm), client_for(trader), client_for(middle_office)

    # The PM's block: 201, new, not sent.
    response = pm_api.post(ORDERS, block_body(), format="json")
    assert response.status_code == 201, response.json()
    block = response.json()
    assert (block["status"], block["account"], block["block_order"]) == ("new", None, True)
    assert block["allocations"] == [
        {"account": "ACC-1", "percent": "60.000000"},
        {"account": "ACC-2", "percent": "40.000000"},
    ]
    assert not OutboundMessage.objects.filter(order_id=block["id"]).exists()

    # The trader sees it incoming, accepts it and places two children of 500.
    incoming = trader_api.get(ORDERS, {"incoming": "true"}).json()["results"]
    assert [o["id"] for o in incoming] == [block["id"]]
    assert trader_api.post(f"{ORDERS}{block['id']}/accept/").status_code == 200
    children = []
    for _ in range(2):
        placed = trader_api.post(
            f"{ORDERS}{block['id']}/children/",
            {"quantity": 500, "order_type": "LIMIT", "limit_price": "175.50"},
            format="json",
        )
        assert placed.status_code == 201, placed.json()
        children.append(placed.json()["id"])

    # The venue fills them; the parent follows, filled at the children's average price.
    parent = Order.objects.get(pk=block["id"])
    wait_for(lambda: Order.objects.get(pk=block["id"]).status == "filled", timeout=20, what="the block filled")
    parent.refresh_from_db()
    assert parent.filled_quantity == 1000 and parent.avg_fill_price == Decimal("175.50")
    # Nothing is booked to one account: the block's fills wait for the allocation.
    assert not Position.objects.filter(security=aapl).exclude(quantity=0).exists()

    # The proposal: 600 / 400 at the block's average price.
    allocations = wait_for(
        lambda: mo_api.get(f"{ORDERS}{block['id']}/allocations/").json(), what="the allocation proposed"
    )
    (proposal,) = allocations
    assert proposal["status"] == "proposed" and proposal["quantity"] == 1000
    assert Decimal(proposal["avg_price"]) == Decimal("175.50")
    assert [(line["account"], line["quantity"]) for line in proposal["lines"]] == [("ACC-1", 600), ("ACC-2", 400)]
    detail = mo_api.get(f"{ORDERS}{block['id']}/").json()
    assert detail["unallocated_quantity"] == 1000

    # The PM and the trader may read it but not change it.
    assert pm_api.post(f"{ORDERS}{block['id']}/allocations/confirm/", {}, format="json").status_code == 403
    assert trader_api.post(f"{ORDERS}{block['id']}/allocations/confirm/", {}, format="json").status_code == 403

    # Middle office changes it to 500 / 500 and confirms.
    changed = mo_api.post(
        f"{ORDERS}{block['id']}/allocations/change/",
        {"lines": [{"account": "ACC-1", "quantity": 500}, {"account": "ACC-2", "quantity": 500}], "reason": "PM call"},
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()[0]["status"] == "changed"
    confirmed = mo_api.post(f"{ORDERS}{block['id']}/allocations/confirm/", {}, format="json")
    assert confirmed.status_code == 200, confirmed.json()
    assert Position.objects.get(account=account, security=aapl).quantity == 500
    assert Position.objects.get(account=acc2, security=aapl).quantity == 500
    assert Position.objects.get(account=acc2, security=aapl).bought_notional == Decimal("87750")

    # The instruction reached the venue with two NoAllocs entries, and its ack is recorded.
    allocation = Allocation.objects.get(order_id=block["id"])
    wait_for(lambda: Allocation.objects.get(pk=allocation.pk).status == "accepted", timeout=20, what="the ack")
    (instruction,) = [fields for msg_type, fields in simulator.received if msg_type == "J"]
    tags = codec.tags_from_fields(instruction)
    assert tags[70] == allocation.alloc_id and tags[53] == "1000" and tags[78] == "2"
    assert [(t, v) for t, v in instruction if t in (79, 80)] == [(79, "ACC-1"), (80, "500"), (79, "ACC-2"), (80, "500")]
    acks = InboundMessage.objects.filter(venue=sim, msg_type="P").order_by("msg_seq_num")
    assert [m.outcome for m in acks] == ["alloc_ack", "alloc_ack"]
    allocation.refresh_from_db()
    assert allocation.ack_status == codec.ALLOC_STATUS_ACCEPTED and allocation.acked_at is not None
    assert mo_api.get(f"{ORDERS}{block['id']}/").json()["unallocated_quantity"] == 0

    trail = list(
        AuditEvent.objects.filter(object_type="order", object_id=str(block["id"]), action__startswith="allocation.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert trail == [
        "allocation.proposed",
        "allocation.changed",
        "allocation.confirmed",
        "allocation.acknowledged",
        "allocation.acknowledged",
    ]
    changed_event = AuditEvent.objects.get(object_id=str(block["id"]), action="allocation.changed")
    assert [line["quantity"] for line in changed_event.before["lines"]] == [600, 400]
    assert [line["quantity"] for line in changed_event.after["lines"]] == [500, 500]
