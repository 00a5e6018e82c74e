"""The lifecycle from the product's origin document: BUY 1000 AAPL LIMIT 175.50,
sent, acknowledged, 300 @ 175.48, 700 @ 175.50, filled at 175.494; a cancel
afterwards is refused (409) and audited."""

from decimal import Decimal

import pytest

from audit.models import AuditEvent
from routing.models import OutboundMessage
from tests.conftest import apply

pytestmark = pytest.mark.django_db


def test_origin_document_lifecycle(api, submit, trader):
    response = api.post(
        "/api/v1/orders/",
        {
            "client_order_id": "origin-1",
            "account": "ACC-1",
            "symbol": "AAPL",
            "side": "BUY",
            "quantity": 1000,
            "order_type": "LIMIT",
            "limit_price": "175.50",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "pending_new"  # sent: the NewOrderSingle is in the outbox
    from orders.models import Order

    order = Order.objects.get(pk=body["id"])
    nos = OutboundMessage.objects.get(order_id=order.pk)
    assert nos.msg_type == "D" and nos.state == "pending"
    assert dict((int(t), v) for t, v in nos.fields)[44] == "175.5"

    apply(order, ExecType="0", OrdStatus="0", OrderQty=1000, CumQty=0, LeavesQty=1000)
    assert order.status == "open"

    apply(order, ExecType="F", OrdStatus="1", OrderQty=1000, CumQty=300, LeavesQty=700, LastQty=300, LastPx="175.48")
    assert (order.status, order.filled_quantity, order.leaves_quantity) == ("partially_filled", 300, 700)
    assert order.avg_fill_price == Decimal("175.48")

    apply(order, ExecType="F", OrdStatus="2", OrderQty=1000, CumQty=1000, LeavesQty=0, LastQty=700, LastPx="175.50")
    assert (order.status, order.filled_quantity, order.leaves_quantity) == ("filled", 1000, 0)
    assert order.avg_fill_price == Decimal("175.494")

    events_before = AuditEvent.objects.filter(object_type="order", object_id=str(order.pk)).count()
    refused = api.post(f"/api/v1/orders/{order.pk}/cancel/")
    assert refused.status_code == 409
    assert refused.json()["code"] == "invalid_state"
    order.refresh_from_db()
    assert order.status == "filled"
    assert not OutboundMessage.objects.filter(order_id=order.pk, msg_type="F").exists()

    actions = list(
        AuditEvent.objects.filter(object_type="order", object_id=str(order.pk)).values_list("action", flat=True)
    )
    assert len(actions) == events_before + 1
    assert actions == [
        "order.created",
        "compliance.evaluated",
        "order.routed",
        "order.acknowledged",
        "order.fill",
        "order.fill",
        "order.cancel_refused",
    ]
    trail = api.get(f"/api/v1/orders/{order.pk}/audit/").json()
    assert len(trail) >= 5
    assert [e["action"] for e in trail] == actions

    position = api.get("/api/v1/positions/").json()["results"]
    assert position == [
        {
            "account": "ACC-1",
            "symbol": "AAPL",
            "quantity": 1000,
            "bought_quantity": 1000,
            "bought_notional": "175494.00000000",
            "avg_buy_price": "175.49400000",
            "sold_quantity": 0,
            "sold_notional": "0.00000000",
            "avg_sell_price": None,
            "average_cost": "175.49400000",
            "cost_basis": "175494.00000000",
            "realized_pnl": "0.00000000",
            "unrealized_pnl": "6.00000000",  # 1,000 at the reference 175.50 less the cost
            "updated_at": position[0]["updated_at"],
        }
    ]
