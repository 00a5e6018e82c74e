"""``oms_site.db.rows_batch``: the few rows of several tables one submission writes, sent
in one round trip when the block ends, exactly as ``rows_insert`` would store them."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from audit.services import audit_event_build, audit_events_store
from oms_site.db import BATCHED_ROWS, rows_batch, rows_batch_send, rows_insert
from orders.models import Order, OrderRequest

pytestmark = pytest.mark.django_db


def _event(n: int) -> AuditEvent:
    return audit_event_build(actor="batch-test", action="test.batched", object_type="test", object_id=n)


def _stored() -> list[int]:
    return list(
        AuditEvent.objects.filter(actor="batch-test").order_by("id").values_list("object_id", flat=True).distinct()
    )


def test_the_rows_of_several_tables_go_in_one_statement_when_the_block_ends(submit):
    order = submit()
    request = OrderRequest(
        order=order, kind=OrderRequest.Kind.CANCEL, cl_ord_id="BATCH-1", requested_by=order.created_by
    )
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        with rows_batch():
            audit_events_store([_event(1), _event(2)])
            rows_insert(OrderRequest, [request], ids=False)
            assert _stored() == []  # held until the block ends
        sent = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(sent) == 2  # the read above, then the batch
    assert 'INSERT INTO "audit_auditevent"' in sent[1] and 'INSERT INTO "orders_orderrequest"' in sent[1]
    assert _stored() == ["1", "2"]
    assert OrderRequest.objects.filter(order=order, cl_ord_id="BATCH-1").count() == 1


def test_a_keyed_row_and_rows_naming_it_may_come_in_any_order(submit):
    # Foreign keys are checked at commit: an order's request may be written before it.
    template = submit()
    child = Order.objects.get(pk=template.pk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('orders_order', 'id'))")
        child.pk = cursor.fetchone()[0]
    child.client_order_id, child.cl_ord_id = "BATCH-CHILD", "BATCH-CHILD-1"
    child._state.adding = True
    request = OrderRequest(order=child, kind=OrderRequest.Kind.NEW, cl_ord_id="BATCH-CHILD-1")
    with transaction.atomic(), rows_batch():
        rows_insert(OrderRequest, [request], ids=False)
        rows_insert(Order, [child], keyed=True)
        assert not child._state.adding  # stored as far as the caller is concerned
    assert Order.objects.get(pk=child.pk).client_order_id == "BATCH-CHILD"
    assert OrderRequest.objects.get(cl_ord_id="BATCH-CHILD-1").order_id == child.pk


def test_a_block_that_raises_sends_nothing():
    with pytest.raises(RuntimeError), transaction.atomic(), rows_batch():
        audit_events_store([_event(1)])
        raise RuntimeError("step failed")
    assert _stored() == []
    with transaction.atomic(), rows_batch():  # batching works again after it
        audit_events_store([_event(2)])
    assert _stored() == ["2"]


def test_send_keeps_the_trail_in_the_order_the_steps_wrote_it():
    with transaction.atomic(), rows_batch():
        audit_events_store([_event(1)])
        rows_batch_send()  # before a write that does not go through the batch
        _event(2).save()
        audit_events_store([_event(3)])
    assert _stored() == ["1", "2", "3"]


def test_many_rows_go_at_once_by_copy():
    many = [_event(n) for n in range(BATCHED_ROWS + 1)]
    with transaction.atomic(), rows_batch():
        audit_events_store(many)
        assert len(_stored()) == BATCHED_ROWS + 1  # not held
