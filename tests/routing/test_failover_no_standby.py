"""Issue 13, operating day: the only worker, holding the FIX session, is killed with
``kill -9`` while orders keep coming in over the API, and a new worker is started 5 s
later (no standby in between). Every order submitted meanwhile waits in the outbox for
the session, goes out when the new worker logs on, and is filled; none is rejected.

Real ``celery -A oms_site worker`` processes (the ``workers`` fixture) against the
venue simulator (in this process, fills at once); orders are POSTed by a thread."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from orders.models import Order
from routing.models import VenueSession

from .conftest import venue_at, wait_for
from .test_hosting import ORDERS, connected, session_row

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

POST_EVERY = 0.3  # seconds between orders
POST_FOR = 8.0  # seconds of orders
KILL_AFTER = 1.5  # seconds into the orders
RESTART_AFTER = 5.0  # seconds from the kill to the new worker's start


class OrderFeed(threading.Thread):
    """POSTs a limit order every ``POST_EVERY`` s for ``POST_FOR`` s, as the trader;
    each with a quantity of its own (an identical order is held as a duplicate)."""

    def __init__(self, trader, account, security):
        super().__init__(name="order-feed", daemon=True)
        self.trader, self.account, self.security = trader, account, security
        self.posted: list[tuple[int, int, dt.datetime]] = []  # (order id, quantity, when)
        self.failures: list[str] = []

    def run(self) -> None:
        client = APIClient()
        client.force_authenticate(self.trader)
        started = time.monotonic()
        try:
            for number in range(int(POST_FOR / POST_EVERY)):
                time.sleep(max(0.0, started + number * POST_EVERY - time.monotonic()))
                quantity = 100 + number
                response = client.post(
                    ORDERS,
                    {
                        "client_order_id": f"FAILOVER-{number}",
                        "account": self.account.code,
                        "symbol": self.security.symbol,
                        "side": "BUY",
                        "quantity": quantity,
                        "order_type": "LIMIT",
                        "limit_price": "176.00",
                    },
                    format="json",
                )
                body = response.json()
                if response.status_code != 201 or body.get("status") != "pending_new":
                    self.failures.append(f"order {number}: {response.status_code} {body}")
                else:
                    self.posted.append((body["id"], quantity, timezone.now()))
        finally:
            connection.close()


def test_the_only_worker_killed_while_orders_come_in_and_a_new_one_5s_later_fills_them_all(
    workers, make_sim, trader, account, aapl
):
    simulator = make_sim()
    sim = venue_at(simulator.port, "Venue simulator")
    first = workers("w1")
    wait_for(lambda: connected(sim), timeout=30, what="the first worker to log on")
    assert session_row(sim).holder.split(":")[1] == str(first.pid)

    feed = OrderFeed(trader, account, aapl)
    feed.start()
    time.sleep(KILL_AFTER)  # the scenario: orders are flowing when the holder dies
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(5)
    killed_at = timezone.now()
    time.sleep(RESTART_AFTER)  # the scenario: nobody hosts the session for 5 s
    second = workers("w2")
    feed.join(POST_FOR + 30)
    assert not feed.is_alive()
    assert feed.failures == []

    wait_for(
        lambda: (
            (row := session_row(sim)).status == VenueSession.Status.CONNECTED
            and row.holder.split(":")[1] == str(second.pid)
        ),
        timeout=30,
        what="the new worker to log on",
    )
    logged_on_at = session_row(sim).last_logon_at
    posted_ids = [order_id for order_id, _, _ in feed.posted]
    assert len(posted_ids) == int(POST_FOR / POST_EVERY)
    meanwhile = [order_id for order_id, _, when in feed.posted if killed_at <= when <= logged_on_at]
    assert len(meanwhile) >= 10, f"only {len(meanwhile)} orders were submitted while no worker held the session"

    def settled():
        statuses = dict(Order.objects.filter(pk__in=posted_ids).values_list("pk", "status"))
        return all(status in ("filled", "rejected") for status in statuses.values()) and statuses

    wait_for(settled, timeout=45, interval=0.2, what="every order to be filled or rejected")
    orders = {order.pk: order for order in Order.objects.filter(pk__in=posted_ids)}
    assert [(pk, o.status, o.reject_reason) for pk, o in orders.items() if o.status != "filled"] == []
    assert all(orders[order_id].filled_quantity == quantity for order_id, quantity, _ in feed.posted)
    assert not Order.objects.filter(status="rejected").exists()
    # Each order reached the venue exactly once (a resend is the same order, PossDup).
    assert sorted(o.cl_ord_id for o in simulator.orders.values()) == sorted(o.cl_ord_id for o in orders.values())
