"""execution_report_apply beyond the matrices: reports that must not change an order."""

import pytest

from orders.models import Execution, OrderFlag
from tests.conftest import apply

pytestmark = pytest.mark.django_db


def test_reject_of_a_duplicate_submission_leaves_the_live_order_alone(submit):
    # FIX 4.4 F.1.a: the venue rejects a duplicate ClOrdID with ExecType Rejected but
    # the OrdStatus of the order that already exists (here Partially Filled).
    order = submit(quantity=1000)
    apply(order, ExecType="0", OrdStatus="0", OrderQty=1000, CumQty=0, LeavesQty=1000)
    apply(order, ExecType="F", OrdStatus="1", OrderQty=1000, CumQty=400, LeavesQty=600, LastQty=400, LastPx="10")

    result = apply(order, ExecType="8", OrdStatus="1", OrderQty=1000, CumQty=400, LeavesQty=600, Text="Duplicate order")

    assert result.outcome == "recorded"
    assert (order.status, order.filled_quantity, order.leaves_quantity) == ("partially_filled", 400, 600)
    assert order.reject_reason == ""
    assert order.needs_review
    assert OrderFlag.objects.filter(order=order, kind="unexpected_message").count() == 1
    assert Execution.objects.filter(order=order, exec_type="8").get().outcome == "recorded"


def test_reject_with_rejected_status_rejects_an_unacknowledged_order(submit):
    order = submit(quantity=1000)
    result = apply(order, ExecType="8", OrdStatus="8", OrderQty=1000, CumQty=0, LeavesQty=0, Text="Unknown symbol")
    assert result.outcome == "applied"
    assert (order.status, order.reject_reason, order.leaves_quantity) == ("rejected", "Unknown symbol", 0)
