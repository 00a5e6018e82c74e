"""The real thing: plain ``celery -A oms_site worker`` processes host the FIX session
(the bootstep), apply what the venue reports through real Celery tasks on Redis, and
hand the venue over when the holder is killed (SIGKILL: no Logout, no lease release)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from routing.models import Venue, VenueSession

from .fix_acceptor import ScriptedVenue
from .test_hosting import connected, order_status, post_order, session_row, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_celery_workers_host_the_session_and_hand_it_over_when_the_holder_is_killed(workers, api, account, aapl):
    acceptor = ScriptedVenue().start()
    try:
        sim = Venue.objects.create(
            code="SIM", host="127.0.0.1", port=acceptor.port, sender_comp_id="OMS", target_comp_id="SIM"
        )
        first, second = workers("w1"), workers("w2")
        wait_for(lambda: connected(sim), timeout=30, what="a worker to log on")
        time.sleep(2)
        assert acceptor.logons == 1

        order = post_order(api, account, aapl)
        wait_for(lambda: order_status(order) == "filled", timeout=15, what="the fill applied by a Celery task")

        holder_pid = int(session_row(sim).holder.split(":")[1])
        holder, other = (first, second) if holder_pid == first.pid else (second, first)
        assert holder_pid == holder.pid
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(5)
        killed_at = time.monotonic()
        wait_for(
            lambda: (
                (row := session_row(sim)).holder.split(":")[1] == str(other.pid)
                and row.status == VenueSession.Status.CONNECTED
            ),
            timeout=15,
            what="the other worker to take over",
        )
        assert time.monotonic() - killed_at < 10
        assert acceptor.logons == 2

        again = post_order(api, account, aapl)
        wait_for(lambda: order_status(again) == "filled", timeout=15, what="the next fill after the takeover")
        assert len(acceptor.app_messages("D")) == 2
    finally:
        acceptor.stop()
