"""The inbox task does not wait behind the worker applying a venue's inbox: it returns
at once, and what it came for is applied by that worker, which looks once more after
the commit that releases the venue's lock."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from orders.services import inbox as inbox_module
from orders.services import inbox_apply
from routing import services as routing_services
from routing.models import InboundMessage
from tests.conftest import report
from tests.helpers import inbox_message_store

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def _in_thread(call):
    """Run ``call`` in a thread of its own (its own connection); returns a function
    that joins it and gives back what it returned (or raises what it raised)."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()

    def result(timeout: float = 30):
        thread.join(timeout)
        assert not thread.is_alive(), "the call is stuck"
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return result


def test_a_worker_finding_the_lock_taken_returns_at_once(submit, venue):
    order = submit(quantity=100)
    inbox_message_store(venue, 1, report(order, ExecType="0", OrdStatus="0", ExecID="A1"))
    holding, release = threading.Event(), threading.Event()

    def holder():
        with transaction.atomic():
            routing_services.venue_lock_for_inbox(venue_id=venue.pk)
            holding.set()
            release.wait(30)

    held = _in_thread(holder)
    assert holding.wait(10)
    started = time.monotonic()
    try:
        assert inbox_apply(venue_code=venue.code, wait=False) == 0
        assert time.monotonic() - started < 2  # did not wait for the holder's 30 s
        assert InboundMessage.objects.get().applied_at is None
    finally:
        release.set()
        held()
    assert inbox_apply(venue_code=venue.code, wait=False) == 1
    order.refresh_from_db()
    assert order.status == "open"


def test_a_message_stored_after_the_holders_last_read_is_applied_by_the_holder(submit, venue, monkeypatch):
    """The race the re-check closes: the holder has read the inbox; a message is stored
    and its worker finds the lock taken and leaves; the holder commits. Without the
    look after the commit the message would wait for the periodic sweep."""
    order = submit(quantity=100)
    inbox_message_store(venue, 1, report(order, ExecType="0", OrdStatus="0", ExecID="A1"))
    batch_apply = inbox_module._inbox_batch_apply
    late: dict = {}

    def batch_then_late_message(venue_, messages, **options):
        done = batch_apply(venue_, messages, **options)
        if not late:  # once: after the holder read (and applied) message 1
            late["message"] = _in_thread(
                lambda: inbox_message_store(
                    venue, 2, report(order, ExecType="F", OrdStatus="1", ExecID="F1", LastQty=40, LastPx="10")
                )
            )()
            late["worker"] = _in_thread(lambda: inbox_apply(venue_code=venue.code, wait=False))()
        return done

    monkeypatch.setattr(inbox_module, "_inbox_batch_apply", batch_then_late_message)
    taken = inbox_apply(venue_code=venue.code, wait=False)
    assert late["worker"] == 0  # it found the lock taken and left
    assert taken == 2  # the holder took the late message too
    assert InboundMessage.objects.filter(applied_at__isnull=True).count() == 0
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("partially_filled", 40)
